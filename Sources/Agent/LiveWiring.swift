import AgentConfig
import ByteJSON
import Control
import Detection
import Flows
import HostState
import Runtime

/// The one place that wires the live agent around the graph (`AgentGraph` builds the stages):
/// the namespace helper to the sockets, the stages that start after the privilege drop
/// (scanning, hashing, datagram quieting), the
/// processes already running, the packet tap, status, reload and agentctl's answers, then the
/// loop's sources in the order they are served and its periodic work.
final class LiveWiring {
    private let configuration: AgentConfiguration
    private let configurationPath: String
    private let graph: AgentGraph
    private let audit: AuditWatch?
    private let procfs: ProcFS
    private let sockets: HostSockets?
    private let helper: NamespaceHelper?
    private let log: Logger

    init(
        configuration: AgentConfiguration, configurationPath: String, graph: AgentGraph, audit: AuditWatch?, procfs: ProcFS,
        sockets: HostSockets?, helper: NamespaceHelper?, log: Logger
    ) {
        self.configuration = configuration
        self.configurationPath = configurationPath
        self.graph = graph
        self.audit = audit
        self.procfs = procfs
        self.sockets = sockets
        self.helper = helper
        self.log = log
    }

    /// Starts what runs after the drop and returns the loop; nil when the audit input cannot open.
    func loop(signals: SignalSource, control: ControlServer?) -> EventLoop? {
        if let helper, let sockets {
            helper.onTrouble = { [log, graph] reason in
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
        let packets = PacketSource.open(configuration.inspection, tracker: graph.tracker, health: graph.health, log: log)
        let status = LiveStatus(
            graph: graph, audit: audit, packets: packets, helper: helper, inspectionEnabled: configuration.inspection.enabled,
            source: configuration.audit.source,
            configurationPath: configurationPath)
        let reloader = Reloader(configuration: configuration, path: configurationPath, target: graph, log: log)
        let answers = ControlAnswers(graph: graph, status: status, reloader: reloader)
        control?.handler = answers
        signals.onHangup = { [log, configurationPath, graph] in
            log.info("SIGHUP: reloading \(configurationPath) and reopening the alert file")
            _ = reloader.reload()
            graph.alerts.reopen()
        }

        guard let input = auditInput() else { return nil }
        // Packets before destroy notifications: a socket's last segments were captured before
        // the kernel destroyed it, and its flow must have them when it is reported.
        var sources: [LoopSource] = [input] + (packets.map { [$0] } ?? [])
        sources.append(signals)
        if let sockets { sources.append(SocketDestroySource(sockets: sockets, clock: graph.clock, log: log)) }
        sources.append(ScanResultsSource(scans: graph.scans))
        if let digests = graph.digests { sources.append(digests) }
        if let control { sources.append(control) }
        let metrics = MetricsFile(log: log)
        var periodic = periodicWork(status: status)
        periodic.append { time in metrics.writeIfDue(reloader.configuration.output.metrics, now: time.monotonic) { answers.metricsLines() } }
        return EventLoop(sources: sources, periodic: periodic, log: log)
    }

    /// Where records come from: the kernel, auditd's plugin interface on stdin, or a log file.
    private func auditInput() -> LoopSource? {
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
    private func periodicWork(status: LiveStatus) -> [(LoopTime) -> Void] {
        var nextPrune: Int64 = 0
        let pruneInterval = Int64(configuration.host.pruneIntervalMilliseconds)
        let graph = graph, audit = audit
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
            yaraRuleFiles: graph.scans.stage?.ruleFiles ?? [], yaraRules: graph.scans.stage?.ruleCount ?? 0)
    }
}
