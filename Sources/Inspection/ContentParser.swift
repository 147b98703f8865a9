import Runtime

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
    /// An unencrypted SMB2 CREATE request: the file it opens (the share's path, as far as the
    /// capture reaches) and whether it asks to write.
    case smbCreate(file: String, write: Bool)
    /// A TFTP read (RRQ) or write (WRQ) request.
    case tftpRequest(write: Bool, file: String, mode: String)
    /// A TLS handshake record.
    case tls
    /// An HTTP request or status line.
    case http(String)
    /// A client asking a proxy for a connection: a SOCKS4, SOCKS4a or SOCKS5 CONNECT, or an
    /// HTTP CONNECT, for an address or a name the proxy resolves.
    case proxyRequest(kind: ProxyKind, target: ProxyTarget, port: UInt16)

    /// How a flow's `network.protocol` names it.
    public var protocolName: String {
        switch self {
        case .ftpCommand, .ftpReply: "ftp"
        case .sshIdentification: "ssh"
        case .smb, .smbCreate: "smb"
        case .tftpRequest: "tftp"
        case .tls: "tls"
        case .http: "http"
        case .proxyRequest: "proxy"
        }
    }
}

/// What a client asks a proxy to connect to: an address's bytes (4 or 16) or a name.
public enum ProxyTarget: Equatable, Sendable {
    case address([UInt8])
    case name(String)
}

/// The proxy protocols whose requests the parser reads.
public enum ProxyKind: String, Sendable {
    case socks4, socks4a, socks5
    case httpConnect = "http-connect"
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
        if let request = socksRequest(payload) { return request }
        if payload.count >= 3, payload[0] == 0x16, payload[1] == 0x03, payload[2] <= 0x04 { return .tls }
        if payload.count >= 8, payload[0] == 0, payload[5] == UInt8(ascii: "S"), payload[6] == UInt8(ascii: "M"), payload[7] == UInt8(ascii: "B") {
            if payload[4] == 0xFF { return .smb(version: 1) }
            if payload[4] == 0xFE { return smb2Create(payload) ?? .smb(version: 2) }
        }
        let line = firstLine(payload)
        if line.hasPrefix("SSH-"), line.dropFirst(4).hasPrefix("2.0-") || line.dropFirst(4).hasPrefix("1.99-") {
            return .sshIdentification(line)
        }
        if let request = httpConnect(line) { return request }
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

    /// A SOCKS5 CONNECT (RFC 1928: `05 01 00 atyp address port`, after the client's method
    /// greeting when both came in one segment) or a SOCKS4/4a CONNECT (`04 01 port ipv4 userid
    /// 00`, 4a with `0.0.0.x` and a name after the user id). The whole request must be there:
    /// a segment of another protocol rarely is both well formed and exactly this long.
    static func socksRequest(_ payload: UnsafeRawBufferPointer) -> Content? {
        var bytes = payload[...]
        if bytes.count >= 3, bytes[bytes.startIndex] == 5, bytes.count > 2 + Int(bytes[bytes.startIndex + 1]),
            bytes[bytes.startIndex + 2 + Int(bytes[bytes.startIndex + 1])] == 5, bytes[bytes.startIndex + 1] > 0
        {
            bytes = bytes.dropFirst(2 + Int(bytes[bytes.startIndex + 1]))
        }
        guard bytes.count >= 9 else { return nil }
        let b = Array(bytes.prefix(4 + 1 + 255 + 2))
        if b[0] == 5, b[1] == 1, b[2] == 0 {
            let target: ProxyTarget, end: Int
            switch b[3] {
            case 1:
                end = 8
                target = .address(Array(b[4..<8]))
            case 3:
                let length = Int(b[4])
                end = 5 + length
                guard length > 0, b.count >= end + 2, let name = hostName(b[5..<end]) else { return nil }
                target = .name(name)
            case 4:
                end = 20
                guard b.count >= 22 else { return nil }
                target = .address(Array(b[4..<20]))
            default: return nil
            }
            guard bytes.count == end + 2 else { return nil }
            return .proxyRequest(kind: .socks5, target: target, port: UInt16(b[end]) << 8 | UInt16(b[end + 1]))
        }
        guard b[0] == 4, b[1] == 1, bytes.last == 0 else { return nil }
        let port = UInt16(b[2]) << 8 | UInt16(b[3])
        // The user id, NUL-terminated; SOCKS4a then has the name, NUL-terminated.
        let all = Array(bytes)
        guard let userEnd = all[8...].firstIndex(of: 0), userEnd - 8 <= maximumText else { return nil }
        if all[4] == 0, all[5] == 0, all[6] == 0, all[7] != 0 {
            guard userEnd + 1 < all.count, let name = hostName(all[(userEnd + 1)..<(all.count - 1)]) else { return nil }
            return .proxyRequest(kind: .socks4a, target: .name(name), port: port)
        }
        guard userEnd == all.count - 1 else { return nil }
        return .proxyRequest(kind: .socks4, target: .address(Array(all[4..<8])), port: port)
    }

    /// An SMB2 CREATE request (MS-SMB2 2.2.13) after the 4-byte NetBIOS header: command 5,
    /// not a response, a file name (UTF-16LE) that is not a directory's.
    static func smb2Create(_ payload: UnsafeRawBufferPointer) -> Content? {
        let header = 4, body = header + 64
        func u16(_ at: Int) -> Int { Int(payload[at]) | Int(payload[at + 1]) << 8 }
        func u32(_ at: Int) -> UInt32 { UInt32(u16(at)) | UInt32(u16(at + 2)) << 16 }
        guard payload.count >= body + 56, u16(header + 12) == 5, u32(header + 16) & 1 == 0, u16(body) == 57 else { return nil }
        let access = u32(body + 24), options = u32(body + 40)
        let offset = header + u16(body + 44), length = u16(body + 46)
        // FILE_DIRECTORY_FILE: a directory listing, not a transfer.
        guard options & 1 == 0, length > 0, offset < payload.count else { return nil }
        // As much of the name as the capture holds.
        let end = min(offset + length, payload.count)
        var units: [UInt16] = []
        var at = offset
        while at + 1 < end, units.count < maximumText {
            units.append(UInt16(payload[at]) | UInt16(payload[at + 1]) << 8)
            at += 2
        }
        let name = String(decoding: units, as: UTF16.self).filter { !$0.isASCII || ($0.asciiValue! >= 0x20 && $0.asciiValue! < 0x7F) }
        guard !name.isEmpty else { return nil }
        // FILE_WRITE_DATA, FILE_APPEND_DATA, GENERIC_WRITE, GENERIC_ALL.
        return .smbCreate(file: name, write: access & 0x5000_0006 != 0)
    }

    /// `CONNECT host:port HTTP/1.x` (RFC 9110), IPv6 literals in brackets.
    static func httpConnect(_ line: String) -> Content? {
        guard line.hasPrefix("CONNECT ") else { return nil }
        let words = line.split(separator: " ")
        guard words.count == 3, words[2].hasPrefix("HTTP/"), let colon = words[1].lastIndex(of: ":"),
            let port = UInt16(words[1][words[1].index(after: colon)...])
        else { return nil }
        var host = words[1][..<colon]
        if host.hasPrefix("["), host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        guard !host.isEmpty, host.utf8.count <= 255 else { return nil }
        return .proxyRequest(kind: .httpConnect, target: literalIPAddress(String(host)).map(ProxyTarget.address) ?? .name(String(host)), port: port)
    }

    /// A DNS name or address as a client sends it: printable, no spaces, at most 255 bytes.
    private static func hostName(_ bytes: ArraySlice<UInt8>) -> String? {
        guard !bytes.isEmpty, bytes.count <= 255, bytes.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
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
