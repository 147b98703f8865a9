import Foundation
import PacketCapture
import TestSupport
import Testing

@testable import Flows
@testable import Inspection

/// The packet tap's parsers on bytes: headers as the "any" device captures them, the first
/// bytes of FTP, SSH, SMB, TFTP, TLS and HTTP, and the kernel filter compiled by libpcap.
@Suite struct InspectionTests {
    /// A Linux cooked (v1) capture of an IPv4 TCP segment from 10.203.0.1:40000 to
    /// 203.0.113.10:`port` carrying `payload`.
    static func cooked(_ payload: [UInt8], port: UInt16 = 21, sequence: UInt32 = 7, udp: Bool = false, ipv6: Bool = false) -> [UInt8] {
        var sll = [UInt8](repeating: 0, count: 16)
        sll[14] = ipv6 ? 0x86 : 0x08; sll[15] = ipv6 ? 0xDD : 0x00
        var transport: [UInt8]
        if udp {
            transport = [0x9C, 0x40, UInt8(port >> 8), UInt8(port & 0xFF), 0, UInt8(8 + payload.count), 0, 0]
        } else {
            transport = [0x9C, 0x40, UInt8(port >> 8), UInt8(port & 0xFF)]
            transport += [UInt8(sequence >> 24), UInt8(sequence >> 16 & 0xFF), UInt8(sequence >> 8 & 0xFF), UInt8(sequence & 0xFF)]
            transport += [0, 0, 0, 0, 0x50, 0x18, 0xFF, 0xFF, 0, 0, 0, 0]
        }
        let network: [UInt8]
        if ipv6 {
            network =
                [0x60, 0, 0, 0, 0, UInt8(transport.count + payload.count), udp ? 17 : 6, 64]
                + [0x20, 0x01, 0x0D, 0xB8] + [UInt8](repeating: 0, count: 11) + [1]
                + [0x20, 0x01, 0x0D, 0xB8] + [UInt8](repeating: 0, count: 11) + [0x10]
        } else {
            let total = 20 + transport.count + payload.count
            network = [0x45, 0, UInt8(total >> 8), UInt8(total & 0xFF), 0, 0, 0x40, 0, 64, udp ? 17 : 6, 0, 0, 10, 203, 0, 1, 203, 0, 113, 10]
        }
        return sll + network + transport + payload
    }

    static func decode(_ bytes: [UInt8]) -> (DecodedPacket, Content?)? {
        bytes.withUnsafeBytes { raw in
            guard let packet = PacketDecoder.decode(linkType: PacketDecoder.linkLinuxCooked, raw) else { return nil }
            return (packet, ContentParser.parse(UnsafeRawBufferPointer(rebasing: raw[packet.payloadOffset...]), udp: packet.transport == .udp))
        }
    }

    @Test func headersAsTheAnyDeviceCapturesThem() throws {
        let (packet, content) = try #require(Self.decode(Self.cooked(Array("USER anonymous\r\n".utf8), port: 443)))
        #expect(packet.source == [10, 203, 0, 1] && packet.sourcePort == 40000 && packet.destination == [203, 0, 113, 10] && packet.destinationPort == 443)
        #expect(packet.sequence == 7 && content == .ftpCommand(verb: "USER", argument: "anonymous"))
        let (six, sixContent) = try #require(Self.decode(Self.cooked(Array("SSH-2.0-OpenSSH_9.2\r\n".utf8), port: 2222, ipv6: true)))
        #expect(six.destination.count == 16 && six.destinationPort == 2222 && sixContent == .sshIdentification("SSH-2.0-OpenSSH_9.2"))
        // Truncated captures and other protocols decode to nothing, never past the bytes.
        let full = Self.cooked(Array("RETR x\r\n".utf8))
        for length in 0..<44 { #expect(full.prefix(length).withUnsafeBytes { PacketDecoder.decode(linkType: PacketDecoder.linkLinuxCooked, $0) } == nil) }
        #expect([UInt8](repeating: 0, count: 64).withUnsafeBytes { PacketDecoder.decode(linkType: 999, $0) } == nil)
    }

    @Test func firstBytesOfEachProtocol() throws {
        func parse(_ text: String) -> Content? { Array(text.utf8).withUnsafeBytes { ContentParser.parse($0, udp: false) } }
        #expect(parse("220 (vsFTPd 3.0.3)\r\n") == .ftpReply(code: 220, text: "(vsFTPd 3.0.3)"))
        #expect(parse("stor /tmp/x.tar\r\n") == .ftpCommand(verb: "STOR", argument: "/tmp/x.tar"))
        #expect(parse("PASS hunter2\r\n") == .ftpCommand(verb: "PASS", argument: "<redacted>"), "never a password")
        #expect(parse("GET / HTTP/1.1\r\nHost: x\r\n") == .http("GET / HTTP/1.1"))
        #expect(parse("USERS are here") == nil && parse("hello") == nil && parse("999 nope") == nil)
        let smb: [UInt8] = [0, 0, 0, 0x45, 0xFE, 0x53, 0x4D, 0x42, 0x40, 0]
        #expect(smb.withUnsafeBytes { ContentParser.parse($0, udp: false) } == .smb(version: 2))
        let hello: [UInt8] = [0x16, 0x03, 0x01, 0x02, 0x00]
        #expect(hello.withUnsafeBytes { ContentParser.parse($0, udp: false) } == .tls)
        let wrq: [UInt8] = [0, 2] + Array("report.tar".utf8) + [0] + Array("octet".utf8) + [0]
        #expect(wrq.withUnsafeBytes { ContentParser.parse($0, udp: true) } == .tftpRequest(write: true, file: "report.tar", mode: "octet"))
        let dns: [UInt8] = [0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]
        #expect(dns.withUnsafeBytes { ContentParser.parse($0, udp: true) } == nil, "a DNS id of 1 is no TFTP request")
        #expect(ContentParser.passivePort(code: 227, text: "Entering Passive Mode (203,0,113,10,156,71).") == 40007)
        #expect(ContentParser.passivePort(code: 229, text: "Entering Extended Passive Mode (|||40011|)") == 40011)
        #expect(ContentParser.activePort(verb: "PORT", argument: "10,203,0,1,195,80") == 50000)
        #expect(ContentParser.activePort(verb: "EPRT", argument: "|2|2001:db8::1|50001|") == 50001)
    }

    /// The requests proxychains, curl and browsers send a SOCKS or HTTP proxy, and what is
    /// close to one but is not.
    @Test func proxyRequestsOfEveryKind() {
        func parse(_ bytes: [UInt8]) -> Content? { bytes.withUnsafeBytes { ContentParser.parse($0, udp: false) } }
        let ipv4Port21: [UInt8] = [203, 0, 113, 10, 0, 21]
        #expect(parse([5, 1, 0, 1] + ipv4Port21) == .proxyRequest(kind: .socks5, target: .address([203, 0, 113, 10]), port: 21))
        let name = Array("ftp.example.org".utf8)
        #expect(parse([5, 1, 0, 3, UInt8(name.count)] + name + [0x01, 0xBB]) == .proxyRequest(kind: .socks5, target: .name("ftp.example.org"), port: 443))
        let v6 = [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [0x0a]
        #expect(parse([5, 1, 0, 4] + v6 + [0, 22]) == .proxyRequest(kind: .socks5, target: .address(v6), port: 22))
        #expect(
            parse([5, 1, 0] + [5, 1, 0, 1] + ipv4Port21) == .proxyRequest(kind: .socks5, target: .address([203, 0, 113, 10]), port: 21),
            "greeting and request in one segment")
        #expect(parse([5, 1, 0, 1] + ipv4Port21 + [0]) == nil, "one byte too many")
        #expect(parse([5, 1, 0, 9] + ipv4Port21) == nil, "no such address type")
        #expect(parse([5, 1, 0]) == nil, "the greeting alone asks for nothing")
        #expect(parse([4, 1, 0, 21, 203, 0, 113, 10] + Array("me".utf8) + [0]) == .proxyRequest(kind: .socks4, target: .address([203, 0, 113, 10]), port: 21))
        #expect(parse([4, 1, 0, 21, 0, 0, 0, 1, 0] + name + [0]) == .proxyRequest(kind: .socks4a, target: .name("ftp.example.org"), port: 21))
        #expect(parse([4, 1, 0, 21, 203, 0, 113, 10] + Array("me".utf8)) == nil, "the user id is NUL-terminated")
        func text(_ line: String) -> Content? { parse(Array(line.utf8)) }
        #expect(
            text("CONNECT 203.0.113.10:21 HTTP/1.1\r\nHost: 203.0.113.10:21\r\n\r\n")
                == .proxyRequest(kind: .httpConnect, target: .address([203, 0, 113, 10]), port: 21))
        #expect(text("CONNECT [2001:db8::a]:990 HTTP/1.1\r\n") == .proxyRequest(kind: .httpConnect, target: .address(v6), port: 990))
        #expect(text("CONNECT files.example.org:2121 HTTP/1.0\r\n") == .proxyRequest(kind: .httpConnect, target: .name("files.example.org"), port: 2121))
        #expect(text("CONNECT nowhere HTTP/1.1\r\n") == .http("CONNECT nowhere HTTP/1.1"), "no port: an HTTP request, not a tunnel")

        // The request goes to the flow once, before the protocol it carries; the port asked
        // for is the one whose protocol is expected.
        var content = FlowContent()
        let asked = content.apply(.proxyRequest(kind: .socks5, target: .address([203, 0, 113, 10]), port: 21), fromClient: true, server: "s", serverPort: 1080)
        #expect(asked)
        _ = content.apply(.ftpReply(code: 220, text: "x"), fromClient: false, server: "s", serverPort: 21)
        let again = content.apply(.proxyRequest(kind: .socks4, target: .address([1, 2, 3, 4]), port: 9), fromClient: true, server: "s", serverPort: 21)
        #expect(!again)
        #expect(content.proxy?.kind == .socks5 && content.proxy?.port == 21 && content.protocolName == "ftp" && content.mismatch == nil)
        var late = FlowContent()
        _ = late.apply(.ftpReply(code: 220, text: "x"), fromClient: false, server: "s", serverPort: 1080)
        let before = late.apply(.proxyRequest(kind: .httpConnect, target: .name("x"), port: 21), fromClient: true, server: "s", serverPort: 1080)
        #expect(before, "read before the reply that made the flow")
        _ = late.apply(.ftpCommand(verb: "USER", argument: "a"), fromClient: true, server: "s", serverPort: 21)
        var spoken = FlowContent()
        _ = spoken.apply(.ftpCommand(verb: "USER", argument: "a"), fromClient: true, server: "s", serverPort: 21)
        let past = spoken.apply(.proxyRequest(kind: .socks5, target: .name("x"), port: 21), fromClient: true, server: "s", serverPort: 21)
        #expect(!past, "a client that spoke is past its handshake")
    }

    /// SMB2 CREATE requests (as smbclient sends them) give the file and whether it is written.
    @Test func smb2CreateRequestsNameTheirFiles() {
        func create(_ name: String, access: UInt32, options: UInt32 = 0, response: Bool = false) -> [UInt8] {
            let utf16 = SyntheticBinary.wide(name)
            var header = [UInt8](repeating: 0, count: 64)
            header[0...3] = [0xFE, 0x53, 0x4D, 0x42]
            header[4] = 64
            header[12] = 5
            if response { header[16] = 1 }
            var body = [UInt8](repeating: 0, count: 56)
            body[0] = 57
            func put(_ value: UInt32, at: Int) { for i in 0..<4 { body[at + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) } }
            put(access, at: 24)
            put(options, at: 40)
            body[44] = 64 + 56
            body[46] = UInt8(utf16.count)
            let message = header + body + utf16
            return [0, 0, 0, UInt8(message.count)] + message
        }
        func parse(_ bytes: [UInt8]) -> Content? { bytes.withUnsafeBytes { ContentParser.parse($0, udp: false) } }
        #expect(parse(create("dump.tar", access: 0x0012_019F)) == .smbCreate(file: "dump.tar", write: true))
        #expect(parse(create("notes\\report.docx", access: 0x0012_0089)) == .smbCreate(file: "notes\\report.docx", write: false))
        #expect(parse(create("dir", access: 0x0010_0081, options: 1)) == .smb(version: 2), "a directory is no transfer")
        #expect(parse(create("x", access: 2, response: true)) == .smb(version: 2), "the server's answer")
        var content = FlowContent()
        _ = content.apply(.smbCreate(file: "dump.tar", write: true), fromClient: true, server: "s", serverPort: 445)
        #expect(content.protocolName == "smb" && content.fileNames == ["dump.tar"] && content.declaredDirection == .upload)
    }

    @Test func aControlChannelsFactsAndMismatches() {
        var content = FlowContent()
        let identified = content.apply(.ftpReply(code: 220, text: "x"), fromClient: false, server: "203.0.113.10:443", serverPort: 443)
        #expect(identified)
        #expect(content.protocolName == "ftp" && content.evidence == "FTP server greeting on 203.0.113.10:443" && content.mismatch == nil)
        _ = content.apply(.ftpCommand(verb: "USER", argument: "anonymous"), fromClient: true, server: "s", serverPort: 443)
        _ = content.apply(.ftpCommand(verb: "PASS", argument: "<redacted>"), fromClient: true, server: "s", serverPort: 443)
        _ = content.apply(.ftpReply(code: 227, text: "(203,0,113,10,156,71)"), fromClient: false, server: "s", serverPort: 443)
        _ = content.apply(.ftpCommand(verb: "STOR", argument: "upload/db.tar"), fromClient: true, server: "s", serverPort: 443)
        #expect(content.ftpUser == "anonymous" && content.fileNames == ["upload/db.tar"] && content.announcedPorts == [40007: "PASV"])
        #expect(content.declaredDirection == .upload)
        var http = FlowContent()
        let mismatched = http.apply(.http("GET / HTTP/1.1"), fromClient: true, server: "s", serverPort: 21)
        #expect(mismatched)
        #expect(http.mismatch == "HTTP request on port 21: GET / HTTP/1.1")
        var ssh = FlowContent()
        _ = ssh.apply(.sshIdentification("SSH-2.0-x"), fromClient: false, server: "s", serverPort: 21)
        #expect(ssh.protocolName == "ssh" && ssh.mismatch == "SSH on port 21, which carries ftp/ftps")
        var ftps = FlowContent()
        _ = ftps.apply(.ftpCommand(verb: "AUTH", argument: "TLS"), fromClient: true, server: "s", serverPort: 21)
        #expect(ftps.protocolName == "ftp", "asked for, not yet accepted (lftp asks vsftpd, which refuses)")
        _ = ftps.apply(.ftpReply(code: 234, text: "Proceed with negotiation."), fromClient: false, server: "s", serverPort: 21)
        _ = ftps.apply(.tls, fromClient: true, server: "s", serverPort: 21)
        #expect(ftps.protocolName == "ftps" && ftps.mismatch == nil, "TLS after an accepted AUTH TLS is FTPS")
        var tls = FlowContent()
        _ = tls.apply(.tls, fromClient: true, server: "s", serverPort: 21)
        #expect(tls.mismatch == "TLS on port 21")
        var many = FlowContent()
        for n in 0..<1000 { _ = many.apply(.ftpCommand(verb: "STOR", argument: "f\(n)"), fromClient: true, server: "s", serverPort: 21) }
        #expect(many.ftpTransfers.count == FlowContent.maximumTransfers, "bounded")
    }

    /// libpcap compiles the filter into classic BPF for the "any" device and for Ethernet, and
    /// a full-size data segment is rejected by the length test before any payload test.
    @Test func theKernelFilterCompiles() throws {
        for linkType in [PacketDecoder.linkLinuxCooked, PacketDecoder.linkEthernet] {
            let instructions = try PacketTap.compile(CaptureFilter.expression, linkType: linkType).get()
            #expect(instructions > 50 && instructions < 4096, "\(instructions) instructions")
        }
        #expect(CaptureFilter.expression.hasPrefix("(ip and ip[2:2] < 600 and"))
        #expect(CaptureFilter.hex("USER") == "0x55534552" && CaptureFilter.hex("220 ") == "0x32323020")
    }
}
