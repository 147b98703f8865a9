import HostState
import Runtime

#if canImport(Glibc)
    import Glibc
#endif

/// sock_diag's destroy notifications (one socket per watched network namespace): the final
/// counters of sockets, to the flow tracker once the audit stream caught up (`HeldDestroys`).
final class SocketDestroySource: LoopSource {
    private let sockets: HostSockets
    private let clock: StreamClock
    private let log: Logger

    init(sockets: HostSockets, clock: StreamClock, log: Logger) {
        self.sockets = sockets
        self.clock = clock
        self.log = log
    }

    func descriptors(into fds: inout [pollfd]) {
        sockets.forEachDestroyDescriptor { fds.append(pollfd(fd: $0, events: Int16(POLLIN), revents: 0)) }
    }
    /// A namespace's sockets close when it has been idle.
    var descriptorChanges: Int { sockets.counters.namespacesClosed }

    func service(_ polled: ArraySlice<pollfd>, time: LoopTime) -> LoopRequest {
        if polled.anyReady {
            sockets.drainDestroyed(now: time.monotonic) { namespace, socket in
                log.debug(
                    "socket destroyed in namespace \(namespace): \(socket.transport.rawValue) \(socket.localAddress):\(socket.localPort) -> "
                        + "\(socket.remoteAddress):\(socket.remotePort) cookie \(socket.cookie.map(String.init) ?? "-") "
                        + "out \(socket.bytesOut.map(String.init) ?? "-") in \(socket.bytesIn.map(String.init) ?? "-")")
                clock.socketDestroyed(namespace: namespace, socket: socket, arrival: time.realtime)
            }
        }
        sockets.reopenCloseGates(now: time.monotonic)
        // The audit source ran first this turn: what it read is what the notifications wait for.
        clock.releaseDestroys(now: time.realtime)
        return .none
    }
}

/// The YARA worker's side: every turn the targets gathered go to its queue; its results are
/// taken when their pipe polls readable.
final class ScanResultsSource: LoopSource {
    private let scans: ScanSlot

    init(scans: ScanSlot) { self.scans = scans }

    func descriptors(into fds: inout [pollfd]) {
        if let stage = scans.stage { fds.append(pollfd(fd: stage.queue.descriptor, events: Int16(POLLIN), revents: 0)) }
    }
    /// A stage's results pipe closes with it.
    var descriptorChanges: Int { scans.replacements }

    func service(_ polled: ArraySlice<pollfd>, time: LoopTime) -> LoopRequest {
        scans.stage?.collect(resultsReady: polled.anyReady)
        return .none
    }
}
