import Runtime

#if canImport(Glibc)
    import Glibc
#endif

/// An address block in CIDR notation (`10.0.0.0/8`, `fe80::/10`); a bare address is a host.
/// IPv4 blocks also contain the IPv4-mapped IPv6 form of their addresses (`::ffff:10.1.2.3`),
/// which is how dual-stack sockets report IPv4 peers.
public struct IPNetwork: Sendable, Hashable, CustomStringConvertible {
    public let bytes: [UInt8]
    public let prefixLength: Int

    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = literalIPAddress(String(parts[0])) else { return nil }
        let maximum = address.count * 8
        var length = maximum
        if parts.count == 2 {
            guard let given = Int(parts[1]), (0...maximum).contains(given) else { return nil }
            length = given
        }
        bytes = Self.masked(address, length)
        prefixLength = length
    }

    public var description: String { "\(Self.format(bytes))/\(prefixLength)" }

    /// Whether the 4- or 16-byte address lies in this block.
    public func contains(_ address: [UInt8]) -> Bool {
        var address = address
        if bytes.count == 4 && address.count == 16 && Self.isIPv4Mapped(address) { address = Array(address[12...]) }
        guard address.count == bytes.count else { return false }
        var remaining = prefixLength
        var i = 0
        while remaining >= 8 {
            if address[i] != bytes[i] { return false }
            remaining -= 8
            i += 1
        }
        guard remaining > 0 else { return true }
        let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - remaining))
        return address[i] & mask == bytes[i]
    }

    public static func isIPv4Mapped(_ address: [UInt8]) -> Bool {
        address.count == 16 && address[0..<10].allSatisfy { $0 == 0 } && address[10] == 0xFF && address[11] == 0xFF
    }

    static func masked(_ address: [UInt8], _ length: Int) -> [UInt8] {
        address.enumerated().map { index, byte in
            let bits = min(max(length - index * 8, 0), 8)
            return bits == 8 ? byte : byte & UInt8(truncatingIfNeeded: 0xFF << (8 - bits))
        }
    }

    static func format(_ bytes: [UInt8]) -> String {
        var buffer = [CChar](repeating: 0, count: 64)
        var copy = bytes
        let family = bytes.count == 4 ? AF_INET : AF_INET6
        guard inet_ntop(family, &copy, &buffer, socklen_t(buffer.count)) != nil else { return "?" }
        let text = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return String(decoding: text, as: UTF8.self)
    }
}

extension Array where Element == IPNetwork {
    public func contains(address: [UInt8]) -> Bool { contains { $0.contains(address) } }
}
