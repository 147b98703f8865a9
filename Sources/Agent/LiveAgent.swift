import AgentConfig
import ByteJSON
import Control
import Detection
import Flows
import HostState
import Privileges
import Runtime

#if canImport(Glibc)
    import Glibc
#endif

/// `xferwatchd run`: puts the parts together in their start-up order and runs the event loop
/// until SIGINT or SIGTERM. Start-up and privileges: `Startup`; the kernel session and its
/// watching: `AuditWatch`; the stages: `AgentGraph`; the loop: `EventLoop`; status and health:
/// `LiveStatus` and `HealthChannel`; reload: `Reloader`.
public final class LiveAgent {
    private let configuration: AgentConfiguration
    private let configurationPath: String
    private let output: OutputOptions
    private let log: Logger

    public init(configuration: AgentConfiguration, configurationPath: String, output: OutputOptions, log: Logger) {
        self.configuration = configuration
        self.configurationPath = configurationPath
        self.output = output
        self.log = log
    }

    /// The exit status of a stop that lost alerts waiting in memory.
    public static let alertsLostStatus: Int32 = 3

    public func run() -> Int32 {
        let (status, lost) = runUntilStopped()
        // Last, after everything else has said its piece: alerts still in memory had nowhere
        // durable to go, and the exit status (3) makes the stop a failure for systemd.
        guard let lost else { return status }
        log.error("stopped with alerts lost: \(lost)")
        return status == 0 ? Self.alertsLostStatus : status
    }

    /// The run; with what was lost at the stop, said by `run` once every stage is closed.
    private func runUntilStopped() -> (Int32, lost: String?) {
        guard let signals = SignalSource(log: log) else {
            log.error("cannot watch signals: \(String(cString: strerror(errno)))")
            return (1, nil)
        }
        // What needs root comes first; then the drop, before any thread starts.
        let startup = Startup(configuration: configuration, log: log)
        let account: PrivilegeDrop.Account?
        do { account = try startup.account() } catch {
            log.error("\(error): the package creates it; or set [agent] user = \"root\" to stay root")
            return (1, nil)
        }
        do { try startup.prepareDirectories(for: account) } catch {
            log.error("\(error)")
            return (1, nil)
        }
        let control = ControlServer.open(path: configuration.agent.controlSocket, group: configuration.agent.controlGroup, log: log)
        defer { control?.close() }
        // The audit watch reports into the graph's health channel once the graph exists.
        let health = HealthChannel()
        let marker = RunMarker(stateDirectory: configuration.agent.stateDirectory)
        let unfinished = marker.unfinishedRun()
        var audit: AuditWatch?
        if configuration.audit.source.isKernel {
            guard let watch = AuditWatch(settings: configuration.audit, health: health, enabledBeforeKilledRun: unfinished?.auditEnabledBefore, log: log)
            else { return (1, nil) }
            audit = watch
        }
        defer { audit?.close() }
        let procfs = ProcFS()
        var sockets: HostSockets?
        do {
            sockets = try HostSockets(procfs: procfs, log: { [log] in log.warning($0) })
        } catch {
            log.error("sock_diag is unavailable (\(error)): flows will be found through /proc/net, without byte counts")
        }
        // Other network namespaces need setns (CAP_SYS_ADMIN), which the agent gives up: a
        // helper forked now keeps it and opens their sock_diag sockets for the agent.
        var helper: NamespaceHelper?
        if !(configuration.agent.keepsRoot && getuid() == 0) {
            if ProcessPrivileges.current().effective.contains("CAP_SYS_ADMIN") {
                helper = NamespaceHelper.spawn(account: account, log: log)
            } else {
                log.warning("without CAP_SYS_ADMIN for the namespace helper, flows in other network namespaces have no exact byte counts")
            }
        }
        defer { helper?.stop() }
        guard startup.dropPrivileges(to: account, source: configuration.audit.source) else { return (1, nil) }
        let unwritable = startup.unwritablePaths()
        guard unwritable.isEmpty else {
            let user = account?.name ?? "this user"
            for path in unwritable {
                log.error("cannot write \(path) as \(user): give it to \(user) (chown -R \(user): on the directory) or point the setting elsewhere")
            }
            log.error("not starting: alerts would have nowhere durable to go")
            return (1, nil)
        }
        for warning in startup.warnings(user: account?.name ?? "this user") { log.warning(warning) }

        guard let graph = buildGraph(procfs: procfs, sockets: sockets, health: health) else { return (1, nil) }
        if let previous = unfinished?.description {
            let reason =
                "the previous run (\(previous)) ended without stopping (killed, crashed or the host went down): the host was not watched until this start"
            log.warning(reason)
            health.report([reason], time: realtimeMilliseconds())
        }
        if !marker.write(startedAt: realtimeMilliseconds(), auditEnabledBefore: audit?.session.enabledToRestore) {
            log.warning("cannot write \(marker.path): \(String(cString: strerror(errno))); a kill of this run will not be noticed at the next start")
        }
        if let helper, let sockets {
            helper.onTrouble = { [log] reason in
                log.error(reason)
                graph.health.report([reason], time: realtimeMilliseconds())
            }
            sockets.openElsewhere = { inode, pid in helper.open(namespace: inode, of: pid).mapError { $0 } }
        }
        graph.startScanning(configuration.yara, log: log)
        graph.startHashing(procfs: procfs, log: log)
        if let audit, configuration.audit.datagramFloodRate > 0 {
            graph.quietDatagramFloods(
                DatagramQuieting(session: audit.session, procfs: procfs, perSecond: configuration.audit.datagramFloodRate, log: log))
        }
        graph.processes.seedFromProc()
        log.info("host: \(graph.processes.count) running processes read from /proc, \(graph.processes.catalog?.count ?? 0) programs known by their binary")
        let packets = PacketSource.open(configuration.inspection, graph: graph, log: log)
        let status = LiveStatus(
            graph: graph, audit: audit, packets: packets, helper: helper, inspectionEnabled: configuration.inspection.enabled,
            source: configuration.audit.source,
            configurationPath: configurationPath)
        let reloader = Reloader(configuration: configuration, path: configurationPath, graph: graph, log: log)
        let answers = ControlAnswers(graph: graph, status: status, reloader: reloader)
        control?.handler = answers
        graph.alerts.listener = { [weak control] line in control?.published(alertLine: line) }
        if let audit { graph.eventWatcher = audit.watch }
        signals.onHangup = { [log, configurationPath] in
            log.info("SIGHUP: reloading \(configurationPath) and reopening the alert file")
            _ = reloader.reload()
            graph.alerts.reopen()
        }

        guard let input = auditInput(audit: audit, graph: graph) else { return (1, nil) }
        // Packets before destroy notifications: a socket's last segments were captured before
        // the kernel destroyed it, and its flow must have them when it is reported.
        var sources: [LoopSource] = [input] + (packets.map { [$0] } ?? [])
        sources += [signals, SocketDestroySource(graph: graph, log: log), ScanResultsSource(graph: graph)]
        if let digests = graph.digests { sources.append(digests) }
        if let control { sources.append(control) }
        let metrics = MetricsFile(log: log)
        var periodic = periodicWork(graph: graph, audit: audit, status: status)
        periodic.append { time in metrics.writeIfDue(reloader.configuration.output.metrics, now: time.monotonic) { answers.metricsLines() } }
        let loop = EventLoop(sources: sources, periodic: periodic, log: log)
        // Start-up is over (what a test measures from, what systemd waits for).
        log.info("ready: watching \(sources.count) sources")
        ServiceManager.notify("READY=1")
        let result = loop.run()
        ServiceManager.notify("STOPPING=1")

        graph.finish(log: log)
        graph.alerts.stop()
        marker.remove()
        for line in graph.summary { log.info("stopped: \(line)") }
        if let c = sockets?.counters {
            log.info(
                "sockets: \(c.resolved) resolved (\(c.procNetFallbacks) through /proc/net), \(c.fdGone) gone before lookup, "
                    + "\(c.notFound) not found, \(c.sockDiagErrors) sock_diag errors, \(c.destroyOverruns) destroy overruns, "
                    + "\(c.socketsScanned) sockets scanned, \(c.namespacesOpened) namespaces watched")
        }
        return (result, graph.alerts.lostAtStop)
    }

    /// The stages, on the host: the first-seen state lives in state_dir; when it cannot, the
    /// rule still works from memory and says so.
    private func buildGraph(procfs: ProcFS, sockets: HostSockets?, health: HealthChannel) -> AgentGraph? {
        let now = realtimeMilliseconds()
        let learning = configuration.detection.firstSeenLearningMinutes
        let firstSeen: FirstSeenStore
        do {
            firstSeen = try FirstSeenStore(directory: configuration.agent.stateDirectory, learningMinutes: learning, now: now)
        } catch {
            log.error("first-seen state: \(error); learning in memory only, from now")
            firstSeen = FirstSeenStore(learningMinutes: learning)
        }
        let runID = String(UInt64(now), radix: 36)
        let (agentID, problem) = AgentID.load(stateDirectory: configuration.agent.stateDirectory)
        if let problem { log.error("agent.id: \(problem); alerts carry \(agentID) for this run only") }
        let origin = AlertOrigin(host: HostFacts.read(), agent: .init(id: agentID, version: XferwatchVersion.current, ephemeralID: runID))
        // Unique across a fleet and across restarts: this agent, this run, then a counter.
        let idPrefix = "\(agentID.prefix(8))-\(runID)"
        let host = AgentGraph.LiveHost(procfs: procfs, sockets: sockets, firstSeen: firstSeen, idPrefix: idPrefix, origin: origin)
        do {
            let graph = try AgentGraph(configuration: configuration, mode: .live(host), output: output, health: health, log: log)
            log.info(
                "detection: \(RuleID.allCases.count - configuration.detection.disabledRules.count) rules, \(configuration.exclusions.count) exclusions, "
                    + "\(firstSeen.count) executables known to connect out")
            return graph
        } catch {
            log.error("detection: \(error)")
            return nil
        }
    }

    /// Where records come from: the kernel, auditd's plugin interface on stdin, or a log file.
    private func auditInput(audit: AuditWatch?, graph: AgentGraph) -> LoopSource? {
        if let audit {
            return KernelAuditSource(audit: audit, pipeline: graph.pipeline, batchWaitMilliseconds: configuration.audit.batchWaitMilliseconds)
        }
        if configuration.audit.source == .audisp {
            log.info("reading audisp records on standard input")
            return LineSource(stdinInto: graph.pipeline, log: log)
        }
        return LineSource(following: configuration.audit.logFile, into: graph.pipeline, log: log)
    }

    /// What runs every turn after the sources, in order: flow timeouts, outputs, the kernel's
    /// counters and our rules, rates, health alerts, pruning, then standard output.
    private func periodicWork(graph: AgentGraph, audit: AuditWatch?, status: LiveStatus) -> [(LoopTime) -> Void] {
        var nextPrune: Int64 = 0
        let pruneInterval = Int64(configuration.host.pruneIntervalMilliseconds)
        return [
            { graph.tracker.tick(now: $0.realtime) },
            { graph.detector.tick(now: $0.realtime) },
            { graph.alerts.service(now: $0.monotonic, health: graph.health) },
            { audit?.check(time: $0) },
            status.sample,
            { graph.deliverHealth(now: $0.monotonic) },
            { time in
                guard time.realtime >= nextPrune else { return }
                nextPrune = time.realtime + pruneInterval
                graph.pruneExited(now: time.realtime)
            },
            { _ in graph.printer.flush() },
        ]
    }
}

/// What agentctl asks of the live agent, answered from the graph, the status and the reloader.
private final class ControlAnswers: ControlHandler {
    private let graph: AgentGraph
    private let live: LiveStatus
    private let reloader: Reloader

    init(graph: AgentGraph, status: LiveStatus, reloader: Reloader) {
        self.graph = graph
        self.live = status
        self.reloader = reloader
    }

    func status() -> AgentStatus { live.status(ruleKey: reloader.configuration.audit.ruleKey) }

    func flowLines() -> [[UInt8]] {
        var json = JSONWriter()
        var lines: [[UInt8]] = []
        for flow in graph.tracker.openFlows.sorted(by: { $0.start < $1.start }) {
            json.reset()
            FlowJSON.write(flow, to: &json)
            lines.append(json.bytes)
        }
        return lines + (graph.recentFlows?.all ?? [])
    }

    func reload() -> ControlResponse { reloader.reload() }

    func metricsLines() -> [[UInt8]] {
        MetricsText.lines(status()).map { Array($0.utf8) }
    }

    func rulesReport() -> RulesReport {
        let detector = graph.detector
        let fired = detector.counters.alerts
        let silenced = detector.silenced
        return RulesReport(
            rules: RuleID.allCases.map { .init(id: $0.rawValue, name: $0.info.name, enabled: detector.enabledRules.contains($0), alerts: fired[$0] ?? 0) },
            exclusions: reloader.configuration.exclusions.map { .init(name: $0.name, rules: $0.rules.map(\.rawValue).sorted(), hits: silenced[$0.name] ?? 0) },
            yaraRuleFiles: graph.scans?.ruleFiles ?? [], yaraRules: graph.scans?.ruleCount ?? 0)
    }
}
