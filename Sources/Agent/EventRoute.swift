import AuditIngest
import Detection
import Flows
import HostState
import KernelAudit

/// One assembled event through the stages, in the order they depend on each other: the audit
/// watch (live: rule removals), the printer; then a syscall the agent acts on, decoded once
/// (`SyscallEvent`): an execve to the process table (and its network namespace to the sockets,
/// its process to detection), a socket call to the flow tracker; then the scan stage, which
/// finds an execve's process in the table by then.
final class EventRoute: EventSink {
    private let watch: AuditWatch?
    private let printer: EventPrinter
    private let clock: StreamClock
    private let processes: ProcessTable
    private let sockets: HostSockets?
    private let consumers: FlowConsumers
    private let tracker: FlowTracker
    private let scans: ScanSlot
    private let detector: Detector
    /// Replay: names learned from the log.
    private let alerts: AlertOutput
    private let users: UserNames
    private weak var observer: GraphObserver?

    init(
        watch: AuditWatch?, printer: EventPrinter, clock: StreamClock, processes: ProcessTable, sockets: HostSockets?, consumers: FlowConsumers,
        tracker: FlowTracker, scans: ScanSlot, detector: Detector, alerts: AlertOutput, users: UserNames, observer: GraphObserver?
    ) {
        self.watch = watch
        self.printer = printer
        self.clock = clock
        self.processes = processes
        self.sockets = sockets
        self.consumers = consumers
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
        if let call = SyscallEvent(event) {
            switch call.kind {
            case .execve:
                if call.succeeded, let process = processes.exec(call.syscall, event: event) {
                    if let namespace = process.networkNamespace { sockets?.watchNamespace(namespace, of: process.pid, now: now) }
                    consumers.processStarted(process)
                }
            case .connect, .accept, .sendto:
                tracker.handle(call, now: now)
            case .listen:
                break
            }
            scans.stage?.handle(call)
        }
        if clock.replaying { detector.tick(now: now) }
    }

    /// A replay describes the log, not today's host: user names from ENRICHED records, the
    /// host from `node=`.
    private func learnFromLog(_ event: AuditEvent) {
        if let node = event.key.node { alerts.origin.host.hostname = node }
        if let syscall = event.records.first, syscall.type == .syscall { users.learn(from: syscall) }
    }
}
