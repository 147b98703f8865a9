import AuditIngest

/// `/proc/<pid>/net/{tcp,tcp6,udp,udp6}`: the socket tables of a process's network namespace.
/// Slower than sock_diag on busy hosts and without byte counters, but needs no netlink socket
/// in that namespace; used when sock_diag cannot answer.
public enum ProcNetTable {
    /// Parses a whole table. Lines that do not parse are skipped.
    public static func parse(_ text: ArraySlice<UInt8>, transport: Transport, ipv6: Bool) -> [InetSocket] {
        var result: [InetSocket] = []
        var lines = text.split(separator: UInt8(ascii: "\n"))[...]
        _ = lines.popFirst()  // header
        for line in lines {
            if let socket = parseLine(line, transport: transport, ipv6: ipv6) { result.append(socket) }
        }
        return result
    }

    /// `sl local rem st tx:rx tr:when retr uid timeout inode ...`
    static func parseLine(_ line: ArraySlice<UInt8>, transport: Transport, ipv6: Bool) -> InetSocket? {
        let columns = line.split(separator: UInt8(ascii: " "), maxSplits: 10, omittingEmptySubsequences: true)
        guard columns.count >= 10,
            let local = endpoint(columns[1], ipv6: ipv6), let remote = endpoint(columns[2], ipv6: ipv6),
            let state = FieldDecoding.hexNumber(columns[3]),
            let uid = FieldDecoding.decimal(columns[7]), let inode = FieldDecoding.decimal(columns[9])
        else { return nil }
        return InetSocket(
            transport: transport, family: ipv6 ? 10 : 2, state: UInt8(truncatingIfNeeded: state),
            localAddress: local.0, localPort: local.1, remoteAddress: remote.0, remotePort: remote.1,
            inode: UInt64(inode), uid: UInt32(truncatingIfNeeded: uid), cookie: nil, bytesOut: nil, bytesIn: nil)
    }

    /// `0100007F:0277`: the address as 32-bit words printed in host order (little-endian here).
    static func endpoint(_ text: ArraySlice<UInt8>, ipv6: Bool) -> (IPAddress, UInt16)? {
        guard let colon = text.firstIndex(of: UInt8(ascii: ":")) else { return nil }
        let hex = text[..<colon]
        guard hex.count == (ipv6 ? 32 : 8), let port = FieldDecoding.hexNumber(text[text.index(after: colon)...]) else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(ipv6 ? 16 : 4)
        var word = hex.startIndex
        while word < hex.endIndex {
            guard let value = FieldDecoding.hexNumber(hex[word..<(word + 8)]) else { return nil }
            let v = UInt32(truncatingIfNeeded: value)
            bytes += [UInt8(v & 0xff), UInt8(v >> 8 & 0xff), UInt8(v >> 16 & 0xff), UInt8(v >> 24)]
            word += 8
        }
        return (IPAddress(bytes: bytes), UInt16(truncatingIfNeeded: port))
    }
}
