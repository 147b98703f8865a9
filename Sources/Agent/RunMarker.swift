import ByteJSON
import Runtime

#if canImport(Glibc)
    import Glibc
#endif

/// `state_dir/running`: written at start, removed at a clean stop. Found at start, it says the
/// previous run ended without stopping (SIGKILL, a crash, the host going down): what happened
/// on the host from then until now was not watched, which the SOC must hear.
struct RunMarker {
    let path: String

    init(stateDirectory: String) { path = stateDirectory + "/running" }

    struct UnfinishedRun {
        /// `pid N, started T`.
        let description: String
        /// The audit enabled flag that run found at its start, to give back at our stop.
        let auditEnabledBefore: UInt32?
    }

    /// What the marker of an unfinished earlier run says; nil when the last run stopped
    /// cleanly, or that process still runs (another instance, multicast).
    func unfinishedRun() -> UnfinishedRun? {
        guard let text = readTextFile(path, limit: 256, regularOnly: true) else { return nil }
        var fields: [Substring: Substring] = [:]
        for part in text.split(whereSeparator: { $0 == " " || $0 == "\n" }) {
            let pair = part.split(separator: "=", maxSplits: 1)
            if pair.count == 2 { fields[pair[0]] = pair[1] }
        }
        if let pid = fields["pid"].flatMap({ Int32($0) }), pid != getpid(), Self.isAgent(pid) { return nil }
        return UnfinishedRun(
            description: "pid \(fields["pid"] ?? "?"), started \(fields["started"] ?? "?")",
            auditEnabledBefore: fields["audit_enabled_before"].flatMap { UInt32($0) })
    }

    /// Marks this run as started; false (errno set) when the marker cannot be written.
    func write(startedAt milliseconds: Int64, auditEnabledBefore: UInt32?) -> Bool {
        var text = "pid=\(getpid()) started=\(String(decoding: rfc3339UTF8(milliseconds: milliseconds), as: UTF8.self))"
        if let auditEnabledBefore { text += " audit_enabled_before=\(auditEnabledBefore)" }
        text += "\n"
        return writeFileAtomically(path, mode: 0o640, [Array(text.utf8)])
    }

    /// A running xferwatchd, also one whose binary an upgrade replaced (`... (deleted)`).
    static func isAgent(_ pid: Int32) -> Bool {
        guard pid > 0, kill(pid, 0) == 0, let exe = symbolicLinkTarget("/proc/\(pid)/exe") else { return false }
        return exe.hasSuffix("/xferwatchd") || exe.hasSuffix("/xferwatchd (deleted)")
    }

    /// A clean stop.
    func remove() { unlink(path) }
}
