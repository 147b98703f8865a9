import AgentConfig
import ByteJSON
import Control
import Outputs
import Privileges
import Runtime

#if canImport(Glibc)
    import Glibc
#endif

/// Records and events counted every 5 s for 5 minutes: rates over the last minute and the
/// last 5 minutes (since start when the agent is younger).
struct ThroughputHistory {
    static let sampleIntervalMilliseconds: Int64 = 5000
    static let shortWindowMilliseconds: Int64 = 60_000
    static let longWindowMilliseconds: Int64 = 300_000
    private var samples: [(time: Int64, records: Int, events: Int)] = []

    mutating func record(now: Int64, records: Int, events: Int) {
        if let last = samples.last, now - last.time < Self.sampleIntervalMilliseconds { return }
        samples.append((now, records, events))
        // Keep one sample at or before the long window's start.
        while samples.count > 2 && samples[1].time <= now - Self.longWindowMilliseconds { samples.removeFirst() }
    }

    /// Per second over the window, from the newest sample at or before its start.
    func rates(now: Int64, records: Int, events: Int, window: Int64) -> (records: Double, events: Double) {
        guard let from = samples.last(where: { $0.time <= now - window }) ?? samples.first, now > from.time else { return (0, 0) }
        let seconds = Double(now - from.time) / 1000
        func perSecond(_ count: Int) -> Double { (Double(count) / seconds * 100).rounded() / 100 }
        return (perSecond(records - from.records), perSecond(events - from.events))
    }
}

/// `agentctl status`: the stages' own counters gathered into one document, rates over 1 and 5
/// minutes, and the health verdict (degraded while something is wrong now, or was reported on
/// the health channel in the last 5 minutes).
final class LiveStatus {
    private let graph: AgentGraph
    private let audit: AuditWatch?
    private let packets: PacketSource?
    private let helper: NamespaceHelper?
    private let inspectionEnabled: Bool
    /// The source when it is not the kernel's (audisp, file); the audit watch says which socket otherwise.
    private let configuredSource: AuditSourceMode
    private let configurationPath: String
    private let started = (wall: realtimeMilliseconds(), monotonic: monotonicMilliseconds())
    private var throughput = ThroughputHistory()

    init(
        graph: AgentGraph, audit: AuditWatch?, packets: PacketSource?, helper: NamespaceHelper?, inspectionEnabled: Bool, source: AuditSourceMode,
        configurationPath: String
    ) {
        self.graph = graph
        self.helper = helper
        self.audit = audit
        self.packets = packets
        self.inspectionEnabled = inspectionEnabled
        self.configuredSource = source
        self.configurationPath = configurationPath
    }

    /// A sample for the rates, every loop turn (kept every 5 s).
    func sample(time: LoopTime) {
        let assembly = graph.pipeline.assembler.counters
        throughput.record(now: time.monotonic, records: assembly.records, events: assembly.events)
    }

    func status(ruleKey: String) -> AgentStatus {
        let now = monotonicMilliseconds()
        let assembly = graph.pipeline.assembler.counters
        let short = throughput.rates(now: now, records: assembly.records, events: assembly.events, window: ThroughputHistory.shortWindowMilliseconds)
        let long = throughput.rates(now: now, records: assembly.records, events: assembly.events, window: ThroughputHistory.longWindowMilliseconds)
        let kernel = audit?.lastStatus.map { status in
            AgentStatus.Kernel(
                enabled: Int(status.enabled), lost: Int(status.lost), lostSinceStart: Int(status.lost &- (audit?.firstStatus?.lost ?? status.lost)),
                backlog: Int(status.backlog), backlogLimit: Int(status.backlogLimit), auditPid: Int(status.pid))
        }
        var drops = ["events_completed_early": assembly.completedEarly]
        if let netlink = audit?.session.stream.counters {
            drops["netlink_not_from_kernel"] = netlink.notFromKernel
            drops["netlink_malformed"] = netlink.malformed
            drops["netlink_truncated"] = netlink.truncated
        }
        let auditStatus = AgentStatus.Audit(
            source: (audit?.mode ?? configuredSource).rawValue, ruleKey: ruleKey, rulesInstalled: audit?.session.rules.count ?? 0, kernel: kernel,
            records: assembly.records, events: assembly.events,
            recordsPerSecond: .init(oneMinute: short.records, fiveMinutes: long.records),
            eventsPerSecond: .init(oneMinute: short.events, fiveMinutes: long.events),
            userspaceDrops: drops, parseErrors: graph.pipeline.ingest.malformed, sequenceGaps: assembly.sequenceGaps,
            quietedSenders: audit?.session.quietedSenders.keys.sorted() ?? [])
        let detector = graph.detector
        let fired = detector.counters.alerts
        let firstSeen = detector.firstSeen
        let detection = AgentStatus.Detection(
            rulesEnabled: detector.enabledRules.count, alerts: fired.values.reduce(0, +),
            alertsByRule: Dictionary(uniqueKeysWithValues: fired.map { ($0.key.rawValue, $0.value) }), exclusionsHit: detector.silenced,
            execsChecked: detector.counters.execsChecked, flowsChecked: detector.counters.flowsChecked,
            firstSeen: .init(known: firstSeen.count, writeErrors: firstSeen.writeErrors, overCapacity: firstSeen.overCapacity),
            heldAlerts: detector.heldAlerts)
        let scans = graph.scans.stage
        let queue = scans?.queue.counters
        let yara = AgentStatus.Yara(
            enabled: scans != nil, rules: scans?.ruleCount ?? 0, ruleFiles: scans?.ruleFiles.count ?? 0,
            queued: queue?.queued ?? 0, scans: queue?.scanner.scans ?? 0, cacheHits: queue?.scanner.cacheHits ?? 0,
            filesMatched: queue?.scanner.filesMatched ?? 0, dropped: queue?.dropped ?? 0)
        let outputs = graph.alerts.status
        return AgentStatus(
            version: XferwatchVersion.current, pid: Int(getpid()), started: String(decoding: rfc3339UTF8(milliseconds: started.wall), as: UTF8.self),
            uptimeSeconds: Int((now - started.monotonic) / 1000), configFile: configurationPath, privileges: privileges(),
            health: health(outputs: outputs, kernel: kernel), audit: auditStatus,
            host: .init(
                processes: graph.processes.count, flowsActive: graph.tracker.openFlows.count, flowsReported: graph.tracker.counters.flowsReported,
                networkNamespaces: graph.sockets?.namespaceCount ?? 0, namespaceHelper: helper.map(\.alive),
                sockDiagErrors: graph.sockets?.counters.sockDiagErrors ?? 0, destroyNotificationsLost: graph.sockets?.counters.destroyOverruns ?? 0,
                closeFloods: graph.sockets?.counters.closeFloods ?? 0, closesUnheard: graph.sockets?.closesUnheard ?? []),
            detection: detection, yara: yara,
            inspection: packets?.status(enabled: inspectionEnabled)
                ?? .init(
                    enabled: inspectionEnabled, interfaces: [], packets: 0, kernelDropped: 0, malformed: 0, unidentified: 0, identified: 0,
                    matchedToFlows: 0, promoted: 0),
            outputs: outputs)
    }

    /// Degraded while something is wrong now, or was reported in the last 5 minutes.
    private func health(outputs: AgentStatus.Outputs, kernel: AgentStatus.Kernel?) -> AgentStatus.Health {
        var reasons: [String] = []
        if let kernel, kernel.enabled == 0 { reasons.append("kernel auditing is disabled") }
        if helper?.alive == false { reasons.append("the namespace helper is gone: flows in other network namespaces have no exact byte counts") }
        if inspectionEnabled && packets == nil { reasons.append("the packet tap could not open: protocols are known by port and client name only") }
        if audit?.reportedAuditPidLoss == true { reasons.append("another process holds the audit stream (audit pid \(kernel?.auditPid ?? 0))") }
        if let problem = outputs.file?.problem { reasons.append("alert file: \(problem)") }
        if let syslog = outputs.syslog {
            if let problem = syslog.problem { reasons.append("syslog \(syslog.address): \(problem)") }
            if Spool.isNearlyFull(bytes: syslog.spoolBytes, limit: syslog.spoolLimitBytes) {
                reasons.append("syslog spool \(syslog.spoolBytes * 100 / syslog.spoolLimitBytes)% full")
            }
        }
        for trouble in graph.health.recent where !reasons.contains(trouble.reason) { reasons.append(trouble.reason) }
        return AgentStatus.Health(verdict: reasons.isEmpty ? .healthy : .degraded, reasons: reasons)
    }

    private func privileges() -> AgentStatus.Privileges {
        let now = ProcessPrivileges.current()
        return AgentStatus.Privileges(
            user: now.user, uid: Int(now.uid), gid: Int(now.gid), capabilities: now.effective,
            boundingCapabilities: now.bounding, noNewPrivileges: now.noNewPrivileges)
    }
}
