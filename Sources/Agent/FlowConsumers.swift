import AuditIngest
import ByteJSON
import Detection
import Flows
import HostState

/// The flow tracker's observers, in order: hashing of binaries, detection, scanning of uploads, then the finished
/// flow to the printer, agentctl's recent flows and `onFlow`.
final class FlowConsumers: FlowObserver {
    private let detector: Detector
    private let printer: EventPrinter
    /// Set by the graph: scanning starts after the privilege drop and a reload may replace it.
    var scans: ScanStage?
    /// Set by the graph when hashing runs (live).
    var digests: AlertDigests?
    /// Set by the graph when the agent is the audit daemon.
    var datagrams: DatagramQuieting?
    /// Finished flows for `agentctl flows` (live only).
    private let recent: RecentLines?
    var onFlow: ((Flow) -> Void)?
    private var json = JSONWriter()

    init(detector: Detector, printer: EventPrinter, recent: RecentLines?) {
        self.detector = detector
        self.printer = printer
        self.recent = recent
    }

    func processStarted(_ process: ProcessRecord) { detector.processStarted(process) }
    func connected(_ process: ProcessRecord, to remote: IPAddress, port: UInt16, time: Int64) {
        detector.connected(process, to: remote, port: port, time: time)
    }
    func flowIdentified(_ flow: Flow, previously: FlowProtocol) { detector.flowIdentified(flow, previously: previously) }
    func sendsManyDatagrams(_ process: ProcessRecord) { datagrams?.quiet(process) }
    func unexplainedTFTPRequest() { datagrams?.tftpRequestUnexplained() }
    func flowStarted(_ flow: Flow) {
        // Hashed while the process still runs: its alert often comes when the flow ends.
        digests?.prefetch(flow)
        detector.flowStarted(flow)
        scans?.flowStarted(flow)
    }
    func flowReported(_ flow: Flow) {
        detector.flowReported(flow)
        printer.consume(flow)
        if let recent {
            json.reset()
            FlowJSON.write(flow, to: &json)
            recent.append(json.bytes)
        }
        onFlow?(flow)
    }
}
