import CLinux

#if canImport(Glibc)
    import Glibc
#endif

/// A netlink call that failed, with its errno.
public struct NetlinkError: Error, CustomStringConvertible {
    public var operation: String
    public var code: Int32
    public var description: String { "\(operation): \(String(cString: strerror(code)))" }
}

/// Walking the messages of one netlink datagram (sock_diag, rtnetlink): type, flags, sequence
/// number and payload of each whole message; a truncated one ends the walk.
enum NetlinkMessages {
    static func forEach(_ buffer: UnsafeRawBufferPointer, _ body: (UInt16, UInt16, UInt32, UnsafeRawBufferPointer) -> Void) {
        var offset = 0
        let headerSize = MemoryLayout<nlmsghdr>.size
        while offset + headerSize <= buffer.count {
            let length = Int(buffer.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
            let type = buffer.loadUnaligned(fromByteOffset: offset + 4, as: UInt16.self)
            let flags = buffer.loadUnaligned(fromByteOffset: offset + 6, as: UInt16.self)
            let seq = buffer.loadUnaligned(fromByteOffset: offset + 8, as: UInt32.self)
            guard length >= headerSize, offset + length <= buffer.count else { return }
            body(type, flags, seq, UnsafeRawBufferPointer(rebasing: buffer[(offset + headerSize)..<(offset + length)]))
            offset += (length + 3) & ~3
        }
    }
}
