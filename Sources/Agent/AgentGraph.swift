import AgentConfig
import AuditIngest
import Detection
import Flows
import HostState
import Patterns
import Runtime
import Scanning

#if canImport(Glibc)
    import Glibc
#endif

/// The stage graph, built here and nowhere else, for `run`, `replay` and the tests, with its
/// sinks: every stage gets what it hands on to in its initializer.
///
///     records -> Pipeline (parse, assemble) -> EventRoute: audit watch (live), printer,
///     FlowTracker (ProcessTable, HostSockets), then ScanStage (live)
///     FlowTracker -> FlowConsumers -> Detector -> AlertRoute (AlertDigests, live) -> AlertDelivery
///     -> AlertOutput; flows -> printer, agentctl
///
/// Stages reach each other only through what this type hands them.
public final class AgentGraph {
    public enum Mode {
        /// A recorded log: no /proc, no sockets, nothing written; names come from the log.
        case replay
        /// The live host.
        case live(LiveHost)
    }

    /// What the live graph uses of the host, opened by the start-up before the privilege drop.
    public struct LiveHost {
        let procfs: ProcFS
        let sockets: HostSockets?
        let firstSeen: FirstSeenStore
        /// Alert ids start with it: unique across restarts and agents.
        let idPrefix: String
        /// The host and this agent, as alerts name them.
        let origin: AlertOrigin
        /// Sees every event first: rule removals, a disabled audit (kernel source only).
        let watch: AuditWatch?
        /// agentctl's followers of alert lines.
        let follower: AlertFollower?
    }

    let printer: EventPrinter
    public let processes: ProcessTable
    let users: UserNames
    public let detector: Detector
    let alerts: AlertOutput
    let health: HealthChannel
    public let tracker: FlowTracker
    let pipeline: Pipeline
    let sockets: HostSockets?
    let clock: StreamClock
    private let alertRoute: AlertRoute
    private let flowConsumers: FlowConsumers
    private let eventRoute: EventRoute
    private let namespaceIdleMilliseconds: Int64
    /// Installed programs change with package upgrades: their files are looked at twice a
    /// minute (a stat each), not at every prune. Until then an upgraded client is known by name.
    private static let programCheckMilliseconds: Int64 = 30_000
    private var nextProgramCheck: Int64 = 0
    /// Finished flows for `agentctl flows` (live only).
    let recentFlows: RecentLines?
    /// Scanning, live only; started after the privilege drop, replaced by a reload.
    let scans = ScanSlot()
    private(set) var datagrams: DatagramQuieting?
    /// Alerts wait there for their binaries' hashes (live; started after the privilege drop).
    var digests: AlertDigests? { alertRoute.digests }

    /// `observer` hears of every event, alert and finished flow as values (tests, tools).
    public convenience init(
        configuration: AgentConfiguration, mode: Mode, output: OutputOptions = OutputOptions(), observer: GraphObserver? = nil, log: Logger
    ) throws(PatternError) {
        try self.init(configuration: configuration, mode: mode, output: output, health: HealthChannel(), observer: observer, log: log)
    }

    /// `health`: the channel stages report the agent's trouble on (the live start-up makes it
    /// before the graph, for the audit watch).
    init(
        configuration: AgentConfiguration, mode: Mode, output: OutputOptions, health: HealthChannel, observer: GraphObserver? = nil,
        log: Logger
    ) throws(PatternError) {
        self.health = health
        namespaceIdleMilliseconds = Int64(configuration.flows.namespaceIdleMilliseconds)
        let printer = EventPrinter(options: output)
        let host: LiveHost?
        if case .live(let live) = mode { host = live } else { host = nil }
        self.printer = printer
        sockets = host?.sockets
        processes = ProcessTable(procfs: host?.procfs, capacity: configuration.host.maximumProcesses)
        if host != nil {
            processes.eagerPrograms = TransferTools.clientPrograms
            processes.catalog = ProgramCatalog(names: TransferTools.identifiedPrograms)
            processes.containers = ContainerCatalog()
        }
        users = UserNames(source: host == nil ? .log : .host)
        alerts = AlertOutput(
            outputs: host == nil ? nil : configuration.output, stateDirectory: configuration.agent.stateDirectory,
            printer: printer, users: users, origin: host?.origin ?? AlertOrigin(host: HostFacts()), follower: host?.follower, log: log)
        alertRoute = AlertRoute(delivery: AlertDelivery(outputs: alerts, observer: observer))
        // The log's own first connection starts a replay's learning period; nothing is persisted.
        let firstSeen = host?.firstSeen ?? FirstSeenStore(learningMinutes: configuration.detection.firstSeenLearningMinutes)
        // A replay has no packet tap: ports are judged at once, as with the tap off.
        var detection = configuration
        if host == nil { detection.inspection.enabled = false }
        detector = try Detector(configuration: detection, firstSeen: firstSeen, idPrefix: host?.idPrefix ?? "replay", sink: alertRoute)
        recentFlows = host == nil ? nil : RecentLines(capacity: 200, byteLimit: 2 << 20)
        flowConsumers = FlowConsumers(
            processes: processes, detector: detector, printer: printer, scans: scans, alerts: alertRoute, recent: recentFlows, observer: observer)
        tracker = FlowTracker(
            catalog: .standard, processes: processes, sockets: host?.sockets, settings: configuration.flowSettings,
            debug: { [log] in log.debug($0()) }, observer: flowConsumers)
        clock = StreamClock(replaying: host == nil, tracker: tracker)
        eventRoute = EventRoute(
            watch: host?.watch, printer: printer, clock: clock, processes: processes, sockets: host?.sockets, consumers: flowConsumers,
            tracker: tracker, scans: scans, detector: detector, alerts: alerts,
            users: users, observer: observer)
        pipeline = Pipeline(settings: configuration.assemblerSettings, log: log, sink: eventRoute)
    }

    /// Starts hashing the binaries alerts name (live; after the privilege drop, which the
    /// hashing thread must inherit).
    func startHashing(procfs: ProcFS, log: Logger) {
        guard let hashes = ExecutableHashes.start(procfs: procfs) else {
            log.error("hashes: cannot start the hashing thread: \(String(cString: strerror(errno))); alerts go without process.hash")
            return
        }
        alertRoute.digests = AlertDigests(hashes: hashes, next: alertRoute.delivery)
    }

    /// Lets datagram floods go unaudited (live, as the audit daemon).
    func quietDatagramFloods(_ quieting: DatagramQuieting) {
        datagrams = quieting
        flowConsumers.datagrams = quieting
    }

    /// Compiles the YARA rules and starts the worker (live; after the privilege drop, which the
    /// worker thread must inherit).
    func startScanning(_ settings: AgentConfiguration.Yara, log: Logger) {
        scans.stage = ScanStage.start(settings, wiring: scanWiring(log: log))
    }

    /// A reload's YARA rules: to the running worker, or a worker started; nil rules stop it.
    func applyScanRules(_ rules: YaraRules?, settings: AgentConfiguration.Yara, log: Logger) {
        guard let rules else {
            scans.stage?.stop()
            scans.stage = nil
            return
        }
        if let stage = scans.stage {
            stage.replace(rules: rules, settings: settings)
        } else {
            scans.stage = ScanStage.start(rules, settings: settings, wiring: scanWiring(log: log))
        }
    }

    private func scanWiring(log: Logger) -> ScanStage.Wiring {
        ScanStage.Wiring(processes: processes, sockets: sockets, detector: detector, health: health, log: log)
    }

    /// Records of exited processes go; sock_diag sockets of namespaces no flow uses for a
    /// minute are closed.
    func pruneExited(now: Int64) {
        processes.pruneExited(now: now)
        if now >= nextProgramCheck {
            nextProgramCheck = now + Self.programCheckMilliseconds
            processes.catalog?.refreshIfChanged()
        }
        datagrams?.pruneExited()
        let flows = tracker.openFlows
        let inUse = Set(flows.compactMap(\.namespace) + flows.compactMap(\.process.networkNamespace))
        sockets?.closeIdleNamespaces(now: now, idleMilliseconds: namespaceIdleMilliseconds, inUse: inUse)
    }

    /// Health findings reported since the last call become `agent.health` alerts.
    func deliverHealth(now: Int64) { health.deliver(to: detector, now: now) }

    /// The input ended or the agent stops: open events and flows are completed and reported,
    /// the scanner's last results and pending health findings become alerts.
    func finish(log: Logger) {
        pipeline.flush()
        clock.releaseAllDestroys()
        tracker.finish(now: clock.now)
        detector.decideHeld()
        if let stage = scans.stage {
            stage.stop()
            log.info("stopped: \(stage.summary)")
        }
        deliverHealth(now: monotonicMilliseconds())
        if let digests {
            digests.stop()
            log.info("stopped: \(digests.summary)")
        }
        printer.flush()
    }

    /// What went through each stage, for the last log lines.
    var summary: [String] {
        [pipeline.summary, "\(processes.summary); \(tracker.summary)", "\(detector.summary); \(alerts.summary)"]
            + (datagrams.map { [$0.summary] } ?? [])
    }

    /// A replayed log's events, flows and alerts on standard output: files in order, `-` for
    /// stdin. False when a file could not be read.
    func replay(files: [String], log: Logger) -> Bool {
        var failed = false
        for file in files.isEmpty ? ["-"] : files {
            let fd = file == "-" ? 0 : open(file, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else {
                log.error("\(file): \(String(cString: strerror(errno)))")
                failed = true
                continue
            }
            var input = LineInput(fd: fd, name: file == "-" ? "stdin" : file)
            reading: while true {
                switch input.readOnce(into: pipeline, arrivalTime: 0) {
                case .data, .wouldBlock: continue
                case .endOfInput: break reading
                case .failed(let code):
                    log.error("\(file): read failed: \(String(cString: strerror(code)))")
                    failed = true
                    break reading
                }
            }
            input.finish(into: pipeline)
            if fd != 0 { close(fd) }
        }
        finish(log: log)
        return !failed
    }
}

extension AgentConfiguration {
    var assemblerSettings: AssemblerSettings {
        AssemblerSettings(
            logTimeoutMilliseconds: Int64(audit.eventTimeoutMilliseconds),
            arrivalTimeoutMilliseconds: Int64(audit.eventTimeoutMilliseconds),
            maximumPendingEvents: audit.maximumPendingEvents)
    }

    var flowSettings: FlowSettings {
        var settings = FlowSettings()
        settings.unresolvedWaitMilliseconds = Int64(flows.unresolvedWaitMilliseconds)
        settings.pollIntervalMilliseconds = Int64(flows.pollIntervalMilliseconds)
        settings.dataLingerMilliseconds = Int64(flows.dataLingerMilliseconds)
        settings.maximumOpenFlows = flows.maximumOpenFlows
        settings.datagramFloodPerSecond = audit.datagramFloodRate
        return settings
    }
}

extension AgentGraph: ReloadTarget {
    func reconfigureDetection(_ configuration: AgentConfiguration) throws(PatternError) { try detector.reconfigure(configuration) }
    func reconfigureOutputs(_ output: AgentConfiguration.Output) { alerts.reconfigure(output) }
    var scanning: (running: Bool, rules: Int) { (scans.stage != nil, scans.stage?.ruleCount ?? 0) }
    var enabledRuleCount: Int { detector.enabledRules.count }
}
