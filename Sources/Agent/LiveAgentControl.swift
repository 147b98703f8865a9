import AgentConfig
import ByteJSON
import Control
import Detection
import Flows
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

/// What agentctl asks of the live agent: status, flows, rules, reload.
extension LiveAgent: ControlHandler {
    func status() -> AgentStatus {
        let now = monotonicMilliseconds()
        let assembly = pipeline.assembler.counters
        let short = throughput.rates(now: now, records: assembly.records, events: assembly.events, window: ThroughputHistory.shortWindowMilliseconds)
        let long = throughput.rates(now: now, records: assembly.records, events: assembly.events, window: ThroughputHistory.longWindowMilliseconds)
        let kernel = lastStatus.map { status in
            AgentStatus.Kernel(enabled: Int(status.enabled), lost: Int(status.lost), lostSinceStart: Int(status.lost &- (firstStatus?.lost ?? status.lost)),
                               backlog: Int(status.backlog), backlogLimit: Int(status.backlogLimit), auditPid: Int(status.pid))
        }
        var drops: [String: Int] = [:]
        if let netlink = session?.reader.counters {
            drops = ["netlink_not_from_kernel": netlink.notFromKernel, "netlink_malformed": netlink.malformed, "netlink_truncated": netlink.truncated]
        }
        let audit = AgentStatus.Audit(
            source: sourceMode.rawValue, ruleKey: configuration.audit.ruleKey, rulesInstalled: session?.rules.count ?? 0, kernel: kernel,
            records: assembly.records, events: assembly.events,
            recordsPerSecond: .init(oneMinute: short.records, fiveMinutes: long.records),
            eventsPerSecond: .init(oneMinute: short.events, fiveMinutes: long.events),
            userspaceDrops: drops, parseErrors: pipeline.ingest.malformed, sequenceGaps: assembly.sequenceGaps)
        let fired = detector.counters.alerts
        let detection = AgentStatus.Detection(
            rulesEnabled: detector.enabledRules.count, alerts: fired.values.reduce(0, +),
            alertsByRule: Dictionary(uniqueKeysWithValues: fired.map { ($0.key.rawValue, $0.value) }), exclusionsHit: detector.silenced,
            execsChecked: detector.counters.execsChecked, flowsChecked: detector.counters.flowsChecked)
        let queue = scans?.queue.counters
        let yara = AgentStatus.Yara(enabled: scans != nil, rules: scans?.ruleCount ?? 0, ruleFiles: scans?.ruleFiles.count ?? 0,
                                    queued: queue?.queued ?? 0, scans: queue?.scanner.scans ?? 0, cacheHits: queue?.scanner.cacheHits ?? 0,
                                    filesMatched: queue?.scanner.filesMatched ?? 0, dropped: queue?.dropped ?? 0)
        let outputs = alerts.status
        return AgentStatus(
            version: XferwatchVersion.current, pid: Int(getpid()), started: String(decoding: rfc3339UTF8(milliseconds: started.wall), as: UTF8.self),
            uptimeSeconds: Int((now - started.monotonic) / 1000), configFile: configurationPath, privileges: privileges(),
            health: health(outputs: outputs, kernel: kernel), audit: audit,
            host: .init(processes: processes.count, flowsActive: tracker.openFlows.count, flowsReported: tracker.counters.flowsReported),
            detection: detection, yara: yara, outputs: outputs)
    }

    /// Degraded while something is wrong now, or was reported in the last 5 minutes.
    private func health(outputs: AgentStatus.Outputs, kernel: AgentStatus.Kernel?) -> AgentStatus.Health {
        var reasons: [String] = []
        if let kernel, kernel.enabled == 0 { reasons.append("kernel auditing is disabled") }
        if reportedAuditPidLoss { reasons.append("another process holds the audit stream (audit pid \(kernel?.auditPid ?? 0))") }
        if let problem = outputs.file?.problem { reasons.append("alert file: \(problem)") }
        if let syslog = outputs.syslog {
            if let problem = syslog.problem { reasons.append("syslog \(syslog.address): \(problem)") }
            if syslog.spoolBytes * 5 >= syslog.spoolLimitBytes * 4 { reasons.append("syslog spool \(syslog.spoolBytes * 100 / syslog.spoolLimitBytes)% full") }
        }
        for trouble in recentTrouble where !reasons.contains(trouble.reason) { reasons.append(trouble.reason) }
        return AgentStatus.Health(verdict: reasons.isEmpty ? .healthy : .degraded, reasons: reasons)
    }

    func flowLines() -> [[UInt8]] {
        var json = JSONWriter()
        var lines: [[UInt8]] = []
        for flow in tracker.openFlows.sorted(by: { $0.start < $1.start }) {
            json.reset()
            FlowJSON.write(flow, to: &json)
            lines.append(json.bytes)
        }
        return lines + recentFlows.all
    }

    func rulesReport() -> RulesReport {
        let fired = detector.counters.alerts
        let enabled = detector.enabledRules
        let silenced = detector.silenced
        return RulesReport(
            rules: RuleID.allCases.map { .init(id: $0.rawValue, name: $0.info.name, enabled: enabled.contains($0), alerts: fired[$0] ?? 0) },
            exclusions: configuration.exclusions.map { .init(name: $0.name, rules: $0.rules.map(\.rawValue).sorted(), hits: silenced[$0.name] ?? 0) },
            yaraRuleFiles: scans?.ruleFiles ?? [], yaraRules: scans?.ruleCount ?? 0)
    }

    /// agentctl reload and SIGHUP: the file is read and everything in it checked (patterns,
    /// YARA rule files) before anything changes; then detection, exclusions, outputs and YARA
    /// rules are replaced. Sections only a restart can apply are named and left as they run.
    func reload() -> ControlResponse {
        let next: AgentConfiguration
        do {
            next = try AgentConfiguration.load(path: configurationPath)
        } catch {
            log.error("reload refused, the running configuration stays: \(error.description)")
            return .refused(.invalidConfiguration, error.description)
        }
        // A rule file with errors refuses the reload (at start it would be skipped): the
        // operator just edited it and keeps the rules that work until it is fixed.
        let (yaraRules, yaraErrors) = ScanStage.compile(next.yara)
        if !yaraErrors.isEmpty {
            log.error("reload refused, the running configuration stays: \(yaraErrors.joined(separator: "; "))")
            return .refused(.invalidConfiguration, yaraErrors.joined(separator: "; "))
        }
        var warnings: [String] = []
        do {
            try detector.reconfigure(next)
        } catch {
            log.error("reload refused, the running configuration stays: \(error)")
            return .refused(.invalidConfiguration, "\(error)")
        }
        var applied = ["detection", "network", "exclusions"]
        if next.output != configuration.output {
            alerts.reconfigure(next.output)
            applied.append("output")
        }
        if let yaraRules {
            if let scans {
                scans.replace(rules: yaraRules, settings: next.yara)
            } else {
                scans = ScanStage.start(yaraRules, settings: next.yara, catalog: catalog, processes: processes, log: log)
            }
        } else {
            if next.yara.enabled {
                warnings.append(ScanStage.noRules(next.yara))
                log.warning(ScanStage.noRules(next.yara))
            }
            if let running = scans {
                running.queue.stop()
                running.collect(detector: detector, log: log, resultsReady: true)
                scans = nil
            }
        }
        flowConsumers.scans = scans
        applied.append("rules.yara")

        var restartNeeded: [String] = []
        var kept = next
        if next.agent != configuration.agent { restartNeeded.append("agent"); kept.agent = configuration.agent }
        if next.audit != configuration.audit { restartNeeded.append("audit"); kept.audit = configuration.audit }
        if next.host != configuration.host { restartNeeded.append("host"); kept.host = configuration.host }
        if next.flows != configuration.flows { restartNeeded.append("flows"); kept.flows = configuration.flows }
        if next.yara.queueSize != configuration.yara.queueSize && scans != nil { restartNeeded.append("rules.yara.queue_size") }
        configuration = kept
        log.info("reloaded \(configurationPath): applied \(applied.joined(separator: ", "))"
            + (restartNeeded.isEmpty ? "" : "; a restart is needed for \(restartNeeded.joined(separator: ", "))")
            + "; \(detector.enabledRules.count) rules, \(next.exclusions.count) exclusions, \(scans?.ruleCount ?? 0) YARA rules")
        return ControlResponse(reload: ReloadResult(applied: applied, restartNeeded: restartNeeded, warnings: warnings))
    }

    private func privileges() -> AgentStatus.Privileges {
        let now = ProcessPrivileges.current()
        return AgentStatus.Privileges(user: now.user, uid: Int(now.uid), gid: Int(now.gid), capabilities: now.effective,
                                      boundingCapabilities: now.bounding, noNewPrivileges: now.noNewPrivileges)
    }
}
