import AuditIngest

#if canImport(Glibc)
    import Glibc
#endif

/// uid -> user name for alerts. Live, from the host's passwd database (NSS), cached; in a
/// replay, only the names the log itself carries (auditd's ENRICHED `UID="root"` beside
/// `uid=0`): today's passwd may not be the recorded host's.
public final class UserNames {
    public enum Source: Sendable { case host, log }

    private let source: Source
    private var cache: [UInt32: String?] = [:]

    public init(source: Source = .host) { self.source = source }

    public func name(of uid: UInt32) -> String? {
        if let cached = cache[uid] { return cached }
        guard source == .host else { return nil }
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 4096)
        let status = getpwuid_r(uid, &entry, &buffer, buffer.count, &result)
        let name = status == 0 && result != nil ? String(cString: entry.pw_name) : nil
        if cache.count > 4096 { cache.removeAll() }
        cache[uid] = name
        return name
    }

    /// A logged record's names for its ids (replay): `UID="root"` for `uid=0` and the like.
    public func learn(from record: AuditRecord) {
        guard source == .log, record.interpretedStart < record.fields.count else { return }
        learn(record, "uid", "UID")
        learn(record, "euid", "EUID")
        learn(record, "auid", "AUID")
    }

    private func learn(_ record: AuditRecord, _ id: StaticString, _ interpreted: StaticString) {
        guard let uid = record.integer(id), let value = UInt32(exactly: uid), let name = record.interpretedString(interpreted),
            name != "unset", !name.isEmpty, cache[value] == nil
        else { return }
        if cache.count > 4096 { cache.removeAll() }
        cache[value] = name
    }
}
