import AuditIngest
import Inspection

/// A client's request to a proxy: its kind, what it asked to reach, and the port.
public struct ProxyRequest: Sendable, Equatable {
    public let kind: ProxyKind
    public let target: ProxyTarget
    public let port: UInt16

    /// The address asked for, when the client named one rather than a name.
    public var address: IPAddress? {
        if case .address(let bytes) = target { return IPAddress(bytes: bytes) }
        return nil
    }

    /// The address or name, as a person writes it.
    public var targetText: String {
        switch target {
        case .address(let bytes): IPAddress(bytes: bytes).description
        case .name(let name): name
        }
    }
}

/// What the packet tap read in a flow's first bytes: the protocol its content speaks, the
/// evidence, and the facts of its control channel. Bounded: a session of any length keeps at
/// most `maximumTransfers` commands.
public struct FlowContent: Sendable {
    /// The protocol the content says (`ftp`, `ftps`, `ssh`, `tftp`, `smb`, or `tls`/`http` on a
    /// port that should carry a transfer protocol).
    public internal(set) var protocolName: String?
    /// `FTP server greeting on 203.0.113.77:443`.
    public internal(set) var evidence: String?
    /// A transfer port carrying something else: `HTTP request on port 21`.
    public internal(set) var mismatch: String?
    public internal(set) var ftpUser: String?
    /// STOR, RETR, APPE, STOU with their file names, in order.
    public internal(set) var ftpTransfers: [(command: String, file: String)] = []
    /// Data ports announced: the server's by 227/229 replies, the client's by PORT/EPRT.
    public internal(set) var announcedPorts: [UInt16: String] = [:]
    /// The server accepted AUTH TLS (234): the control channel is encrypted from there on.
    public internal(set) var authTLS = false
    var authRequested = false
    public internal(set) var sshClient: String?
    public internal(set) var sshServer: String?
    public internal(set) var tftpRequest: (write: Bool, file: String, mode: String)?
    public internal(set) var smbVersion: Int?
    /// Files SMB2 CREATE requests opened, and whether to write, in order.
    public internal(set) var smbFiles: [(file: String, write: Bool)] = []
    /// The client's request to a proxy, when the flow began with one (SOCKS, HTTP CONNECT):
    /// what follows it is the protocol carried.
    public internal(set) var proxy: ProxyRequest?
    var clientSpoke = false
    /// Last TCP sequence number seen each way: a segment seen twice is read once.
    var lastSequence: (client: UInt32?, server: UInt32?) = (nil, nil)

    /// At most this many transfer commands and announced ports per session: a hostile peer's
    /// endless control channel costs bounded memory.
    static let maximumTransfers = 256

    /// The direction the control channel's commands say, if they say one.
    public var declaredDirection: TransferDirection {
        if let tftpRequest { return tftpRequest.write ? .upload : .download }
        let uploads = ftpTransfers.contains { ["STOR", "APPE", "STOU"].contains($0.command) } || smbFiles.contains { $0.write }
        let downloads = ftpTransfers.contains { $0.command == "RETR" } || smbFiles.contains { !$0.write }
        return uploads == downloads ? .unknown : (uploads ? .upload : .download)
    }

    /// File names the content names (FTP transfers, the TFTP request).
    public var fileNames: [String] { ftpTransfers.map(\.file) + (tftpRequest.map { [$0.file] } ?? []) + smbFiles.map(\.file) }

    /// Folds one parsed payload in; true when it told something new about the protocol (the
    /// first identification, or a mismatch).
    mutating func apply(_ content: Content, fromClient: Bool, server: String, serverPort: UInt16) -> Bool {
        let before = (protocolName, mismatch)
        if fromClient, case .proxyRequest = content {} else if fromClient { clientSpoke = true }
        switch content {
        case .ftpReply(let code, let text):
            identify("ftp", code == 220 ? "FTP server greeting on \(server)" : "FTP reply \(code) from \(server)")
            if let port = ContentParser.passivePort(code: code, text: text), announcedPorts.count < Self.maximumTransfers {
                announcedPorts[port] = code == 229 ? "EPSV" : "PASV"
            }
            // The server accepted AUTH TLS: what follows is FTPS.
            if code == 234 && authRequested {
                authTLS = true
                protocolName = "ftps"
            }
        case .ftpCommand(let verb, let argument):
            identify("ftp", "FTP command \(verb) to \(server)")
            switch verb {
            case "USER": ftpUser = argument
            case "STOR", "RETR", "APPE", "STOU":
                if ftpTransfers.count < Self.maximumTransfers { ftpTransfers.append((verb, argument)) }
            case "PORT", "EPRT":
                if let port = ContentParser.activePort(verb: verb, argument: argument), announcedPorts.count < Self.maximumTransfers {
                    announcedPorts[port] = verb
                }
            case "AUTH":
                // Asked for; FTPS once the server says 234 (vsftpd without TLS refuses it).
                authRequested = ["TLS", "SSL", "TLS-C"].contains(argument.uppercased())
            default: break
            }
        case .sshIdentification(let text):
            identify("ssh", "SSH \(fromClient ? "client" : "server") identification \(text) \(fromClient ? "to" : "from") \(server)")
            if fromClient { sshClient = text } else { sshServer = text }
        case .smb(let version):
            identify("smb", "SMB\(version) message \(fromClient ? "to" : "from") \(server)")
            smbVersion = version
        case .smbCreate(let file, let write):
            identify("smb", "SMB2 CREATE of \(file) to \(server)")
            smbVersion = 2
            if smbFiles.count < Self.maximumTransfers, !smbFiles.contains(where: { $0.file == file && $0.write == write }) { smbFiles.append((file, write)) }
        case .tftpRequest(let write, let file, let mode):
            identify("tftp", "TFTP \(write ? "write" : "read") request for \(file) (\(mode)) to \(server)")
            tftpRequest = (write, file, mode)
        case .tls:
            // TLS after AUTH TLS, or on the implicit FTPS ports, is what they should carry.
            if FlowContent.tlsPorts.contains(serverPort) { identify("ftps", "TLS on the implicit FTPS port of \(server)") }
            if !authTLS, !FlowContent.tlsPorts.contains(serverPort), FlowContent.transferPorts.contains(serverPort),
                protocolName == nil || protocolName == "ftp"
            {
                mismatch = mismatch ?? "TLS on port \(serverPort)"
            }
        case .proxyRequest(let kind, let target, let port):
            // Only a session's opening request, before the client said anything else (a packet
            // read before its connect comes after the reply that made the flow).
            guard fromClient, proxy == nil, !clientSpoke else { return false }
            proxy = ProxyRequest(kind: kind, target: target, port: port)
            return true
        case .http(let line):
            if FlowContent.transferPorts.contains(serverPort) {
                mismatch = mismatch ?? "HTTP \(fromClient ? "request" : "response") on port \(serverPort): \(line.prefix(80))"
            }
        }
        if let name = protocolName, let expected = FlowContent.portProtocols[serverPort], !expected.contains(name), mismatch == nil {
            mismatch = "\(name.uppercased()) on port \(serverPort), which carries \(expected.joined(separator: "/"))"
        }
        return before.0 != protocolName || before.1 != mismatch
    }

    private mutating func identify(_ name: String, _ why: String) {
        guard protocolName == nil else { return }
        protocolName = name
        evidence = why
    }

    /// The file-transfer ports and the protocols they carry (ATT&CK T1071.002's "protocol that
    /// does not follow the expected protocol for the port").
    static let portProtocols: [UInt16: [String]] = [
        20: ["ftp"], 21: ["ftp", "ftps"], 22: ["ssh"], 69: ["tftp"], 139: ["smb"], 445: ["smb"], 989: ["ftps"], 990: ["ftps"],
    ]
    static var transferPorts: Set<UInt16> { Set(portProtocols.keys) }
    static let tlsPorts: Set<UInt16> = [989, 990]
}
