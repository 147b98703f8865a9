import AuditIngest
import Detection
import Flows
import KernelAudit

/// One assembled event through the stages, in the order they depend on each other: the audit
/// watch (live: rule removals), the printer, the flow tracker (process table, sockets), then the
/// scan stage, which finds an execve's process in the table by then.
final class EventRoute: EventSink {
    private let watch: AuditWatch?
    private let printer: EventPrinter
    private let clock: StreamClock
    private let tracker: FlowTracker
    private let scans: ScanSlot
    private let detector: Detector
    /// Replay: names learned from the log.
    private let alerts: AlertOutput
    private let users: UserNames
    private weak var observer: GraphObserver?

    init(
        watch: AuditWatch?, printer: EventPrinter, clock: StreamClock, tracker: FlowTracker, scans: ScanSlot, detector: Detector,
        alerts: AlertOutput, users: UserNames, observer: GraphObserver?
    ) {
        self.watch = watch
        self.printer = printer
        self.clock = clock
        self.tracker = tracker
        self.scans = scans
        self.detector = detector
        self.alerts = alerts
        self.users = users
        self.observer = observer
    }

    func consume(_ event: AuditEvent) {
        watch?.watch(event)
        observer?.eventRead(event)
        printer.consume(event)
        if clock.replaying { learnFromLog(event) }
        let now = clock.read(event)
        tracker.handle(event, now: now)
        scans.stage?.handle(event)
        if clock.replaying { detector.tick(now: now) }
    }

    /// A replay describes the log, not today's host: user names from ENRICHED records, the
    /// host from `node=`.
    private func learnFromLog(_ event: AuditEvent) {
        if let node = event.key.node { alerts.origin.host.hostname = node }
        if let syscall = event.records.first, syscall.type == .syscall { users.learn(from: syscall) }
    }
}
