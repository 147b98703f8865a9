#if canImport(Glibc)
    import Glibc
#endif

/// A Unix-domain socket address, for bind (the agent), connect (agentctl) and sendto (the
/// service manager's notification socket). `@name` is an abstract address, as systemd writes it.
public struct UnixSocketAddress {
    public private(set) var storage = sockaddr_un()
    public let length: socklen_t

    /// nil when the path does not fit sun_path (107 bytes and a NUL).
    public init?(path: String) {
        var bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: storage.sun_path)
        guard !bytes.isEmpty, bytes.count < capacity else { return nil }
        let abstract = bytes[0] == UInt8(ascii: "@")
        if abstract { bytes[0] = 0 }
        storage.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &storage.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        // An abstract name is exactly its bytes: a trailing NUL would be part of it.
        length = abstract ? socklen_t(MemoryLayout<sa_family_t>.size + bytes.count) : socklen_t(MemoryLayout<sockaddr_un>.size)
    }

    /// Calls `body` with the address as a `sockaddr` (bind, connect).
    public func withSockaddr<Result>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> Result) -> Result {
        withUnsafePointer(to: storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) }
        }
    }
}
