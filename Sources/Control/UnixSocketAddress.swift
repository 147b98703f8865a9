#if canImport(Glibc)
import Glibc
#endif

/// A filesystem Unix-domain socket address, for bind (the agent) and connect (agentctl).
public struct UnixSocketAddress {
    public private(set) var storage = sockaddr_un()

    /// nil when the path does not fit sun_path (107 bytes and a NUL).
    public init?(path: String) {
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: storage.sun_path)
        guard !bytes.isEmpty, bytes.count < capacity else { return nil }
        storage.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &storage.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
    }

    public var length: socklen_t { socklen_t(MemoryLayout<sockaddr_un>.size) }

    /// Calls `body` with the address as a `sockaddr` (bind, connect).
    public func withSockaddr<Result>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> Result) -> Result {
        withUnsafePointer(to: storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) }
        }
    }
}
