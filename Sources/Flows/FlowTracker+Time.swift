import HostState

/// The flow model's clock: flows whose socket was never found, polls of open TCP flows'
/// counters, FTP sessions whose data connections never closed, and the end of input.
extension FlowTracker {
    /// Timeouts and polls; call a few times a second (live) or per event time (replay).
    public func tick(now: Int64) {
        // Flows whose destroy notification never matched.
        while let first = unresolved.first, now - first.start >= settings.unresolvedWaitMilliseconds {
            unresolved.removeFirst()
            end(first, at: first.start, reason: .unresolved)
        }
        // Appended in time order: the expired ones are a prefix.
        let expired = recentDestroys.prefix { now - $0.time > settings.unresolvedWaitMilliseconds }.count
        if expired > 0 { recentDestroys.removeFirst(expired) }
        guard let sockets, now >= nextPoll else { return }
        nextPoll = now + pollInterval(sockets)
        for flow in Array(open.values) {
            for connection in [flow] + flow.dataConnections where connection.isOpen {
                poll(connection, sockets: sockets, now: now)
            }
            // A binary deleted while it transfers (dropped, run, removed).
            if flow.isOpen { processes.checkExecutableFile(flow.process) }
            if flow.isOpen, flow.transport == .udp, !processes.isAlive(flow.process) {
                end(flow, at: now, reason: .processExited)
            }
            // A control connection closed long ago, data connections we never saw close.
            if !flow.isOpen, let ended = flow.end, now - ended > settings.dataLingerMilliseconds, open[flow.id] != nil {
                endAll(flow, at: now, reason: .closed)
            }
        }
    }

    private func poll(_ flow: Flow, sockets: HostSockets, now: Int64) {
        guard flow.transport == .tcp, let socket = flow.socket, let namespace = flow.namespace, socket.cookie != nil else { return }
        if let current = sockets.refresh(socket, namespace: namespace) {
            if current.bytesOut != nil {
                flow.bytesOut = current.bytesOut
                flow.bytesIn = current.bytesIn
            }
            // Its process closed it (no file: closing, or TIME_WAIT for a minute) while no
            // notification can come: it ends with what was read now.
            if current.inode == 0, sockets.closesUnheard(in: namespace) {
                flow.bytesExact = false
                end(flow, at: now, reason: .closed)
            }
        } else if let vanished = flow.vanishedAt, now - vanished >= pollInterval(sockets) {
            // Gone and no notification came for a whole interval: the last counts we saw.
            flow.bytesExact = false
            end(flow, at: vanished, reason: .closed)
        } else if flow.vanishedAt == nil {
            // The socket can die between draining notifications and this poll: wait for its own.
            flow.vanishedAt = now
        }
    }

    /// While a namespace's socket closes are not heard (a flood), open flows are polled more
    /// often: their last counters are what they keep when they end.
    private func pollInterval(_ sockets: HostSockets) -> Int64 {
        sockets.anyClosesUnheard ? min(settings.pollIntervalMilliseconds, Self.unheardPollMilliseconds) : settings.pollIntervalMilliseconds
    }

    static let unheardPollMilliseconds: Int64 = 250

    /// Ends and reports every open flow: the agent is stopping or the log has ended.
    public func finish(now: Int64) {
        for flow in open.values.sorted(by: { $0.id < $1.id }) {
            if let sockets, flow.transport == .tcp { poll(flow, sockets: sockets, now: now) }
            if open[flow.id] != nil { endAll(flow, at: flow.lastActivity, reason: .stopped) }
        }
    }
}
