#if canImport(Glibc)
import Glibc
#endif

/// uid -> user name from the host's passwd database (NSS), cached: alerts name the user.
public final class UserNames {
    private var cache: [UInt32: String?] = [:]

    public init() {}

    public func name(of uid: UInt32) -> String? {
        if let cached = cache[uid] { return cached }
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 4096)
        let status = getpwuid_r(uid, &entry, &buffer, buffer.count, &result)
        let name = status == 0 && result != nil ? String(cString: entry.pw_name) : nil
        if cache.count > 4096 { cache.removeAll() }
        cache[uid] = name
        return name
    }
}
