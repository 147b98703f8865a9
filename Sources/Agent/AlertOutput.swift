import AgentConfig
import AuditIngest
import ByteJSON
import Detection
import Flows
import HostState
import Patterns

#if canImport(Glibc)
import Glibc
#endif

/// Where alerts go: the alert file (live) and standard output (replay, or `run --alerts`).
final class AlertOutput {
    private var json = JSONWriter(capacity: 16_384)
    private let file: AlertFile?
    private let printer: EventPrinter
    private let hostname = AlertOutput.hostname()
    private let users: UserNames
    private var failing = false
    private var droppedReported = 0
    private(set) var emitted = 0

    init(filePath: String?, printer: EventPrinter, users: UserNames) {
        file = filePath.flatMap { $0.isEmpty ? nil : AlertFile(path: $0) }
        self.printer = printer
        self.users = users
    }

    func consume(_ alert: Alert) {
        json.reset()
        AlertJSON.write(alert, hostname: hostname, users: users, to: &json)
        json.newline()
        emitted += 1
        file?.append(json.bytes)
        printer.consume(alertLine: json.bytes)
    }

    /// Retries waiting lines and follows rotation; returns the reasons for a health alert when
    /// the file output starts failing or comes back after dropping alerts.
    func service(log: Logger) -> [String]? {
        guard let file else { return nil }
        file.reopenIfMoved()
        file.drain()
        if let failure = file.failure, !failing {
            failing = true
            log.error("alert file output failing: \(failure); \(file.waitingCount) alerts waiting")
            return ["alert file output failing: \(failure)", "\(file.waitingCount) alerts waiting to be written"]
        }
        if file.failure == nil && failing {
            failing = false
            log.info("alert file output writing again")
            if file.dropped > droppedReported {
                defer { droppedReported = file.dropped }
                return ["alert file output dropped \(file.dropped - droppedReported) alerts while failing (queue of \(AlertFile.waitingLimit) full)"]
            }
        }
        return nil
    }

    var summary: String {
        guard let file else { return "alerts \(emitted) emitted" }
        return "alerts \(emitted) emitted, \(file.written) written to \(file.path), \(file.waitingCount) waiting, \(file.dropped) dropped"
    }

    static func hostname() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count) == 0 else { return "unknown" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// Rules and where their alerts go, built the same way for replay and the live agent.
struct DetectionStage {
    let detector: Detector
    let alerts: AlertOutput

    /// `alertFile` nil: alerts go to the printer only.
    init(configuration: AgentConfiguration, processes: ProcessTable, firstSeen: FirstSeenStore, alertFile: String?,
         printer: EventPrinter, idPrefix: String) throws(PatternError) {
        let users = UserNames()
        alerts = AlertOutput(filePath: alertFile, printer: printer, users: users)
        detector = try Detector(configuration: configuration, processes: processes, firstSeen: firstSeen, users: users,
                                idPrefix: idPrefix, emit: alerts.consume)
    }
}

/// The flow tracker's observers: detection, scanning of uploads, then printing finished flows.
final class FlowConsumers: FlowObserver {
    let detector: Detector
    let printer: EventPrinter
    let scans: ScanStage?

    init(detector: Detector, printer: EventPrinter, scans: ScanStage?) {
        self.detector = detector
        self.printer = printer
        self.scans = scans
    }

    func processStarted(_ process: ProcessRecord) { detector.processStarted(process) }
    func connected(_ process: ProcessRecord, to remote: IPAddress, port: UInt16, time: Int64) {
        detector.connected(process, to: remote, port: port, time: time)
    }
    func flowStarted(_ flow: Flow) {
        detector.flowStarted(flow)
        scans?.flowStarted(flow)
    }
    func flowReported(_ flow: Flow) {
        detector.flowReported(flow)
        printer.consume(flow)
    }
}

extension Detector {
    /// Alerts per rule and per exclusion, for the stop summary.
    var summary: String {
        let fired = counters.alerts.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.key.rawValue) \($0.value)" }
        let silenced = silenced.sorted { $0.key < $1.key }.map { "\"\($0.key)\" \($0.value)" }
        return "detection: \(counters.execsChecked) execs and \(counters.flowsChecked) flows checked; fired: "
            + (fired.isEmpty ? "none" : fired.joined(separator: ", "))
            + "; excluded: " + (silenced.isEmpty ? "none" : silenced.joined(separator: ", "))
            + (patternLimitErrors > 0 ? "; \(patternLimitErrors) matches hit the PCRE2 limit" : "")
    }
}
