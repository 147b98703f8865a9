import AgentConfig
import AuditIngest
import ByteJSON
import Control
import Detection
import Flows
import HostState
import Outputs
import Patterns

#if canImport(Glibc)
import Glibc
#endif

/// Where alerts go: the alert file and syslog (live), standard output (replay, or `run --alerts`).
final class AlertOutput {
    private typealias Syslog = (forwarder: SyslogForwarder, builder: SyslogMessageBuilder, payload: SyslogPayload)
    private var json = JSONWriter(capacity: 16_384)
    private var file: AlertFile?
    private var syslog: Syslog?
    private(set) var settings: AgentConfiguration.Output?
    private let stateDirectory: String
    private let printer: EventPrinter
    private let hostname = AlertOutput.hostname()
    private let users: UserNames
    private let log: Logger
    private var fileFailing = false
    private var fileDroppedReported = 0
    private var syslogHealth = SyslogHealth()
    /// The outputs are checked once a second, not on every turn of the event loop (a stat and
    /// a lock each).
    private var nextService: Int64 = 0
    private(set) var emitted = 0
    /// Each alert's JSON line, for agentctl (recent alerts and followers).
    var listener: (([UInt8]) -> Void)?

    /// `outputs` nil: the printer only (replay).
    init(outputs: AgentConfiguration.Output?, stateDirectory: String, printer: EventPrinter, users: UserNames, log: Logger) {
        self.stateDirectory = stateDirectory
        self.printer = printer
        self.users = users
        self.log = log
        open(outputs)
    }

    private func open(_ outputs: AgentConfiguration.Output?) {
        settings = outputs
        file = outputs.flatMap { $0.file.enabled ? AlertFile(settings: $0.file) : nil }
        syslog = nil
        guard let settings = outputs?.syslog, settings.enabled else { return }
        let log = self.log
        guard let forwarder = SyslogForwarder.start(settings: settings, spoolDirectory: stateDirectory + "/spool/syslog", log: { level, message in
            switch level {
            case .error: log.error(message)
            case .warning: log.warning(message)
            case .info: log.info(message)
            case .debug: log.debug(message)
            }
        }) else {
            log.error("syslog output: cannot start its thread: \(String(cString: strerror(errno)))")
            return
        }
        syslog = (forwarder, SyslogMessageBuilder(settings: settings, hostname: hostname, processID: getpid()), settings.payload)
        log.info("syslog output to \(settings.address) (\(settings.format.rawValue), \(settings.payload.rawValue)), spool \(stateDirectory)/spool/syslog")
    }

    /// A reload with other output settings: the syslog thread spools what it holds and ends,
    /// the file closes, and both open again as configured. The spool carries undelivered alerts
    /// over; counts start again.
    func reconfigure(_ outputs: AgentConfiguration.Output) {
        guard outputs != settings else { return }
        file?.drain()
        stop()
        (fileFailing, fileDroppedReported, syslogHealth) = (false, 0, SyslogHealth())
        open(outputs)
    }

    func consume(_ alert: Alert) {
        json.reset()
        AlertJSON.write(alert, hostname: hostname, users: users, to: &json)
        if let syslog {
            var payload: [UInt8]
            if syslog.payload == .json {
                payload = json.bytes
            } else {
                payload = []
                AlertCEF.write(alert, hostname: hostname, users: users, to: &payload)
            }
            let message = syslog.builder.message(time: alert.time, severity: syslogSeverity(eventSeverity: alert.severity), msgID: alert.rule.rawValue,
                                                 parameters: [("rule", alert.rule.rawValue), ("event", alert.id), ("severity", String(alert.severity))],
                                                 payload: payload)
            syslog.forwarder.submit(message.bytes, truncated: message.truncatedFrom != nil)
        }
        json.newline()
        emitted += 1
        file?.append(json.bytes)
        printer.consume(alertLine: json.bytes)
        listener?(json.bytes)
    }

    /// SIGHUP: the alert file is opened again (after logrotate's copy or move).
    func reopen() { file?.reopen() }

    /// Spools what syslog was handed and ends its thread.
    func stop() { syslog?.forwarder.stop() }

    /// Retries waiting lines and follows rotation; returns the reasons for a health alert when
    /// an output starts failing, drops alerts, or comes back after dropping.
    func service(log: Logger, now: Int64) -> [String]? {
        guard now >= nextService else { return nil }
        nextService = now + 1000
        var reasons: [String] = []
        if let file {
            file.reopenIfMoved()
            file.drain()
            if let failure = file.failure, !fileFailing {
                fileFailing = true
                log.error("alert file output failing: \(failure); \(file.waitingCount) alerts waiting")
                reasons += ["alert file output failing: \(failure)", "\(file.waitingCount) alerts waiting to be written"]
            }
            if file.failure == nil && fileFailing {
                fileFailing = false
                log.info("alert file output writing again")
                if file.dropped > fileDroppedReported {
                    reasons.append("alert file output dropped \(file.dropped - fileDroppedReported) alerts while failing (queue of \(AlertFile.waitingLimit) full)")
                    fileDroppedReported = file.dropped
                }
            }
        }
        if let syslog {
            reasons += syslogHealth.check(syslog.forwarder.currentStatus, spoolLimit: syslog.forwarder.spoolLimit, now: now, log: log)
        }
        return reasons.isEmpty ? nil : reasons
    }

    /// Each output's state for `agentctl status`; absent when turned off.
    var status: AgentStatus.Outputs {
        AgentStatus.Outputs(
            file: file.map { AgentStatus.FileOutput(path: $0.path, written: $0.written, waiting: $0.waitingCount, dropped: $0.dropped,
                                                    rotations: $0.rotations, problem: $0.failure) },
            syslog: syslog.map { syslog in
                let s = syslog.forwarder.currentStatus
                return AgentStatus.SyslogOutput(address: s.address, connected: s.connected, problem: s.problem ?? s.spoolProblem,
                                                delivered: s.delivered, connections: s.connections, spoolRecords: s.spool.records,
                                                spoolBytes: s.spool.bytes, spoolLimitBytes: syslog.forwarder.spoolLimit,
                                                dropped: s.dropped, truncated: s.truncated)
            })
    }

    var summary: String {
        var parts = ["alerts \(emitted) emitted"]
        if let file {
            parts.append("\(file.written) written to \(file.path) (\(file.rotations) rotations), \(file.waitingCount) waiting, \(file.dropped) dropped")
        }
        if let syslog {
            let status = syslog.forwarder.currentStatus
            parts.append("syslog \(status.address): \(status.delivered) delivered, \(status.spool.records) spooled (\(status.spool.bytes) bytes), "
                + "\(status.dropped) dropped, \(status.truncated) truncated, \(status.connections) connections")
        }
        return parts.joined(separator: "; ")
    }

    static func hostname() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count) == 0 else { return "unknown" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// When the syslog output's state is worth an `agent.health` alert: alerts dropped, the spool
/// filling up or unwritable, the receiver unreachable for a while. Each condition is reported
/// when it starts (drops at most once a minute), not on every check.
struct SyslogHealth {
    private var droppedReported = 0
    private var lastDropReport: Int64 = 0
    private var spoolHighReported = false
    private var spoolProblemReported: String?
    private var unreachableSince: Int64?
    private var unreachableReported = false
    /// How long the receiver may be away before it is an alert (restarts are routine).
    static let unreachableGraceMilliseconds: Int64 = 60_000

    mutating func check(_ status: SyslogForwarder.Status, spoolLimit: Int, now: Int64, log: Logger) -> [String] {
        var reasons: [String] = []
        if status.dropped > droppedReported && now - lastDropReport >= 60_000 {
            let dropped = status.dropped - droppedReported
            log.error("syslog output dropped \(dropped) alerts (spool full: \(status.spool.dropped) in all, oversize: \(status.droppedOversize), spool unwritable: \(status.droppedUnspooled))")
            reasons.append("syslog output dropped \(dropped) alerts: the spool (spool_max_bytes \(spoolLimit)) was full and its oldest alerts went")
            droppedReported = status.dropped
            lastDropReport = now
        }
        if status.spool.bytes * 5 >= spoolLimit * 4 && !spoolHighReported {
            spoolHighReported = true
            log.warning("syslog spool \(status.spool.bytes) of \(spoolLimit) bytes used")
            reasons.append("syslog spool \(status.spool.bytes * 100 / spoolLimit)% full (\(status.spool.records) alerts not delivered)")
        } else if status.spool.bytes * 2 < spoolLimit {
            spoolHighReported = false
        }
        if let problem = status.spoolProblem, problem != spoolProblemReported {
            reasons.append("syslog spool unwritable: \(problem); \(status.waiting) alerts held in memory")
        }
        spoolProblemReported = status.spoolProblem
        if let problem = status.problem {
            let since = unreachableSince ?? now
            unreachableSince = since
            if !unreachableReported && now - since >= Self.unreachableGraceMilliseconds {
                unreachableReported = true
                reasons.append("syslog receiver \(status.address) unreachable for \((now - since) / 1000) s: \(problem)")
                reasons.append("\(status.spool.records) alerts spooled for it")
            }
        } else {
            unreachableSince = nil
            unreachableReported = false
        }
        return reasons
    }
}

/// Rules and where their alerts go, built the same way for replay and the live agent.
struct DetectionStage {
    let detector: Detector
    let alerts: AlertOutput

    /// `outputs` nil: alerts go to the printer only.
    init(configuration: AgentConfiguration, processes: ProcessTable, firstSeen: FirstSeenStore, outputs: AgentConfiguration.Output?,
         printer: EventPrinter, log: Logger, idPrefix: String) throws(PatternError) {
        let users = UserNames()
        alerts = AlertOutput(outputs: outputs, stateDirectory: configuration.agent.stateDirectory, printer: printer, users: users, log: log)
        detector = try Detector(configuration: configuration, processes: processes, firstSeen: firstSeen, users: users,
                                idPrefix: idPrefix, emit: alerts.consume)
    }
}

/// The flow tracker's observers: detection, scanning of uploads, then printing finished flows.
final class FlowConsumers: FlowObserver {
    let detector: Detector
    let printer: EventPrinter
    /// Replaced when a reload turns scanning on or off.
    var scans: ScanStage?
    /// Finished flows for `agentctl flows` (live only).
    let recent: RecentLines?
    private var json = JSONWriter()

    init(detector: Detector, printer: EventPrinter, scans: ScanStage?, recent: RecentLines? = nil) {
        self.detector = detector
        self.printer = printer
        self.scans = scans
        self.recent = recent
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
        if let recent {
            json.reset()
            FlowJSON.write(flow, to: &json)
            recent.append(json.bytes)
        }
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
