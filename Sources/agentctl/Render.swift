import Control
import FoundationEssentials

/// `agentctl status` for people: one aligned line per subject.
enum StatusText {
    static func render(_ s: AgentStatus) -> String {
        var rows: [(String, String)] = []
        let audit = s.audit
        var auditLine = "\(audit.source), \(audit.rulesInstalled) rules (key \(audit.ruleKey))"
        if let kernel = audit.kernel {
            auditLine += ", lost \(kernel.lost) (\(kernel.lostSinceStart) since start), backlog \(kernel.backlog)/\(kernel.backlogLimit)"
        }
        if let quieted = audit.quietedSenders, !quieted.isEmpty {
            auditLine += "; datagrams of pid \(quieted.map(String.init).joined(separator: ", ")) not audited (a flood)"
        }
        rows.append(("audit", auditLine))
        rows.append(
            ("records/s", "1m \(decimal(audit.recordsPerSecond.oneMinute))  5m \(decimal(audit.recordsPerSecond.fiveMinutes))  (\(audit.records) in all)"))
        rows.append(("events/s", "1m \(decimal(audit.eventsPerSecond.oneMinute))  5m \(decimal(audit.eventsPerSecond.fiveMinutes))  (\(audit.events) in all)"))
        let drops = audit.userspaceDrops.values.reduce(0, +)
        rows.append(("dropped", "\(drops) in user space, \(audit.parseErrors) parse errors, \(audit.sequenceGaps) serial gaps"))
        rows.append(
            (
                "host",
                "\(s.host.processes) processes, \(s.host.flowsActive) flows active, \(s.host.flowsReported) reported, \(s.host.networkNamespaces) network namespaces watched"
                    + (s.host.namespaceHelper == false ? " (namespace helper gone)" : "")
                    + (s.host.sockDiagErrors + s.host.destroyNotificationsLost == 0
                        ? "" : "; \(s.host.sockDiagErrors) sock_diag errors, \(s.host.destroyNotificationsLost) close notifications lost")
                    + (s.host.closesUnheard.isEmpty
                        ? "" : "; socket closes not heard in network namespace \(s.host.closesUnheard.map(String.init).joined(separator: ", ")) (a flood)")
            ))
        let byRule = s.detection.alertsByRule.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.map { "\($0.key) \($0.value)" }
        rows.append(
            (
                "alerts",
                "\(s.detection.alerts)" + (byRule.isEmpty ? "" : ": " + byRule.joined(separator: ", "))
                    + " (\(s.detection.rulesEnabled) rules enabled, \(s.detection.heldAlerts) held for their destination)"
            ))
        let excluded = s.detection.exclusionsHit.filter { $0.value > 0 }.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
        rows.append(("excluded", excluded.isEmpty ? "none" : excluded.joined(separator: ", ")))
        let seen = s.detection.firstSeen
        rows.append(
            (
                "first seen",
                "\(seen.known) executables known to connect out"
                    + (seen.writeErrors > 0 ? ", \(seen.writeErrors) not saved (state file write errors)" : "")
                    + (seen.overCapacity > 0 ? ", \(seen.overCapacity) over capacity" : "")
            ))
        let i = s.inspection
        rows.append(
            (
                "inspection",
                i.enabled
                    ? (i.interfaces.isEmpty
                        ? "not capturing"
                        : "\(i.interfaces.joined(separator: ", ")): \(i.packets) packets, \(i.identified) identified, \(i.promoted) flows by content, \(i.kernelDropped) dropped by the kernel")
                    : "off"
            ))
        let y = s.yara
        rows.append(
            (
                "yara",
                y.enabled
                    ? "\(y.rules) rules from \(y.ruleFiles) files, \(y.scans) scans, \(y.cacheHits) cached, \(y.filesMatched) matched, \(y.dropped) dropped"
                    : "off"
            ))
        if let file = s.outputs.file {
            rows.append(
                (
                    "alert file",
                    "\(file.path): \(file.written) written, \(file.waiting) waiting, \(file.dropped) dropped"
                        + (file.problem.map { ", failing: \($0)" } ?? "")
                ))
        } else {
            rows.append(("alert file", "off"))
        }
        if let syslog = s.outputs.syslog {
            rows.append(
                (
                    "syslog",
                    "\(syslog.address): " + (syslog.connected ? "connected" : "not connected")
                        + (syslog.problem.map { " (\($0))" } ?? "")
                        + ", \(syslog.delivered) delivered, spool \(syslog.spoolRecords) (\(bytes(syslog.spoolBytes)) of \(bytes(syslog.spoolLimitBytes))), "
                        + "\(syslog.dropped) dropped, \(syslog.truncated) truncated, \(syslog.resent) resent"
                ))
        } else {
            rows.append(("syslog", "off"))
        }
        let p = s.privileges
        rows.append(
            (
                "runs as",
                "\(p.user) (uid \(p.uid), gid \(p.gid)), " + (p.capabilities.isEmpty ? "no capabilities" : p.capabilities.joined(separator: " "))
                    + (p.noNewPrivileges ? ", no new privileges" : "")
            ))
        rows.append(("health", s.health.verdict.rawValue))
        rows += s.health.reasons.map { ("", "- " + $0) }

        let width = rows.map(\.0.count).max() ?? 0
        var text = "xferwatchd \(s.version), pid \(s.pid), up \(duration(s.uptimeSeconds)), config \(s.configFile)\n"
        for (label, value) in rows { text += label.padded(width) + "  " + value + "\n" }
        return text
    }

    static func duration(_ seconds: Int) -> String {
        if seconds < 60 { return "\(seconds)s" }
        if seconds < 3600 { return "\(seconds / 60)m\(String(seconds % 60).leftPadded(2, with: "0"))s" }
        if seconds < 86_400 { return "\(seconds / 3600)h\(String(seconds / 60 % 60).leftPadded(2, with: "0"))m" }
        return "\(seconds / 86_400)d\(String(seconds / 3600 % 24).leftPadded(2, with: "0"))h"
    }
}

/// One alert line for people: time, rule, severity, process, its container, peer, first reason.
enum AlertText {
    static func render(_ bytes: [UInt8]) -> String {
        guard let alert = try? JSONDecoder().decode(AlertDocument.self, from: Data(bytes)) else { return String(decoding: bytes, as: UTF8.self) }
        var parts = [alert.timestamp ?? "-", alert.rule?.id ?? "-", "severity \(alert.event?.severity ?? 0)"]
        if let process = alert.process { parts.append("pid \(process.pid.map(String.init) ?? "-") \(process.commandLine ?? "")") }
        if let container = alert.container { parts.append("in container \(container.name ?? String((container.id ?? "?").prefix(12)))") }
        let destination = alert.destination
        if let host = destination?.ip ?? destination?.address { parts.append("-> \(host)" + (destination?.port.map { ":\($0)" } ?? "")) }
        if let reason = alert.xferwatch?.reasons?.first { parts.append("(\(reason))") }
        return parts.joined(separator: "  ")
    }
}

/// One flow line for people, under `header`.
enum FlowText {
    static let header = "STATE     PROTO  PID      PROCESS          LOCAL -> REMOTE                                 OUT         IN  CONTAINER"

    static func render(_ bytes: [UInt8]) -> String {
        guard let flow = try? JSONDecoder().decode(FlowDocument.self, from: Data(bytes)) else { return String(decoding: bytes, as: UTF8.self) }
        func endpoint(_ e: EndpointDocument?) -> String { "\(e?.ip ?? e?.address ?? "?"):\(e?.port.map(String.init) ?? "?")" }
        return (flow.xferwatch?.state ?? "-").padded(8) + "  " + (flow.network?.protocol ?? "-").padded(5) + "  "
            + (flow.process?.pid.map(String.init) ?? "-").padded(7) + "  " + (flow.process?.name ?? "-").padded(15) + "  "
            + (endpoint(flow.source) + " -> " + endpoint(flow.destination)).padded(45) + "  "
            + (flow.source?.bytes.map(String.init) ?? "-").leftPadded(10) + " " + (flow.destination?.bytes.map(String.init) ?? "-").leftPadded(10)
            + "  " + (flow.container.map { "\($0.runtime ?? "?") \($0.name ?? String(($0.id ?? "?").prefix(12)))" } ?? "-")
    }
}

/// One decimal place, without Foundation's formatters.
func decimal(_ value: Double) -> String {
    let tenths = Int((value * 10).rounded())
    return "\(tenths / 10).\(abs(tenths % 10))"
}

/// 1536 as "1.5 KiB".
func bytes(_ count: Int) -> String {
    var value = Double(count)
    for unit in ["B", "KiB", "MiB", "GiB"] {
        if value < 1024 || unit == "GiB" { return unit == "B" ? "\(count) B" : "\(decimal(value)) \(unit)" }
        value /= 1024
    }
    return "\(count) B"
}

extension String {
    func padded(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
    func leftPadded(_ width: Int, with fill: Character = " ") -> String { count >= width ? self : String(repeating: fill, count: width - count) + self }
}
