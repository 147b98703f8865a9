/// What the tap needs of one captured packet: its addresses and ports, its TCP sequence number,
/// and where its payload starts. Captures are cut at the snap length, so the payload may be the
/// first bytes only. Every length is checked against what was captured: packets are the
/// attacker's bytes.
public struct DecodedPacket: Equatable, Sendable {
    public enum Transport: UInt8, Sendable {
        case tcp = 6
        case udp = 17
    }

    public var transport: Transport
    /// 4 or 16 bytes.
    public var source: [UInt8]
    public var sourcePort: UInt16
    public var destination: [UInt8]
    public var destinationPort: UInt16
    /// TCP's sequence number (0 for UDP): the same segment seen twice ("any" sees loopback
    /// traffic going out and coming in) is taken once.
    public var sequence: UInt32
    /// Offset of the transport payload in the captured bytes.
    public var payloadOffset: Int
}

public enum PacketDecoder {
    /// libpcap link types the tap opens: "any" gives Linux cooked v1 or v2 headers; an
    /// interface of its own gives Ethernet (or nothing, for tun-like devices).
    public static let linkEthernet: Int32 = 1
    public static let linkRaw: Int32 = 101
    public static let linkLinuxCooked: Int32 = 113
    public static let linkLinuxCooked2: Int32 = 276

    public static func decode(linkType: Int32, _ bytes: UnsafeRawBufferPointer) -> DecodedPacket? {
        let etherType: UInt16
        let network: Int
        switch linkType {
        case linkLinuxCooked:
            guard bytes.count >= 16 else { return nil }
            (etherType, network) = (bytes.be16(14), 16)
        case linkLinuxCooked2:
            guard bytes.count >= 20 else { return nil }
            (etherType, network) = (bytes.be16(0), 20)
        case linkEthernet:
            guard bytes.count >= 14 else { return nil }
            var type = bytes.be16(12), offset = 14
            // One or two VLAN tags.
            while (type == 0x8100 || type == 0x88A8) && offset + 4 <= bytes.count && offset < 22 {
                type = bytes.be16(offset + 2)
                offset += 4
            }
            (etherType, network) = (type, offset)
        case linkRaw:
            guard bytes.count >= 1 else { return nil }
            (etherType, network) = (bytes[0] >> 4 == 6 ? 0x86DD : 0x0800, 0)
        default:
            return nil
        }
        switch etherType {
        case 0x0800: return ipv4(bytes, at: network)
        case 0x86DD: return ipv6(bytes, at: network)
        default: return nil
        }
    }

    private static func ipv4(_ bytes: UnsafeRawBufferPointer, at start: Int) -> DecodedPacket? {
        guard bytes.count >= start + 20, bytes[start] >> 4 == 4 else { return nil }
        let headerLength = Int(bytes[start] & 0x0F) * 4
        // Fragments after the first carry no transport header.
        guard headerLength >= 20, bytes.be16(start + 6) & 0x1FFF == 0 else { return nil }
        let source = Array(bytes[(start + 12)..<(start + 16)]), destination = Array(bytes[(start + 16)..<(start + 20)])
        return transport(bytes, protocolNumber: bytes[start + 9], at: start + headerLength, source: source, destination: destination)
    }

    private static func ipv6(_ bytes: UnsafeRawBufferPointer, at start: Int) -> DecodedPacket? {
        guard bytes.count >= start + 40, bytes[start] >> 4 == 6 else { return nil }
        // Extension headers are rare on TCP and UDP: only the fixed header is followed.
        let source = Array(bytes[(start + 8)..<(start + 24)]), destination = Array(bytes[(start + 24)..<(start + 40)])
        return transport(bytes, protocolNumber: bytes[start + 6], at: start + 40, source: source, destination: destination)
    }

    private static func transport(_ bytes: UnsafeRawBufferPointer, protocolNumber: UInt8, at start: Int, source: [UInt8], destination: [UInt8])
        -> DecodedPacket?
    {
        switch protocolNumber {
        case 6:
            guard bytes.count >= start + 20 else { return nil }
            let headerLength = Int(bytes[start + 12] >> 4) * 4
            guard headerLength >= 20 else { return nil }
            return DecodedPacket(
                transport: .tcp, source: source, sourcePort: bytes.be16(start), destination: destination, destinationPort: bytes.be16(start + 2),
                sequence: UInt32(bytes.be16(start + 4)) << 16 | UInt32(bytes.be16(start + 6)), payloadOffset: min(start + headerLength, bytes.count))
        case 17:
            guard bytes.count >= start + 8 else { return nil }
            return DecodedPacket(
                transport: .udp, source: source, sourcePort: bytes.be16(start), destination: destination, destinationPort: bytes.be16(start + 2),
                sequence: 0, payloadOffset: start + 8)
        default:
            return nil
        }
    }
}

extension UnsafeRawBufferPointer {
    /// A big-endian 16-bit value at `offset` (the caller checked the bounds).
    @inline(__always)
    fileprivate func be16(_ offset: Int) -> UInt16 { UInt16(self[offset]) << 8 | UInt16(self[offset + 1]) }
}
