/// What the first bytes of a TCP segment or UDP datagram say about its protocol. The parsers
/// read at most the captured bytes, copy at most a line, and keep no password: PASS's argument
/// is replaced before anything leaves the parser.
public enum Content: Equatable, Sendable {
    /// A client's FTP command: the verb upper-cased and its argument (control characters
    /// dropped, at most 256 bytes; PASS's is `<redacted>`).
    case ftpCommand(verb: String, argument: String)
    /// A server's FTP reply: its code and text.
    case ftpReply(code: Int, text: String)
    /// An SSH identification string (`SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3`).
    case sshIdentification(String)
    /// An SMB message in a NetBIOS session: 1 for SMB1, 2 for SMB2/3.
    case smb(version: Int)
    /// A TFTP read (RRQ) or write (WRQ) request.
    case tftpRequest(write: Bool, file: String, mode: String)
    /// A TLS handshake record.
    case tls
    /// An HTTP request or status line.
    case http(String)

    /// How a flow's `network.protocol` names it.
    public var protocolName: String {
        switch self {
        case .ftpCommand, .ftpReply: "ftp"
        case .sshIdentification: "ssh"
        case .smb: "smb"
        case .tftpRequest: "tftp"
        case .tls: "tls"
        case .http: "http"
        }
    }
}

public enum ContentParser {
    static let maximumText = 256
    /// Verbs of RFC 959 and its extensions that clients send: a line starting with one of these
    /// and then a space or the line's end is an FTP command.
    static let ftpVerbs: Set<String> = [
        "USER", "PASS", "ACCT", "CWD", "CDUP", "SMNT", "QUIT", "REIN", "PORT", "PASV", "TYPE", "STRU", "MODE", "RETR", "STOR", "STOU",
        "APPE", "ALLO", "REST", "RNFR", "RNTO", "ABOR", "DELE", "RMD", "MKD", "PWD", "LIST", "NLST", "SITE", "SYST", "STAT", "HELP",
        "NOOP", "FEAT", "OPTS", "AUTH", "PBSZ", "PROT", "EPRT", "EPSV", "SIZE", "MDTM", "MLSD", "MLST", "CCC", "XPWD", "XCWD", "XMKD",
    ]
    static let httpMethods: [String] = ["GET", "POST", "HEAD", "PUT", "OPTIONS", "CONNECT", "DELETE", "PATCH", "TRACE"]

    /// The content of a payload's first bytes, or nil when it is none of the protocols above.
    public static func parse(_ payload: UnsafeRawBufferPointer, udp: Bool) -> Content? {
        guard !payload.isEmpty else { return nil }
        if udp { return tftpRequest(payload) }
        if payload.count >= 3, payload[0] == 0x16, payload[1] == 0x03, payload[2] <= 0x04 { return .tls }
        if payload.count >= 8, payload[0] == 0, payload[5] == UInt8(ascii: "S"), payload[6] == UInt8(ascii: "M"), payload[7] == UInt8(ascii: "B") {
            if payload[4] == 0xFF { return .smb(version: 1) }
            if payload[4] == 0xFE { return .smb(version: 2) }
        }
        let line = firstLine(payload)
        if line.hasPrefix("SSH-"), line.dropFirst(4).hasPrefix("2.0-") || line.dropFirst(4).hasPrefix("1.99-") {
            return .sshIdentification(line)
        }
        if let reply = ftpReply(line) { return reply }
        if let command = ftpCommand(line) { return command }
        if line.hasPrefix("HTTP/1.") || httpMethods.contains(where: { line.hasPrefix($0 + " ") }) && line.contains(" HTTP/") {
            return .http(line)
        }
        return nil
    }

    /// The payload's first line (to CR or LF, or the captured end), printable ASCII only.
    static func firstLine(_ payload: UnsafeRawBufferPointer) -> String {
        var bytes: [UInt8] = []
        for byte in payload.prefix(maximumText) {
            if byte == 0x0D || byte == 0x0A { break }
            if byte >= 0x20 && byte < 0x7F { bytes.append(byte) }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func ftpReply(_ line: String) -> Content? {
        let bytes = Array(line.utf8.prefix(4))
        guard bytes.count >= 3, (UInt8(ascii: "1")...UInt8(ascii: "6")).contains(bytes[0]),
            (UInt8(ascii: "0")...UInt8(ascii: "5")).contains(bytes[1]), (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[2]),
            bytes.count == 3 || bytes[3] == UInt8(ascii: " ") || bytes[3] == UInt8(ascii: "-"), let code = Int(line.prefix(3))
        else { return nil }
        return .ftpReply(code: code, text: String(line.dropFirst(4)))
    }

    static func ftpCommand(_ line: String) -> Content? {
        let verb = line.prefix { $0 != " " }.uppercased()
        guard ftpVerbs.contains(verb) else { return nil }
        let argument = line.count > verb.count ? String(line.dropFirst(verb.count + 1)) : ""
        return .ftpCommand(verb: verb, argument: verb == "PASS" ? "<redacted>" : argument)
    }

    /// Opcode 1 (RRQ) or 2 (WRQ), a file name, NUL, a mode RFC 1350 names, NUL.
    static func tftpRequest(_ payload: UnsafeRawBufferPointer) -> Content? {
        guard payload.count >= 6, payload[0] == 0, payload[1] == 1 || payload[1] == 2 else { return nil }
        var fields: [[UInt8]] = [[]]
        for byte in payload.dropFirst(2) {
            if byte == 0 {
                if fields.count == 2 { break }
                fields.append([])
                continue
            }
            guard byte >= 0x20 && byte < 0x7F, fields[fields.count - 1].count < maximumText else { return nil }
            fields[fields.count - 1].append(byte)
        }
        guard fields.count == 2, !fields[0].isEmpty else { return nil }
        let mode = String(decoding: fields[1], as: UTF8.self).lowercased()
        guard ["netascii", "octet", "mail"].contains(mode) else { return nil }
        return .tftpRequest(write: payload[1] == 2, file: String(decoding: fields[0], as: UTF8.self), mode: mode)
    }

    /// The server port a 227 (`(h1,h2,h3,h4,p1,p2)`) or 229 (`(|||port|)`) reply announces.
    public static func passivePort(code: Int, text: String) -> UInt16? {
        guard let open = text.firstIndex(of: "("), let close = text[open...].firstIndex(of: ")") else { return nil }
        let inside = text[text.index(after: open)..<close]
        if code == 229 {
            let parts = inside.split(separator: "|", omittingEmptySubsequences: false)
            return parts.count >= 4 ? UInt16(parts[3]) : nil
        }
        guard code == 227 else { return nil }
        return hostPort(inside)
    }

    /// The client port a PORT (`h1,h2,h3,h4,p1,p2`) or EPRT (`|1|address|port|`) command announces.
    public static func activePort(verb: String, argument: String) -> UInt16? {
        if verb == "EPRT" {
            let parts = argument.split(separator: argument.first ?? "|", omittingEmptySubsequences: false)
            return parts.count >= 4 ? UInt16(parts[3]) : nil
        }
        return verb == "PORT" ? hostPort(Substring(argument)) : nil
    }

    private static func hostPort(_ text: Substring) -> UInt16? {
        let numbers = text.split(separator: ",").compactMap { UInt8($0.trimmingPrefix(" ")) }
        guard numbers.count == 6 else { return nil }
        return UInt16(numbers[4]) << 8 | UInt16(numbers[5])
    }
}
