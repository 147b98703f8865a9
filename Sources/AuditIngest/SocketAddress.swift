/// A decoded SOCKADDR `saddr`: the kernel's copy of the sockaddr a process passed, as hex.
/// The family is in host byte order (little-endian here); ports are in network order.
public enum SocketAddress: Equatable, Sendable {
    case inet(address: IPAddress, port: UInt16)
    case inet6(address: IPAddress, port: UInt16, scopeID: UInt32)
    case unix(path: [UInt8], abstract: Bool)
    case netlink(portID: UInt32, groups: UInt32)
    case other(family: UInt16)

    public static let familyUnix: UInt16 = 1
    public static let familyInet: UInt16 = 2
    public static let familyInet6: UInt16 = 10
    public static let familyNetlink: UInt16 = 16

    /// Decodes the hex `saddr` value; nil when it is not hex or too short for its family.
    public init?(hex: ArraySlice<UInt8>) {
        guard let bytes = FieldDecoding.hex(hex) else { return nil }
        self.init(bytes: bytes)
    }

    public init?(bytes: [UInt8]) {
        guard bytes.count >= 2 else { return nil }
        let family = UInt16(bytes[0]) | UInt16(bytes[1]) << 8
        func port() -> UInt16 { UInt16(bytes[2]) << 8 | UInt16(bytes[3]) }
        func little32(_ at: Int) -> UInt32 {
            UInt32(bytes[at]) | UInt32(bytes[at + 1]) << 8 | UInt32(bytes[at + 2]) << 16 | UInt32(bytes[at + 3]) << 24
        }
        switch family {
        case Self.familyInet:
            guard bytes.count >= 8 else { return nil }
            self = .inet(address: IPAddress(bytes: bytes[4..<8]), port: port())
        case Self.familyInet6:
            guard bytes.count >= 24 else { return nil }
            let scope = bytes.count >= 28 ? little32(24) : 0
            self = .inet6(address: IPAddress(bytes: bytes[8..<24]), port: port(), scopeID: scope)
        case Self.familyUnix:
            let path = bytes.dropFirst(2)
            if path.first == 0 {
                // Abstract names are not NUL-terminated: keep what the kernel copied.
                self = .unix(path: Array(path.dropFirst()), abstract: true)
            } else {
                self = .unix(path: Array(path.prefix(while: { $0 != 0 })), abstract: false)
            }
        case Self.familyNetlink:
            guard bytes.count >= 12 else { return nil }
            self = .netlink(portID: little32(4), groups: little32(8))
        default:
            self = .other(family: family)
        }
    }

    public var familyName: String {
        switch self {
        case .inet: "inet"
        case .inet6: "inet6"
        case .unix: "local"
        case .netlink: "netlink"
        case .other(let family): "family \(family)"
        }
    }
}

/// An IPv4 or IPv6 address as its bytes, printed the usual way (RFC 5952 for IPv6).
public struct IPAddress: Hashable, Sendable, CustomStringConvertible {
    public let bytes: [UInt8]

    public init(bytes: some Collection<UInt8>) { self.bytes = Array(bytes) }

    public var description: String {
        if bytes.count == 4 { return bytes.map(String.init).joined(separator: ".") }
        guard bytes.count == 16 else { return "?" }
        // IPv4-mapped addresses read better in dotted form.
        if bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xFF, bytes[11] == 0xFF {
            return "::ffff:" + bytes[12..<16].map(String.init).joined(separator: ".")
        }
        let groups = (0..<8).map { UInt16(bytes[$0 * 2]) << 8 | UInt16(bytes[$0 * 2 + 1]) }
        // The longest run of two or more zero groups becomes "::".
        var bestStart = -1, bestLength = 0, runStart = -1
        for i in 0...8 {
            if i < 8 && groups[i] == 0 {
                if runStart < 0 { runStart = i }
            } else if runStart >= 0 {
                if i - runStart > bestLength { bestStart = runStart; bestLength = i - runStart }
                runStart = -1
            }
        }
        func text(_ range: Range<Int>) -> String {
            groups[range].map { String($0, radix: 16) }.joined(separator: ":")
        }
        guard bestLength >= 2 else { return text(0..<8) }
        return text(0..<bestStart) + "::" + text((bestStart + bestLength)..<8)
    }
}
