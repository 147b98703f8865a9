/// The agent's counters in the Prometheus text exposition format (version 0.0.4), made from the
/// status document so that `agentctl status` and the metrics never disagree. Names follow the
/// Prometheus conventions: the `xferwatch_` prefix, base units, `_total` for counters.
public enum MetricsText {
    /// One sample: name, labels, value.
    struct Sample {
        let labels: [(String, String)]
        let value: Double
    }

    /// Every line, newline included.
    public static func lines(_ status: AgentStatus) -> [String] {
        var out: [String] = []
        func metric(_ name: String, _ type: String, _ help: String, _ samples: [Sample]) {
            out.append("# HELP xferwatch_\(name) \(escapeHelp(help))\n")
            out.append("# TYPE xferwatch_\(name) \(type)\n")
            for sample in samples {
                let labels = sample.labels.isEmpty ? "" : "{" + sample.labels.map { "\($0.0)=\"\(escapeLabel($0.1))\"" }.joined(separator: ",") + "}"
                out.append("xferwatch_\(name)\(labels) \(format(sample.value))\n")
            }
        }
        func one(_ value: Int) -> [Sample] { [Sample(labels: [], value: Double(value))] }
        func by(_ label: String, _ values: [String: Int]) -> [Sample] {
            values.sorted { $0.key < $1.key }.map { Sample(labels: [(label, $0.key)], value: Double($0.value)) }
        }

        metric("up", "gauge", "1 while the agent answers.", one(1))
        metric("healthy", "gauge", "1 when agentctl status says healthy, 0 when degraded.", one(status.health.verdict == .healthy ? 1 : 0))
        metric("uptime_seconds", "gauge", "Seconds since the agent started.", one(status.uptimeSeconds))
        let audit = status.audit
        metric("audit_records_total", "counter", "Audit records read.", one(audit.records))
        metric("audit_events_total", "counter", "Audit events assembled.", one(audit.events))
        metric("audit_parse_errors_total", "counter", "Records that did not parse.", one(audit.parseErrors))
        metric("audit_sequence_gaps_total", "counter", "Gaps in the audit serial numbers.", one(audit.sequenceGaps))
        metric("audit_quieted_senders", "gauge", "Processes whose datagram flood is not audited now.", one(audit.quietedSenders?.count ?? 0))
        metric("audit_userspace_drops_total", "counter", "Records or events dropped in user space, by reason.", by("reason", audit.userspaceDrops))
        if let kernel = audit.kernel {
            metric("kernel_lost_total", "counter", "Audit records the kernel lost since the agent started.", one(kernel.lostSinceStart))
            metric("kernel_backlog", "gauge", "Audit records waiting in the kernel.", one(kernel.backlog))
            metric("kernel_backlog_limit", "gauge", "The kernel's audit backlog limit.", one(kernel.backlogLimit))
            metric("kernel_audit_enabled", "gauge", "The kernel's audit enabled flag.", one(kernel.enabled))
        }
        metric("processes", "gauge", "Processes the agent holds.", one(status.host.processes))
        metric("flows_active", "gauge", "File-transfer flows open.", one(status.host.flowsActive))
        metric("flows_reported_total", "counter", "File-transfer flows finished and reported.", one(status.host.flowsReported))
        metric("network_namespaces", "gauge", "Network namespaces whose sock_diag sockets are open.", one(status.host.networkNamespaces))
        metric("sock_diag_errors_total", "counter", "sock_diag requests that failed.", one(status.host.sockDiagErrors))
        metric(
            "destroy_notifications_lost_total", "counter", "Socket close notifications the kernel dropped (receive buffer overrun).",
            one(status.host.destroyNotificationsLost))
        metric("close_floods_total", "counter", "Floods of socket closes whose notifications were not heard for a while.", one(status.host.closeFloods))
        metric(
            "closes_unheard_namespaces", "gauge", "Network namespaces whose socket closes are not heard now (a flood).", one(status.host.closesUnheard.count))
        let detection = status.detection
        metric("alerts_total", "counter", "Alerts emitted, by rule.", by("rule", detection.alertsByRule))
        metric("exclusion_hits_total", "counter", "Alerts an exclusion silenced, by exclusion.", by("exclusion", detection.exclusionsHit))
        metric("alerts_held", "gauge", "Execve-time alerts waiting for their process's first connection.", one(detection.heldAlerts))
        metric("execs_checked_total", "counter", "Execve events the rules checked.", one(detection.execsChecked))
        metric("flows_checked_total", "counter", "Flows the rules checked.", one(detection.flowsChecked))
        metric("rules_enabled", "gauge", "Detection rules enabled.", one(detection.rulesEnabled))
        metric("first_seen_executables", "gauge", "Executables the first-seen rule knows.", one(detection.firstSeen.known))
        metric("first_seen_write_errors_total", "counter", "First-seen entries that could not be written.", one(detection.firstSeen.writeErrors))
        metric("first_seen_over_capacity_total", "counter", "New executables past the first-seen store's bound.", one(detection.firstSeen.overCapacity))
        let yara = status.yara
        metric("yara_rules", "gauge", "YARA rules compiled.", one(yara.rules))
        metric("yara_queue", "gauge", "Scan targets waiting for the scanner.", one(yara.queued))
        metric("yara_scans_total", "counter", "Files YARA scanned.", one(yara.scans))
        metric("yara_cache_hits_total", "counter", "Scans answered from the cache.", one(yara.cacheHits))
        metric("yara_files_matched_total", "counter", "Files a YARA rule matched.", one(yara.filesMatched))
        metric("yara_queue_dropped_total", "counter", "Scan targets dropped on a full queue.", one(yara.dropped))
        let packets = status.inspection
        metric("packets_total", "counter", "Packets the tap's kernel filter passed.", one(packets.packets))
        metric("packets_kernel_dropped_total", "counter", "Packets the kernel dropped from the tap's buffer.", one(packets.kernelDropped))
        metric("packets_malformed_total", "counter", "Packets the decoder refused.", one(packets.malformed))
        metric("packets_unidentified_total", "counter", "Payloads whose first bytes named no protocol.", one(packets.unidentified))
        metric("packets_identified_total", "counter", "Packets whose first bytes named a protocol.", one(packets.identified))
        metric("packets_matched_total", "counter", "Identified packets matched to a flow the agent tracks.", one(packets.matchedToFlows))
        metric("flows_promoted_total", "counter", "Connections the tap's content made flows.", one(packets.promoted))
        if let file = status.outputs.file {
            metric("alert_file_written_total", "counter", "Alerts written to the alert file.", one(file.written))
            metric("alert_file_waiting", "gauge", "Alerts waiting to be written.", one(file.waiting))
            metric("alert_file_dropped_total", "counter", "Alerts the alert file dropped.", one(file.dropped))
            metric("alert_file_rotations_total", "counter", "Rotations of the alert file.", one(file.rotations))
        }
        if let syslog = status.outputs.syslog {
            metric("syslog_connected", "gauge", "1 while connected to the receiver.", one(syslog.connected ? 1 : 0))
            metric("syslog_delivered_total", "counter", "Alerts the receiver took.", one(syslog.delivered))
            metric("syslog_dropped_total", "counter", "Alerts the syslog output dropped.", one(syslog.dropped))
            metric("syslog_truncated_total", "counter", "Alerts shortened to fit the message size.", one(syslog.truncated))
            metric("syslog_connections_total", "counter", "Connections made to the receiver.", one(syslog.connections))
            metric(
                "syslog_resent_total", "counter", "Alerts sent again after a connection broke before the receiver confirmed them.",
                one(syslog.resent))
            metric("syslog_spool_records", "gauge", "Alerts in the spool, not yet delivered.", one(syslog.spoolRecords))
            metric("syslog_spool_bytes", "gauge", "Bytes in the spool.", one(syslog.spoolBytes))
            metric("syslog_spool_limit_bytes", "gauge", "The spool's bound.", one(syslog.spoolLimitBytes))
        }
        metric(
            "stage_errors_total", "counter", "Errors by pipeline stage: the sum of that stage's error and drop counters above.",
            by("stage", stageErrors(status)))
        return out
    }

    /// One family to alert on (`increase(xferwatch_stage_errors_total[5m]) > 0`), whatever failed.
    static func stageErrors(_ status: AgentStatus) -> [String: Int] {
        var errors = [
            "audit": status.audit.parseErrors + status.audit.userspaceDrops.values.reduce(0, +),
            "sockets": status.host.sockDiagErrors + status.host.destroyNotificationsLost,
            "inspection": status.inspection.malformed + status.inspection.kernelDropped,
            "first_seen": status.detection.firstSeen.writeErrors + status.detection.firstSeen.overCapacity,
            "yara": status.yara.dropped,
        ]
        if let file = status.outputs.file { errors["alert_file"] = file.dropped }
        if let syslog = status.outputs.syslog { errors["syslog"] = syslog.dropped }
        return errors
    }

    /// Label values: backslash, double quote and newline escaped.
    static func escapeLabel(_ value: String) -> String {
        var out = ""
        for character in value {
            switch character {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(character)
            }
        }
        return out
    }

    /// HELP text: backslash and newline escaped.
    static func escapeHelp(_ value: String) -> String {
        escapeLabel(value).replacing("\\\"", with: "\"")
    }

    static func format(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
    }
}
