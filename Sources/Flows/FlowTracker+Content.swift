import AuditIngest
import HostState
import Inspection

/// An outbound TCP connect or UDP send that no port or client name made a transfer: kept for a
/// while, so that the packet tap can promote it when its content is FTP, SSH, TFTP or SMB.
struct Candidate {
    let call: FlowTracker.Call
    let transport: Transport
    let expires: Int64
}

/// A packet whose connection the flow model does not know yet: the tap and the audit stream
/// are two streams, and a short session's control channel can be over before its connect
/// record is read.
struct EarlyPacket {
    let content: Content
    let packet: DecodedPacket
    let time: Int64
}

/// The packet tap's side of the flow model: content read in a packet goes to the flow it
/// belongs to, by its addresses and ports; a candidate whose content turns out to be a transfer
/// protocol becomes a flow.
extension FlowTracker {
    static let candidateMilliseconds: Int64 = 120_000
    static let maximumCandidates = 4096
    /// How long and how many packets wait for their connection's audit record.
    static let earlyMilliseconds: Int64 = 5000
    static let maximumEarlyPackets = 1024

    func keepCandidate(_ call: Call, transport: Transport, now: Int64) {
        if candidates.count >= Self.maximumCandidates { candidates.removeFirst(Self.maximumCandidates / 4) }
        candidates.append(Candidate(call: call, transport: transport, expires: call.time + Self.candidateMilliseconds))
        // Its content may have been read already.
        replayPackets(to: call.remote, port: call.port)
    }

    /// Packets read before `flow` existed, applied to it now, in the order they came, before
    /// the stages hear of it: a proxy request read before the reply that made the flow is
    /// known when its destination is first judged.
    func replayPackets(for flow: Flow) {
        guard !earlyPackets.isEmpty else { return }
        let local = flow.socket?.localPort ?? 0
        let remote = flow.remoteAddress.bytes
        var waiting: [(EarlyPacket, Bool)] = []
        earlyPackets.removeAll { early in
            let p = early.packet
            let fromClient = p.destinationPort == flow.remotePort && p.destination.elementsEqual(remote) && (local == 0 || p.sourcePort == local)
            let fromServer = p.sourcePort == flow.remotePort && p.source.elementsEqual(remote) && (local == 0 || p.destinationPort == local)
            guard fromClient || fromServer else { return false }
            waiting.append((early, fromClient))
            return true
        }
        for (early, fromClient) in waiting {
            counters.packetsMatched += 1
            apply(early.content, to: flow, fromClient: fromClient, sequence: early.packet.sequence, transport: early.packet.transport == .tcp ? .tcp : .udp)
        }
    }

    /// The early packets between this host and `remote`:`port` go through again; the others
    /// keep waiting. Only those: a local server's traffic can keep the list full.
    private func replayPackets(to remote: IPAddress, port: UInt16) {
        guard !earlyPackets.isEmpty else { return }
        var waiting: [EarlyPacket] = []
        earlyPackets.removeAll { early in
            let packet = early.packet
            let matches =
                (packet.destinationPort == port && packet.destination.elementsEqual(remote.bytes))
                || (packet.sourcePort == port && packet.source.elementsEqual(remote.bytes))
            if matches { waiting.append(early) }
            return matches
        }
        for early in waiting { inspected(early.content, packet: early.packet, now: early.time, counted: false) }
    }

    /// The tap read `content` in `packet`; `now` is the time it was captured.
    public func inspected(_ content: Content, packet: DecodedPacket, now: Int64) {
        inspected(content, packet: packet, now: now, counted: true)
    }

    private func inspected(_ content: Content, packet: DecodedPacket, now: Int64, counted: Bool) {
        if counted { counters.packetsInspected += 1 }
        let transport: Transport = packet.transport == .tcp ? .tcp : .udp
        let source = IPAddress(bytes: packet.source), destination = IPAddress(bytes: packet.destination)
        if let (flow, fromClient) = flow(between: source, packet.sourcePort, and: destination, packet.destinationPort, transport) {
            debug("flow \(flow.id): \(content) \(fromClient ? "from the client" : "from the server")\(counted ? "" : " (read before its connect)")")
            counters.packetsMatched += 1
            apply(content, to: flow, fromClient: fromClient, sequence: packet.sequence, transport: transport)
            return
        }
        while let first = candidates.first, first.expires < now { candidates.removeFirst() }
        if ["ftp", "ssh", "tftp", "smb"].contains(content.protocolName), promoteCandidate(content, packet: packet, now: now) { return }
        // Its sender's datagrams may no longer be audited (a flood quieted them).
        if counted, case .tftpRequest = content {
            while let first = unexplainedTFTPRequests.first, now - first.time > Self.earlyMilliseconds || unexplainedTFTPRequests.count >= 64 {
                unexplainedTFTPRequests.removeFirst()
            }
            unexplainedTFTPRequests.append(EarlyPacket(content: content, packet: packet, time: now))
            observer.unexplainedTFTPRequest()
        }
        keepEarly(content, packet: packet, now: now)
    }

    private func keepEarly(_ content: Content, packet: DecodedPacket, now: Int64) {
        debug(
            "packet \(IPAddress(bytes: packet.source)):\(packet.sourcePort) -> \(IPAddress(bytes: packet.destination)):\(packet.destinationPort) \(content): no flow yet"
        )
        while let first = earlyPackets.first, now - first.time > Self.earlyMilliseconds { earlyPackets.removeFirst() }
        if earlyPackets.count >= Self.maximumEarlyPackets { earlyPackets.removeFirst() }
        earlyPackets.append(EarlyPacket(content: content, packet: packet, time: now))
    }

    /// The newest candidate whose remote end is one of the packet's ends becomes a flow; false
    /// when there is none.
    private func promoteCandidate(_ content: Content, packet: DecodedPacket, now: Int64) -> Bool {
        let transport: Transport = packet.transport == .tcp ? .tcp : .udp
        let source = IPAddress(bytes: packet.source), destination = IPAddress(bytes: packet.destination)
        let server: (IPAddress, UInt16)
        let index: Int
        if let found = candidate(transport, remote: destination, port: packet.destinationPort, localPort: packet.sourcePort, now: now) {
            (index, server) = (found, (destination, packet.destinationPort))
        } else if let found = candidate(transport, remote: source, port: packet.sourcePort, localPort: packet.destinationPort, now: now) {
            (index, server) = (found, (source, packet.sourcePort))
        } else {
            return false
        }
        let candidate = candidates.remove(at: index)
        promote(candidate, as: content, fromClient: server.0 == destination && server.1 == packet.destinationPort, packet: packet, now: now)
        return true
    }

    /// The candidate connection to `remote`:`port` whose socket has `localPort`; the newest when
    /// no socket can be read any more. Several connections share a proxy's address and port
    /// (a session's control and data connections): only the local port tells them apart.
    private func candidate(_ transport: Transport, remote: IPAddress, port: UInt16, localPort: UInt16, now: Int64) -> Int? {
        let matching = candidates.indices.filter {
            candidates[$0].transport == transport && candidates[$0].call.remote == remote && candidates[$0].call.port == port
        }
        guard matching.count > 1, let sockets else { return matching.last }
        for index in matching.reversed() {
            let call = candidates[index].call
            if let (_, socket) = sockets.resolve(
                pid: call.process.pid, fd: call.fd, namespace: call.process.networkNamespace, family: call.family, remotePort: port,
                transports: [transport], now: now), socket.localPort == localPort
            {
                return index
            }
        }
        return matching.last
    }

    /// The open top-level flow the packet belongs to, and whether it travels from its client.
    private func flow(between source: IPAddress, _ sourcePort: UInt16, and destination: IPAddress, _ destinationPort: UInt16, _ transport: Transport)
        -> (Flow, Bool)?
    {
        for flow in open.values where flow.networkProtocol != .ftpData && (flow.transport ?? transport) == transport {
            let ports = [flow.remotePort] + (flow.transferPort.map { [$0] } ?? [])
            for (remote, remotePort, localPort, fromClient) in [
                (destination, destinationPort, sourcePort, true), (source, sourcePort, destinationPort, false),
            ] where flow.remoteAddress == remote && ports.contains(remotePort) {
                if let local = flow.socket?.localPort, local != 0, local != localPort { continue }
                return (flow, fromClient)
            }
        }
        return nil
    }

    private func apply(_ content: Content, to flow: Flow, fromClient: Bool, sequence: UInt32, transport: Transport) {
        if transport == .tcp {
            let last = fromClient ? flow.content.lastSequence.client : flow.content.lastSequence.server
            if last == sequence { return }
            if fromClient { flow.content.lastSequence.client = sequence } else { flow.content.lastSequence.server = sequence }
        }
        let server = "\(flow.remoteAddress):\(flow.remotePort)"
        guard flow.content.apply(content, fromClient: fromClient, server: server, serverPort: flow.targetPort) else { return }
        let previously = flow.networkProtocol
        if let named = flow.content.protocolName.flatMap(FlowProtocol.init(rawValue:)), ![.scp, .sftp].contains(flow.networkProtocol) {
            flow.networkProtocol = named
        }
        if open[flow.id] != nil { observer.flowIdentified(flow, previously: previously) }
    }

    /// A TFTP request the tap read without its send (its sender's datagrams were not audited
    /// then): the sender's first audited datagram to that server, from the request's port,
    /// starts the session late, its bytes short of the datagrams sent before.
    func startTFTPSessionLate(_ call: Call, sent: UInt64, now: Int64) -> Bool {
        guard !unexplainedTFTPRequests.isEmpty,
            let index = unexplainedTFTPRequests.firstIndex(where: {
                IPAddress(bytes: $0.packet.destination) == call.remote && now - $0.time <= Self.earlyMilliseconds
            })
        else { return false }
        let request = unexplainedTFTPRequests[index]
        if let sockets,
            let (_, socket) = sockets.resolve(
                pid: call.process.pid, fd: call.fd, namespace: call.process.networkNamespace, family: call.family, remotePort: nil, transports: [.udp],
                now: now), socket.localPort != request.packet.sourcePort
        {
            return false
        }
        unexplainedTFTPRequests.remove(at: index)
        startTFTPSession(
            Call(
                process: call.process, fd: call.fd, remote: call.remote, port: request.packet.destinationPort, family: call.family, time: request.time,
                uid: call.uid),
            firstDatagram: nil, now: now)
        guard let session = udpSessions[DescriptorKey(pid: call.process.pid, fd: call.fd)] else { return true }
        session.transferPort = call.port
        session.datagramsOut = 1
        session.bytesOut = sent
        session.bytesExact = false
        apply(request.content, to: session, fromClient: true, sequence: 0, transport: .udp)
        return true
    }

    /// A candidate connection whose content is a transfer protocol becomes a flow: found as a
    /// connect's flow would have been, then started with what the content said.
    private func promote(_ candidate: Candidate, as content: Content, fromClient: Bool, packet: DecodedPacket, now: Int64) {
        guard let proto = FlowProtocol(rawValue: content.protocolName) else { return }
        counters.promoted += 1
        let call = candidate.call
        let flow = newFlow(proto, call, transfer: nil, accepted: false)
        let resolved = resolve(flow, transports: [candidate.transport], now: now)
        if candidate.transport == .udp {
            flow.transport = .udp
            udpSessions[DescriptorKey(pid: call.process.pid, fd: call.fd)] = flow
        } else if fromClient {
            flow.content.lastSequence.client = packet.sequence
        } else {
            flow.content.lastSequence.server = packet.sequence
        }
        _ = flow.content.apply(content, fromClient: fromClient, server: "\(flow.remoteAddress):\(flow.remotePort)", serverPort: flow.remotePort)
        track(flow, now: now)
        if flow.isFTPSession {
            ftpSessions[flow.process.pid, default: []].append(flow)
            adoptDataConnections(of: flow, now: now)
        }
        if candidate.transport == .tcp && !resolved && sockets != nil { awaitDestroy(flow, now: now) }
    }

    /// Connections the session's process made to its server (through its proxy: to the proxy)
    /// before the content made the session a flow: its data connections.
    private func adoptDataConnections(of session: Flow, now: Int64) {
        let pid = session.process.pid
        var adopted: [Call] = []
        candidates.removeAll { candidate in
            let call = candidate.call
            guard candidate.transport == .tcp, call.process.pid == pid, call.remote == session.remoteAddress, call.time >= session.start,
                call.fd != session.fd, call.port != session.remotePort || session.content.proxy != nil
            else { return false }
            adopted.append(call)
            return true
        }
        for call in adopted { addDataConnection(to: session, call, accepted: false, now: now) }
    }
}

/// Servers on this host: a client's flow whose local end is the peer a local server accepted
/// goes to another namespace of this host (a container) or to this one.
extension FlowTracker {
    static let maximumAccepts = 1024

    func acceptedOnThisHost(by server: ProcessRecord, peer: IPAddress, port: UInt16) {
        // A session's control connection or one of its data connections.
        for session in open.values {
            for flow in [session] + session.dataConnections where flow.server == nil && flow.socket?.localPort == port && flow.socket?.localAddress == peer {
                link(flow, to: server)
                return
            }
        }
        if recentAccepts.count >= Self.maximumAccepts { recentAccepts.removeFirst(Self.maximumAccepts / 4) }
        recentAccepts.append((peer, port, server))
    }

    func findServerOnThisHost(_ flow: Flow) {
        guard !flow.accepted, let socket = flow.socket, socket.localPort != 0,
            let index = recentAccepts.lastIndex(where: { $0.port == socket.localPort && $0.peer == socket.localAddress })
        else { return }
        link(flow, to: recentAccepts.remove(at: index).server)
    }

    private func link(_ flow: Flow, to server: ProcessRecord) {
        // Its namespace is read now, while it runs (servers are not read at exec).
        processes.completeDetails(server)
        flow.server = server
        // A short session's server child may be gone: its listener, the same program, tells.
        flow.serverNamespace =
            processes.readNetworkNamespace(of: server) ?? server.sameProgramLineage.lazy.compactMap { self.processes.readNetworkNamespace(of: $0) }.first
        relay(flow, through: server)
    }

    static let maximumAwaitingRelay = 1024

    /// A flow that a process on this host accepted goes on through that process's own
    /// connection out: one it has (ssh -L/-D's tunnel), else the next it makes (socat, a SOCKS
    /// server). A flow whose peer is this host, made by a process with a tunnel of its own
    /// (ssh -R), goes on through that tunnel.
    func relay(_ flow: Flow, through process: ProcessRecord) {
        guard flow.relay == nil, !flow.accepted else { return }
        if let leg = connectionOut(of: process, besides: flow) {
            setRelay(flow, through: process, to: leg.remote, port: leg.port, networkProtocol: leg.proto)
            return
        }
        if process !== flow.process, let tunnel = connectionOut(of: flow.process, besides: flow), tunnel.proto == .ssh {
            setRelay(flow, through: flow.process, to: tunnel.remote, port: tunnel.port, networkProtocol: .ssh)
            return
        }
        guard process !== flow.process else { return }
        // Bounded: a server that never connects out (an FTP server on this host) keeps at most
        // its open flows, 64 of them, and at most 1024 servers wait.
        if awaitingRelay.count >= Self.maximumAwaitingRelay { awaitingRelay = awaitingRelay.filter { $0.value.contains(where: \.isOpen) } }
        guard awaitingRelay.count < Self.maximumAwaitingRelay || awaitingRelay[process.pid] != nil else { return }
        var waiting = awaitingRelay[process.pid, default: []].filter(\.isOpen)
        if waiting.count >= 64 { waiting.removeFirst() }
        waiting.append(flow)
        awaitingRelay[process.pid] = waiting
    }

    /// The newest connection of `process` that leaves this host: an open flow, else a
    /// connection no port or content made one.
    private func connectionOut(of process: ProcessRecord, besides flow: Flow) -> (remote: IPAddress, port: UInt16, proto: FlowProtocol?)? {
        // A forked child (ssh -f, a server's per-connection child) carries its parent's connections.
        let lineage = process.sameProgramLineage
        let flows = open.values.filter { other in
            other !== flow && other.isOpen && other.remoteAddress.leavesThisHost && other.server == nil && lineage.contains { $0 === other.process }
        }
        if let newest = (flows.isEmpty ? flowsHeld(by: process, besides: flow) : flows).max(by: { $0.start < $1.start }) {
            return (newest.remoteAddress, newest.remotePort, newest.networkProtocol)
        }
        if let candidate = candidates.last(where: { candidate in
            candidate.call.remote.leavesThisHost && candidate.call.port != 0 && candidate.transport == .tcp
                && lineage.contains { $0 === candidate.call.process }
        }) {
            return (candidate.call.remote, candidate.call.port, nil)
        }
        return nil
    }

    /// Open flows to elsewhere whose sockets `process` holds, by its descriptors: a daemon
    /// that forked away from the process that connected (ssh -f) holds its connection.
    private func flowsHeld(by process: ProcessRecord, besides flow: Flow) -> [Flow] {
        guard let procfs = processes.procfs else { return [] }
        let outside = open.values.filter { $0 !== flow && $0.isOpen && $0.remoteAddress.leavesThisHost && ($0.socket?.inode ?? 0) != 0 }
        guard !outside.isEmpty else { return [] }
        let inodes = Set(procfs.fileDescriptors(pid: process.pid).prefix(4096).compactMap { procfs.socketInode(pid: process.pid, fd: $0) })
        return outside.filter { inodes.contains($0.socket?.inode ?? 0) }
    }

    func setRelay(_ flow: Flow, through process: ProcessRecord, to remote: IPAddress, port: UInt16, networkProtocol: FlowProtocol?) {
        flow.relay = Relay(process: process, remoteAddress: remote, remotePort: port, networkProtocol: networkProtocol)
        debug("flow \(flow.id): carried on by pid \(process.pid) (\(process.executableName)) to \(remote):\(port)")
        if open[flow.id] != nil { observer.flowIdentified(flow, previously: flow.networkProtocol) }
    }
}
