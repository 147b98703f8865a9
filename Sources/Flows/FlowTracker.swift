import AuditIngest
import HostState
import Runtime

#if canImport(Glibc)
    import Glibc
#endif

public struct FlowSettings: Sendable {
    /// How long a flow whose socket we never saw waits for its destroy notification.
    public var unresolvedWaitMilliseconds: Int64 = 5000
    /// How often open TCP flows are re-read (progress, and destroy notifications we missed).
    public var pollIntervalMilliseconds: Int64 = 2000
    /// How long an FTP session waits for data connections still open when its control closes.
    public var dataLingerMilliseconds: Int64 = 10_000
    public var maximumOpenFlows = 4096
    /// Unconnected datagrams a second, none a transfer, past which a process is reported as a
    /// flood (`FlowObserver.sendsManyDatagrams`); 0: never.
    public var datagramFloodPerSecond = 0

    public init() {}
}

/// Turns socket syscalls into attributed, classified flows and ends them when the kernel
/// destroys their sockets. Live, it reads host state (HostSockets, /proc); replaying a log it
/// has only the audit records: no bytes, no local ports, flows end with the log.
public final class FlowTracker {
    public struct Counters: Sendable, Equatable {
        public var socketCalls = 0
        /// connect() that failed outright (not EINPROGRESS).
        public var failedConnects = 0
        /// A server's side of a session (accepts, connects back to a peer it accepted from).
        public var serverSide = 0
        /// Connections that are not file transfers (DNS, HTTP...).
        public var notTransfers = 0
        public var flowsStarted = 0
        public var flowsReported = 0
        /// Flows whose socket was gone before we looked, and how many a destroy notification matched later.
        public var unresolved = 0
        public var matchedLate = 0
        public var destroyNotifications = 0
        public var evicted = 0
        /// Packets whose content the tap identified, those that went to a flow, and the
        /// connections their content promoted to flows.
        public var packetsInspected = 0
        public var packetsMatched = 0
        public var promoted = 0
    }

    struct SocketKey: Hashable { let namespace: UInt64; let cookie: UInt64 }
    struct DescriptorKey: Hashable { let pid: Int32; let fd: Int32 }
    struct RecentDestroy { let namespace: UInt64; let socket: InetSocket; let time: Int64 }

    public let settings: FlowSettings
    public let processes: ProcessTable
    public let sockets: HostSockets?
    public internal(set) var counters = Counters()
    private let catalog: SyscallCatalog
    /// Outbound connects and sends that no port or client name made a transfer (see
    /// FlowTracker+Content.swift).
    var candidates: [Candidate] = []
    /// Connections servers on this host accepted (any namespace), by the client's end.
    var recentAccepts: [(peer: IPAddress, port: UInt16, server: ProcessRecord)] = []
    /// Flows a process on this host accepted, waiting for that process's own connection out
    /// (socat and a SOCKS server connect once they have accepted), by its pid.
    var awaitingRelay: [Int32: [Flow]] = [:]
    /// Packets the tap read before the audit record of their connection arrived.
    var earlyPackets: [EarlyPacket] = []
    /// TFTP requests the tap read that no flow or send explained (`startTFTPSessionLate`).
    var unexplainedTFTPRequests: [EarlyPacket] = []
    let observer: any FlowObserver
    private var nextID: UInt64 = 1
    /// Top-level flows not yet reported, by id (data connections live inside their session).
    var open: [UInt64: Flow] = [:]
    var bySocket: [SocketKey: Flow] = [:]
    var ftpSessions: [Int32: [Flow]] = [:]
    var udpSessions: [DescriptorKey: Flow] = [:]
    var datagramRates = DatagramRates()
    var unresolved: [Flow] = []
    var recentDestroys: [RecentDestroy] = []
    var nextPoll: Int64 = 0

    /// Debug-level notes (why a flow could not be resolved...).
    let debug: (@autoclosure () -> String) -> Void

    public init(
        catalog: SyscallCatalog, processes: ProcessTable, sockets: HostSockets?, settings: FlowSettings = FlowSettings(),
        debug: @escaping (@autoclosure () -> String) -> Void = { _ in }, observer: any FlowObserver
    ) {
        self.catalog = catalog
        self.debug = debug
        self.processes = processes
        self.sockets = sockets
        self.settings = settings
        self.observer = observer
    }

    public var openFlows: some Collection<Flow> { open.values }

    // MARK: audit events

    /// A socket call (connect, accept, sendto), at `now` (wall milliseconds live, log time in
    /// replay). Execve is the process table's; listen matters to scanning only.
    public func handle(_ socketCall: SyscallEvent, now: Int64) {
        guard [.connect, .accept, .sendto].contains(socketCall.kind), let address = socketCall.address, let fd = socketCall.descriptor,
            let exit = socketCall.exit
        else { return }
        let kind = socketCall.kind, syscall = socketCall.syscall, pid = socketCall.pid
        let remote: IPAddress, port: UInt16, family: UInt8
        switch address {
        case .inet(let a, let p): (remote, port, family) = (a, p, UInt8(AF_INET))
        case .inet6(let a, let p, _): (remote, port, family) = (a, p, UInt8(AF_INET6))
        default: return
        }
        counters.socketCalls += 1
        let success = socketCall.succeeded
        let sent: UInt64 = kind == .sendto && success && exit > 0 ? UInt64(exit) : 0
        let time = socketCall.time
        // TFTP sends one audited datagram per block: keep that path free of /proc reads.
        if kind == .sendto, let session = udpSessions[DescriptorKey(pid: pid, fd: fd)] {
            guard remote == session.remoteAddress else { return }
            if port != session.remotePort { session.transferPort = port }
            session.datagramsOut += 1
            session.bytesOut = (session.bytesOut ?? 0) + sent
            session.lastActivity = time
            return
        }
        let process = processes.describe(pid: pid, syscall: syscall, time: time)
        var call = Call(
            process: process, fd: fd, remote: remote, port: port, family: family, time: time,
            uid: syscall.integer("uid").map { UInt32(truncatingIfNeeded: $0) })

        switch kind {
        case .accept:
            guard success else { return }
            if let session = ftpSession(pid: pid, remote: remote, excludingPort: nil) {
                // The accepted connection is the new descriptor accept returned.
                call.fd = Int32(truncatingIfNeeded: exit)
                addDataConnection(to: session, call, accepted: true, now: now)
            } else {
                process.accepted(from: remote)
                counters.serverSide += 1
                acceptedOnThisHost(by: process, peer: remote, port: port)
            }
        case .connect:
            // Non-blocking connects return EINPROGRESS: real connections.
            guard success || exit == -Int64(EINPROGRESS) else {
                counters.failedConnects += 1
                return
            }
            if let session = udpSessions[DescriptorKey(pid: pid, fd: fd)] {
                // busybox tftp connects to the server's transfer port after its request.
                if remote == session.remoteAddress {
                    session.transferPort = port
                    session.bytesExact = false
                    session.lastActivity = time
                }
                return
            }
            if let session = ftpSession(pid: pid, remote: remote, excludingPort: port) {
                observer.connected(process, to: remote, port: port, time: time)
                addDataConnection(to: session, call, accepted: false, now: now)
                return
            }
            // An FTP server connecting back to a client it accepted (active mode) goes to the
            // client's unprivileged data port (RFC 2577); a web application that FTPs to the
            // host whose request it serves connects to a service port and is a client.
            if port > 1023, process.sameProgramLineage.contains(where: { $0.acceptedPeers.contains(remote) }) {
                counters.serverSide += 1
                return
            }
            observer.connected(process, to: remote, port: port, time: time)
            // A relay that accepted, or its child forked for the connection (socat fork, dante).
            for relay in awaitingRelay.isEmpty || !remote.leavesThisHost ? [] : process.sameProgramLineage.prefix(2) {
                guard let waiting = awaitingRelay.removeValue(forKey: relay.pid) else { continue }
                for flow in waiting where flow.relay == nil { setRelay(flow, through: process, to: remote, port: port, networkProtocol: nil) }
            }
            startConnection(call, now: now)
        case .sendto:
            observer.connected(process, to: remote, port: port, time: time)
            guard call.port == 69 || TransferTools.isTFTPClient(call.process) else {
                if startTFTPSessionLate(call, sent: sent, now: now) { return }
                counters.notTransfers += 1
                noteDatagram(of: call.process, time: time)
                keepCandidate(call, transport: .udp, now: now)
                return
            }
            startTFTPSession(call, firstDatagram: sent, now: now)
        case .execve, .listen:
            return
        }
    }

    struct Call {
        let process: ProcessRecord
        var fd: Int32
        let remote: IPAddress
        let port: UInt16
        let family: UInt8
        let time: Int64
        let uid: UInt32?
    }

    func newFlow(_ proto: FlowProtocol, _ call: Call, transfer: ProcessRecord?, accepted: Bool) -> Flow {
        // A person runs scp or sftp, not the ssh child that owns the socket (whose stdin is a
        // socket by design): the transfer program and its session say who is at the keyboard.
        processes.completeDetails(call.process)
        processes.checkExecutableFile(call.process)
        let interactivity = processes.completeDetailsAndAssessInteractivity(of: transfer ?? call.process)
        defer { nextID += 1; counters.flowsStarted += 1 }
        return Flow(
            id: nextID, networkProtocol: proto, process: call.process, transferProcess: transfer,
            interactivity: interactivity, family: call.family, remoteAddress: call.remote, remotePort: call.port,
            accepted: accepted, start: call.time,
            declaredDirection: TransferTools.declaredDirection(proto, call.process, transfer, live: processes.procfs != nil),
            fd: call.fd, uid: call.uid)
    }

    // MARK: TCP (and connected UDP) flows

    private func startConnection(_ call: Call, now: Int64) {
        guard let (proto, transfer) = TransferTools.classify(call.process, port: call.port) else {
            counters.notTransfers += 1
            keepCandidate(call, transport: .tcp, now: now)
            return
        }
        // TFTP is UDP, the others TCP: one table to search (each dump walks the namespace's sockets).
        if proto == .tftp {
            startTFTPSession(call, firstDatagram: nil, now: now)
            return
        }
        let flow = newFlow(proto, call, transfer: transfer, accepted: false)
        let resolved = resolve(flow, transports: [.tcp], now: now)
        track(flow, now: now)
        if flow.isFTPSession { ftpSessions[flow.process.pid, default: []].append(flow) }
        if !resolved && sockets != nil { awaitDestroy(flow, now: now) }
    }

    func addDataConnection(to session: Flow, _ call: Call, accepted: Bool, now: Int64) {
        let data = newFlow(.ftpData, call, transfer: nil, accepted: accepted)
        if !resolve(data, transports: [.tcp], now: now) && sockets != nil { awaitDestroy(data, now: now) }
        session.dataConnections.append(data)
        session.lastActivity = call.time
    }

    /// Finds the flow's socket through its process's fd; false when it is already gone.
    @discardableResult
    func resolve(_ flow: Flow, transports: [Transport], now: Int64) -> Bool {
        guard let sockets else { return false }
        guard
            let (namespace, found) = sockets.resolve(
                pid: flow.process.pid, fd: flow.fd, namespace: flow.process.networkNamespace,
                family: flow.family, remotePort: flow.accepted ? nil : flow.remotePort,
                transports: transports, now: now)
        else {
            debug(
                "flow \(flow.id): no socket behind fd \(flow.fd) of pid \(flow.process.pid) (\(flow.process.executableName)) any more, \(now - flow.start) ms after the call"
            )
            return false
        }
        var socket = found
        if socket.remotePort == 0 && !flow.accepted {
            // Still connecting: the connect's own address is the remote end.
            socket.remoteAddress = flow.remoteAddress
            socket.remotePort = flow.remotePort
        }
        flow.namespace = namespace
        flow.socket = socket
        findServerOnThisHost(flow)
        flow.transport = socket.transport
        flow.attributedAt = now
        if socket.transport == .tcp {
            flow.bytesOut = socket.bytesOut
            flow.bytesIn = socket.bytesIn
        }
        if let cookie = socket.cookie { bySocket[SocketKey(namespace: namespace, cookie: cookie)] = flow }
        return true
    }

    /// The process and socket were gone before we looked: a destroy notification (already
    /// received, or still to come) with the same remote end and uid carries its counts.
    func awaitDestroy(_ flow: Flow, now: Int64) {
        counters.unresolved += 1
        if let index = recentDestroys.firstIndex(where: { matches(flow, $0.socket) && $0.time + 1000 >= flow.start }) {
            let destroyed = recentDestroys.remove(at: index)
            counters.matchedLate += 1
            finishFromDestroy(flow, namespace: destroyed.namespace, socket: destroyed.socket, now: destroyed.time)
            return
        }
        unresolved.append(flow)
    }

    /// The kernel says uid 0 for a socket its process already closed (no file, inode 0), as a
    /// destroy notification usually finds it: the uid tells only while the socket has a file.
    /// (A web server's user's short FTP session lost its bytes and source to this.)
    func matches(_ flow: Flow, _ socket: InetSocket) -> Bool {
        socket.transport == .tcp && socket.remotePort == flow.remotePort && socket.remoteAddress == flow.remoteAddress
            && (flow.uid == nil || socket.inode == 0 || flow.uid == socket.uid)
    }

    // MARK: UDP (TFTP)

    /// A TFTP session on the client's UDP socket, from its request: a sendto (`firstDatagram`
    /// bytes) or a connect to the server. Later datagrams take the fast path in `socketCall`.
    func startTFTPSession(_ call: Call, firstDatagram: UInt64?, now: Int64) {
        let flow = newFlow(.tftp, call, transfer: nil, accepted: false)
        resolve(flow, transports: [.udp], now: now)
        flow.transport = .udp
        if let firstDatagram {
            flow.datagramsOut = 1
            flow.bytesOut = firstDatagram
            // Every datagram with an address is audited; a later connect() hides the rest.
            flow.bytesExact = true
        }
        udpSessions[DescriptorKey(pid: call.process.pid, fd: call.fd)] = flow
        track(flow, now: now)
    }

    /// The open FTP session of `pid` to `remote` a new connection belongs to: one on another
    /// port, or through the same proxy (whose data connections are requests to it too).
    private func ftpSession(pid: Int32, remote: IPAddress, excludingPort: UInt16?) -> Flow? {
        ftpSessions[pid]?.last { $0.remoteAddress == remote && $0.isOpen && ($0.remotePort != excludingPort || $0.content.proxy != nil) }
    }
}

extension FlowTracker {
    /// One line for the log.
    public var summary: String {
        let c = counters
        return "flows \(c.flowsReported) reported of \(c.flowsStarted), \(c.socketCalls) socket calls, \(c.notTransfers) not transfers, "
            + "\(c.serverSide) server side, \(c.failedConnects) failed connects, \(c.unresolved) unresolved (\(c.matchedLate) matched late), "
            + "\(c.evicted) evicted"
    }
}
