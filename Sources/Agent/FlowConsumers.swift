import AuditIngest
import ByteJSON
import Detection
import Flows
import HostState

/// The flow tracker's observers, in order: hashing of binaries, detection, scanning of uploads, then the finished
/// flow to the printer, agentctl's recent flows and the graph's observer. Where a rule found
/// something about a process, its interactivity is judged here from host state, while the
/// process runs, and handed to the detector as a value.
final class FlowConsumers: FlowObserver {
    private let processes: ProcessTable
    private let detector: Detector
    private let printer: EventPrinter
    private let scans: ScanSlot
    /// The alert route's: hashing runs live, once started.
    private let alerts: AlertRoute
    /// Set by the graph when the agent is the audit daemon.
    var datagrams: DatagramQuieting?
    /// Finished flows for `agentctl flows` (live only).
    private let recent: RecentLines?
    private weak var observer: GraphObserver?
    private var json = JSONWriter()

    init(
        processes: ProcessTable, detector: Detector, printer: EventPrinter, scans: ScanSlot, alerts: AlertRoute, recent: RecentLines?,
        observer: GraphObserver?
    ) {
        self.processes = processes
        self.detector = detector
        self.printer = printer
        self.scans = scans
        self.alerts = alerts
        self.recent = recent
        self.observer = observer
    }

    /// An execve the process table took: the execve-time rules (most processes: nothing found,
    /// and nothing more is read).
    func processStarted(_ process: ProcessRecord) {
        let findings = detector.execveFindings(process)
        guard !findings.isEmpty else { return }
        detector.hold(findings, interactivity: processes.completeDetailsAndAssessInteractivity(of: process))
    }

    func connected(_ process: ProcessRecord, to remote: IPAddress, port: UInt16, time: Int64) {
        guard let finding = detector.connected(process, to: remote, port: port, time: time) else { return }
        detector.raise(finding, interactivity: processes.completeDetailsAndAssessInteractivity(of: process))
    }
    func flowIdentified(_ flow: Flow, previously: FlowProtocol) { detector.flowIdentified(flow, previously: previously) }
    func sendsManyDatagrams(_ process: ProcessRecord) { datagrams?.quiet(process) }
    func unexplainedTFTPRequest() { datagrams?.tftpRequestUnexplained() }
    func flowStarted(_ flow: Flow) {
        // Hashed while the process still runs: its alert often comes when the flow ends.
        alerts.digests?.prefetch(flow)
        detector.flowStarted(flow)
        scans.stage?.flowStarted(flow)
    }
    func flowReported(_ flow: Flow) {
        detector.flowReported(flow)
        printer.consume(flow)
        if let recent {
            json.reset()
            FlowJSON.write(flow, to: &json)
            recent.append(json.bytes)
        }
        observer?.flowEnded(flow)
    }
}
