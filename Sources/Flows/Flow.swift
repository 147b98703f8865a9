import AuditIngest
import HostState

/// What the user ran, as ECS `network.protocol` names it.
public enum FlowProtocol: String, Sendable {
    case ftp, ftps
    case ftpData = "ftp-data"
    case scp, sftp, ssh, tftp, smb

    /// The server ports the protocol normally uses (FTP also implicit FTPS); nil for FTP data,
    /// whose ports are negotiated.
    public var standardPorts: [UInt16]? {
        switch self {
        case .ftp, .ftps: [21, 990]
        case .ftpData: nil
        case .scp, .sftp, .ssh: [22]
        case .tftp: [69]
        case .smb: [445, 139]
        }
    }
}

/// A process on this host that carries a flow on: it accepted the flow's connection (or owns
/// it, as `ssh -R` does) and has a connection of its own to `remoteAddress`:`remotePort`.
public struct Relay {
    public let process: ProcessRecord
    public let remoteAddress: IPAddress
    public let remotePort: UInt16
    /// What that connection is, when it is a flow (`ssh` for an SSH tunnel).
    public let networkProtocol: FlowProtocol?
}

/// Why a flow ended.
public enum FlowEnd: String, Sendable {
    /// The kernel destroyed the socket (TCP/UDP destroy notification) or it vanished.
    case closed
    /// The owning process exited (UDP sessions have no close of their own).
    case processExited = "process exited"
    /// The process and its socket were gone before we could look: bytes unknown.
    case unresolved
    /// Still open when the agent stopped or the replayed log ended.
    case stopped
    /// Pushed out because too many flows were open.
    case evicted
}

/// One connection (or UDP exchange) of a process, attributed and classified. FTP sessions
/// carry their data connections; TFTP sessions their transfer datagrams.
public final class Flow {
    public let id: UInt64
    /// From the content when the packet tap identified it, else from the port and the client.
    public internal(set) var networkProtocol: FlowProtocol
    /// The process that owns the socket (for scp/sftp, their ssh child).
    public let process: ProcessRecord
    /// The program that names the transfer when it is not the owner: scp or sftp.
    public let transferProcess: ProcessRecord?
    public let interactivity: Interactivity
    public internal(set) var transport: Transport?
    public let family: UInt8
    public internal(set) var namespace: UInt64?
    /// The socket as sock_diag last reported it: local address and port, cookie.
    public internal(set) var socket: InetSocket?
    public let remoteAddress: IPAddress
    public let remotePort: UInt16
    /// Accepted from the server (active-mode FTP data) rather than connected to it.
    public let accepted: Bool
    /// TFTP: the server's transfer port (TID) once the exchange moved there.
    public internal(set) var transferPort: UInt16?
    public let start: Int64
    /// When its socket was found (wall ms): with `start`, the attribution latency.
    public internal(set) var attributedAt: Int64?
    public internal(set) var end: Int64?
    public internal(set) var endReason: FlowEnd?
    public internal(set) var bytesOut: UInt64?
    public internal(set) var bytesIn: UInt64?
    /// Final counts from the kernel (TCP) or every datagram audited (UDP).
    public internal(set) var bytesExact = false
    public internal(set) var datagramsOut = 0
    public internal(set) var dataConnections: [Flow] = []
    /// What the packet tap read of it.
    public internal(set) var content = FlowContent()
    /// The server process on this host that accepted it (in another network namespace, such
    /// as a container's, or this one), when its accept was audited.
    public internal(set) var server: ProcessRecord?
    /// That server's network namespace (a forked server child's is its listener's).
    public internal(set) var serverNamespace: UInt64?
    /// The process on this host that carries the flow's bytes on (socat, ssh -L/-D/-R, a local
    /// SOCKS server) and where its own connection goes, when the flow's peer is on this host.
    public internal(set) var relay: Relay?
    /// The direction the command line states; the bytes decide when it does not.
    let declaredDirection: TransferDirection
    let fd: Int32
    let uid: UInt32?
    var lastActivity: Int64
    /// When a poll first found the socket gone: its destroy notification may still be queued.
    var vanishedAt: Int64?

    init(
        id: UInt64, networkProtocol: FlowProtocol, process: ProcessRecord, transferProcess: ProcessRecord?,
        interactivity: Interactivity, family: UInt8, remoteAddress: IPAddress, remotePort: UInt16, accepted: Bool,
        start: Int64, declaredDirection: TransferDirection, fd: Int32, uid: UInt32?
    ) {
        self.id = id
        self.networkProtocol = networkProtocol
        self.process = process
        self.transferProcess = transferProcess
        self.interactivity = interactivity
        self.family = family
        self.remoteAddress = remoteAddress
        self.remotePort = remotePort
        self.accepted = accepted
        self.start = start
        self.declaredDirection = declaredDirection
        self.fd = fd
        self.uid = uid
        self.lastActivity = start
    }

    public var isOpen: Bool { end == nil }

    /// FTP or FTPS: a session that may have data connections.
    public var isFTPSession: Bool { networkProtocol == .ftp || networkProtocol == .ftps }

    /// The port the client meant: the one it asked its proxy for, else the one it connected to.
    public var targetPort: UInt16 { content.proxy?.port ?? remotePort }

    /// Bytes sent and received by the session: the connection plus its data connections.
    public var sessionBytesOut: UInt64? { sum(bytesOut, dataConnections.map(\.bytesOut)) }
    public var sessionBytesIn: UInt64? { sum(bytesIn, dataConnections.map(\.bytesIn)) }

    private func sum(_ own: UInt64?, _ others: [UInt64?]) -> UInt64? {
        let known = ([own] + others).compactMap { $0 }
        return known.isEmpty ? nil : known.reduce(0, +)
    }

    /// Upload, download or unknown: the control channel's commands (packet tap), then the
    /// command line, else the data's dominant side
    /// (for FTP, the data connections alone: the control channel carries commands both ways).
    public var transferDirection: TransferDirection {
        if content.declaredDirection != .unknown { return content.declaredDirection }
        if declaredDirection != .unknown { return declaredDirection }
        if isFTPSession {
            guard !dataConnections.isEmpty else { return .unknown }
            return TransferTools.directionFromBytes(
                out: dataConnections.compactMap(\.bytesOut).reduce(0, +),
                in: dataConnections.compactMap(\.bytesIn).reduce(0, +))
        }
        return TransferTools.directionFromBytes(out: bytesOut, in: bytesIn)
    }

    /// ECS network.direction, from this host's side.
    public var networkDirection: String {
        remoteAddress.isLoopback ? "internal" : (accepted ? "inbound" : "outbound")
    }
}

extension IPAddress {
    /// Neither loopback nor unspecified (`::`, `0.0.0.0`: route probes): a relay's connection out.
    public var leavesThisHost: Bool { !isLoopback && bytes.contains { $0 != 0 } }

    public var isLoopback: Bool {
        if bytes.count == 4 { return bytes[0] == 127 }
        if bytes.count == 16 {
            if bytes[0..<15].allSatisfy({ $0 == 0 }) && bytes[15] == 1 { return true }
            // ::ffff:127.x.x.x
            return bytes[0..<10].allSatisfy { $0 == 0 } && bytes[10] == 0xff && bytes[11] == 0xff && bytes[12] == 127
        }
        return false
    }
}
