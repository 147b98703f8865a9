import AgentConfig
import Detection
import HostState
import Privileges
import Runtime

#if canImport(Glibc)
    import Glibc
#endif

/// `xferwatchd run`: puts the parts together in their start-up order and runs the event loop
/// until SIGINT or SIGTERM. Start-up and privileges: `Startup`; the kernel session and its
/// watching: `AuditWatch`; the stages: `AgentGraph`; their wiring and the loop: `LiveWiring`, `EventLoop`; status and health:
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
            guard
                let watch = AuditWatch(
                    settings: configuration.audit, health: health,
                    enabledBeforeKilledRun: unfinished?.auditEnabledBefore, log: log)
            else { return (1, nil) }
            audit = watch
        }
        defer { audit?.close() }
        let procfs = ProcFS()
        var sockets: HostSockets?
        do {
            let closeFlood = CloseFloodGate(
                perSecond: configuration.flows.closeFloodRate, pauseMilliseconds: Int64(configuration.flows.closeFloodPauseMilliseconds))
            sockets = try HostSockets(procfs: procfs, closeFlood: closeFlood, log: { [log] in log.warning($0) })
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

        guard let graph = buildGraph(procfs: procfs, sockets: sockets, health: health, watch: audit, follower: control) else { return (1, nil) }
        if let previous = unfinished?.description {
            let reason =
                "the previous run (\(previous)) ended without stopping (killed, crashed or the host went down): the host was not watched until this start"
            log.warning(reason)
            health.report([reason], time: realtimeMilliseconds())
        }
        if !marker.write(startedAt: realtimeMilliseconds(), auditEnabledBefore: audit?.session.enabledToRestore) {
            log.warning("cannot write \(marker.path): \(String(cString: strerror(errno))); a kill of this run will not be noticed at the next start")
        }
        let wiring = LiveWiring(
            configuration: configuration, configurationPath: configurationPath, graph: graph, audit: audit, procfs: procfs,
            sockets: sockets, helper: helper, log: log)
        guard let loop = wiring.loop(signals: signals, control: control) else { return (1, nil) }
        // Start-up is over (what a test measures from, what systemd waits for).
        log.info("ready: watching \(loop.sourceCount) sources")
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
    private func buildGraph(procfs: ProcFS, sockets: HostSockets?, health: HealthChannel, watch: AuditWatch?, follower: AlertFollower?) -> AgentGraph? {
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
        let host = AgentGraph.LiveHost(
            procfs: procfs, sockets: sockets, firstSeen: firstSeen, idPrefix: idPrefix, origin: origin, watch: watch, follower: follower)
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
}
