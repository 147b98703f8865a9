import HostState

/// How flows end: destroy notifications (matched by cookie, or late by remote end), timeouts
/// and exits; a session is reported once nothing in it is open.
extension FlowTracker {
    /// A socket destroyed in `namespace`, with its final counters.
    public func destroyed(namespace: UInt64, socket: InetSocket, now: Int64) {
        counters.destroyNotifications += 1
        if let cookie = socket.cookie, let flow = bySocket.removeValue(forKey: SocketKey(namespace: namespace, cookie: cookie)) {
            finishFromDestroy(flow, namespace: namespace, socket: socket, now: now)
            return
        }
        guard socket.transport == .tcp else { return }
        // Connections with the same remote end are told apart by nothing here (a session's
        // control and data connections through one proxy): a data connection first, as it
        // closes before the session that opened it; otherwise the oldest.
        let matching = unresolved.indices.filter { matches(unresolved[$0], socket) }
        if let index = matching.first(where: { unresolved[$0].networkProtocol == .ftpData }) ?? matching.first {
            counters.matchedLate += 1
            finishFromDestroy(unresolved.remove(at: index), namespace: namespace, socket: socket, now: now)
            return
        }
        // The audit record may still be on its way: keep it for a while.
        recentDestroys.append(RecentDestroy(namespace: namespace, socket: socket, time: now))
        if recentDestroys.count > 4096 { recentDestroys.removeFirst(1024) }
    }

    func finishFromDestroy(_ flow: Flow, namespace: UInt64, socket: InetSocket, now: Int64) {
        flow.namespace = namespace
        if flow.socket == nil || flow.socket?.localPort == 0 {
            flow.socket = socket
            findServerOnThisHost(flow)
        }
        if socket.transport == .tcp {
            flow.transport = .tcp
            flow.bytesOut = socket.bytesOut
            flow.bytesIn = socket.bytesIn
            flow.bytesExact = socket.bytesOut != nil
        }
        end(flow, at: now, reason: .closed)
    }

    /// Marks `flow` ended (never before it started) and forgets its socket.
    func markEnded(_ flow: Flow, at time: Int64, reason: FlowEnd) {
        flow.end = max(time, flow.start)
        flow.endReason = reason
        if let cookie = flow.socket?.cookie, let namespace = flow.namespace {
            bySocket[SocketKey(namespace: namespace, cookie: cookie)] = nil
        }
    }

    /// Ends one flow and reports its session once nothing in it is open.
    func end(_ flow: Flow, at time: Int64, reason: FlowEnd) {
        guard flow.end == nil else { return }
        markEnded(flow, at: time, reason: reason)
        if let session = sessionOwning(flow) {
            reportIfComplete(session, now: time)
        } else {
            reportIfComplete(flow, now: time)
        }
    }

    func sessionOwning(_ data: Flow) -> Flow? {
        guard data.networkProtocol == .ftpData else { return nil }
        return ftpSessions[data.process.pid]?.first { $0.dataConnections.contains { $0 === data } }
    }

    /// Reports a top-level flow once it and its data connections have ended.
    func reportIfComplete(_ flow: Flow, now: Int64) {
        guard open[flow.id] != nil, !flow.isOpen, !flow.dataConnections.contains(where: \.isOpen) else { return }
        report(flow)
    }

    func report(_ flow: Flow) {
        open[flow.id] = nil
        if flow.isFTPSession {
            ftpSessions[flow.process.pid]?.removeAll { $0 === flow }
            if ftpSessions[flow.process.pid]?.isEmpty == true { ftpSessions[flow.process.pid] = nil }
        }
        if flow.transport == .udp { udpSessions[DescriptorKey(pid: flow.process.pid, fd: flow.fd)] = nil }
        unresolved.removeAll { candidate in candidate === flow || flow.dataConnections.contains { $0 === candidate } }
        counters.flowsReported += 1
        observer.flowReported(flow)
    }

    func track(_ flow: Flow, now: Int64) {
        replayPackets(for: flow)
        open[flow.id] = flow
        observer.flowStarted(flow)
        if open.count > settings.maximumOpenFlows, let oldest = open.values.min(by: { $0.lastActivity < $1.lastActivity }) {
            counters.evicted += 1
            endAll(oldest, at: now, reason: .evicted)
        }
    }

    /// Ends a session and whatever of it is still open, and reports it now.
    func endAll(_ flow: Flow, at time: Int64, reason: FlowEnd) {
        for data in flow.dataConnections where data.isOpen { markEnded(data, at: time, reason: reason) }
        if flow.isOpen { markEnded(flow, at: time, reason: reason) }
        report(flow)
    }
}
