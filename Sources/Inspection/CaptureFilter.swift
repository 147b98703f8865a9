/// The tcpdump expression the tap compiles (libpcap's `pcap_compile`) into classic BPF that
/// the kernel runs on every packet before copying any: a length test first, so full-size data
/// segments are rejected in a few instructions, then the first payload bytes of TCP segments
/// (FTP commands and replies, an SSH identification, an SMB message in a NetBIOS session, TLS
/// or HTTP on a file-transfer port, a SOCKS or HTTP CONNECT request) and UDP datagrams (TFTP read and write requests).
public enum CaptureFilter {
    /// Commands a client sends (compared with ASCII letters upper-cased: `& 0xdfdfdfdf`).
    static let ftpCommands = ["USER", "PASS", "STOR", "RETR", "APPE", "STOU", "LIST", "NLST", "PASV", "EPSV", "PORT", "EPRT", "AUTH", "QUIT"]
    /// Replies a server sends: greeting, passive mode, transfer start and end, AUTH accepted.
    static let ftpReplies = ["220 ", "220-", "227 ", "229 ", "150 ", "226 ", "234 "]
    static let httpStarts = ["GET ", "POST", "HEAD", "PUT ", "HTTP"]
    static let transferPorts = [20, 21, 22, 69, 139, 445, 989, 990]

    public static var expression: String {
        let ipv4Payload = "((tcp[12:1] & 0xf0) >> 2)"
        let ipv6Payload = "(40 + ((ip6[52:1] & 0xf0) >> 2))"
        let ports = transferPorts.map(String.init).joined(separator: " or ")
        return """
            (ip and ip[2:2] < 600 and ((tcp and (\(tcpTests(word: { "tcp[\(ipv4Payload) + \($0):\($1)]" }, ports: ports)))) \
            or (udp and not udp port 53 and (udp[8:2] = 1 or udp[8:2] = 2)))) \
            or (ip6 and ip6[4:2] < 580 and ((ip6[6:1] = 6 and (\(tcpTests(word: { "ip6[\(ipv6Payload) + \($0):\($1)]" }, ports: ports)))) \
            or (ip6[6:1] = 17 and not udp port 53 and (ip6[48:2] = 1 or ip6[48:2] = 2))))
            """
    }

    /// The payload tests; `word(offset, size)` loads `size` bytes at `offset` into the payload.
    private static func tcpTests(word: (Int, Int) -> String, ports: String) -> String {
        let first = word(0, 4)
        let commands = ftpCommands.map { "(\(first) & 0xdfdfdfdf) = \(hex($0))" }
        let replies = (ftpReplies + ["SSH-"]).map { "\(first) = \(hex($0))" }
        let smb = ["\(word(4, 4)) = 0xff534d42", "\(word(4, 4)) = 0xfe534d42"].map { "(\(word(0, 1)) = 0 and \($0))" }
        // Proxy requests on any port: SOCKS5 CONNECT (`05 01 00`; a lone 3-byte greeting is too
        // short for the load and fails it), SOCKS4/4a CONNECT (`04 01`), HTTP CONNECT.
        let proxies = ["(\(first) & 0xffffff00) = 0x05010000", "\(word(0, 2)) = 0x0401", "\(first) = \(hex("CONN"))"]
        let others = (["\(word(0, 2)) = 0x1603"] + httpStarts.map { "\(first) = \(hex($0))" }).joined(separator: " or ")
        return (commands + replies + smb + proxies + ["((\(others)) and (tcp port \(ports)))"]).joined(separator: " or ")
    }

    /// Four ASCII characters as the big-endian word a BPF load of 4 bytes gives.
    static func hex(_ text: String) -> String {
        let value = text.utf8.prefix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        return "0x" + String(value, radix: 16)
    }
}
