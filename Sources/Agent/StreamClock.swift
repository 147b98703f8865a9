import AuditIngest
import Flows
import HostState
import Runtime

/// The audit stream's time, kept in one place on the source side. A replay's clock is the
/// newest event time of its log. Live, flows and alerts use the real-time clock, and the newest
/// audit event time read decides when a socket's destroy notification may reach the flow
/// tracker: it waits (`HeldDestroys`) until the audit records from before it have been read.
final class StreamClock {
    let replaying: Bool
    private let tracker: FlowTracker
    /// The newest event time read: a replay's clock; live, what held destroys wait for.
    private var newestEventTime: Int64 = 0
    private var heldDestroys = HeldDestroys<(namespace: UInt64, socket: InetSocket)>()

    init(replaying: Bool, tracker: FlowTracker) {
        self.replaying = replaying
        self.tracker = tracker
    }

    /// Notes `event` and says what time it is for the stages that handle it.
    func read(_ event: AuditEvent) -> Int64 {
        newestEventTime = max(newestEventTime, event.key.time.totalMilliseconds)
        return now
    }

    /// Replay: the log's newest time; live: the real-time clock.
    var now: Int64 { replaying ? newestEventTime : realtimeMilliseconds() }

    /// A socket's destroy notification, read at `arrival`.
    func socketDestroyed(namespace: UInt64, socket: InetSocket, arrival: Int64) {
        heldDestroys.hold((namespace, socket), arrival: arrival)
    }

    /// Hands the flow tracker the notifications the audit stream caught up with, or that
    /// waited long enough; every loop turn, after the audit source.
    func releaseDestroys(now: Int64) {
        heldDestroys.release(auditTime: newestEventTime, now: now, handOn)
    }

    /// The input ended or the agent stops: every notification goes.
    func releaseAllDestroys() { heldDestroys.releaseAll(handOn) }

    private func handOn(_ notification: (namespace: UInt64, socket: InetSocket), arrival: Int64) {
        tracker.destroyed(namespace: notification.namespace, socket: notification.socket, now: arrival)
    }
}
