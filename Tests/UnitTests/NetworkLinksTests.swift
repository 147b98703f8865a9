import Testing

@testable import HostState

/// rtnetlink link messages as the kernel writes them: ifinfomsg, then attributes.
@Suite struct NetworkLinksTests {
    /// An ifinfomsg for link `index` with `flags`, then IFLA_MTU and IFLA_IFNAME (`name`, NUL
    /// ended, padded to 4 bytes).
    func message(index: Int32, flags: UInt32, name: String?) -> [UInt8] {
        var bytes: [UInt8] = [0, 0] + withUnsafeBytes(of: UInt16(1).littleEndian, Array.init)
        bytes += withUnsafeBytes(of: index.littleEndian, Array.init) + withUnsafeBytes(of: flags.littleEndian, Array.init)
        bytes += withUnsafeBytes(of: UInt32(0xffff_ffff).littleEndian, Array.init)
        bytes += [8, 0, 4, 0] + withUnsafeBytes(of: UInt32(1500).littleEndian, Array.init)  // IFLA_MTU
        if let name {
            let value = Array(name.utf8) + [0]
            bytes += withUnsafeBytes(of: UInt16(4 + value.count).littleEndian, Array.init) + [3, 0] + value
            while bytes.count % 4 != 0 { bytes.append(0) }
        }
        return bytes
    }

    func parse(_ type: UInt16, _ bytes: [UInt8]) -> NetworkLinks.Change? { bytes.withUnsafeBytes { NetworkLinks.parse(type: type, $0) } }

    @Test func newAndRemovedLinks() {
        // RTM_NEWLINK 16, RTM_DELLINK 17; IFF_UP 0x1, IFF_LOOPBACK 0x8.
        #expect(parse(16, message(index: 7, flags: 0x1043, name: "veth3f2a")) == .present(.init(index: 7, name: "veth3f2a", isLoopback: false, isUp: true)))
        #expect(parse(16, message(index: 1, flags: 0x49, name: "lo")) == .present(.init(index: 1, name: "lo", isLoopback: true, isUp: true)))
        #expect(parse(16, message(index: 9, flags: 0x1002, name: "xw9p")) == .present(.init(index: 9, name: "xw9p", isLoopback: false, isUp: false)))
        #expect(parse(17, message(index: 7, flags: 0, name: "veth3f2a")) == .removed(index: 7))
    }

    @Test func otherMessagesAndBrokenOnesAreNoChange() {
        #expect(parse(20, message(index: 7, flags: 1, name: "eth0")) == nil)  // RTM_NEWADDR
        #expect(parse(16, message(index: 7, flags: 1, name: nil)) == nil)
        #expect(parse(16, Array(message(index: 7, flags: 1, name: "eth0").prefix(12))) == nil)
        var lying = message(index: 7, flags: 1, name: "eth0")
        lying[24] = 200  // the name attribute says it runs past the message
        #expect(parse(16, lying) == nil)
        #expect(parse(16, message(index: 7, flags: 1, name: "")) == nil)
    }
}
