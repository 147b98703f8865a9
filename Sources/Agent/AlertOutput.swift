import AgentConfig
import AuditIngest
import ByteJSON
import Control
import Detection
import Flows
import HostState
import Outputs
import Patterns
import Runtime

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
    /// The host and agent alerts name: this host and agent live, the log's `node=` alone in a
    /// replay (nothing when the log does not say).
    var origin: AlertOrigin
    private var hostname: String? { origin.host.hostname }
    /// Live: the host's name and addresses are read again when older than this.
    private static let hostRefreshMilliseconds: Int64 = 10_000
    private var hostReadAt: Int64?
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
    private weak var follower: AlertFollower?

    /// `outputs` nil: the printer only (replay).
    init(
        outputs: AgentConfiguration.Output?, stateDirectory: String, printer: EventPrinter, users: UserNames, origin: AlertOrigin,
        follower: AlertFollower?, log: Logger
    ) {
        self.origin = origin
        self.follower = follower
        hostReadAt = origin.agent == nil ? nil : monotonicMilliseconds()
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
        guard
            let forwarder = SyslogForwarder.start(
                settings: settings, spoolDirectory: stateDirectory + "/spool/syslog",
                log: { level, message in
                    switch level {
                    case .error: log.error(message)
                    case .warning: log.warning(message)
                    case .info: log.info(message)
                    case .debug: log.debug(message)
                    }
                })
        else {
            log.error("syslog output: cannot start its thread: \(String(cString: strerror(errno)))")
            return
        }
        syslog = (forwarder, SyslogMessageBuilder(settings: settings, hostname: hostname ?? "-", processID: getpid()), settings.payload)
        log.info("syslog output to \(settings.address) (\(settings.format.rawValue), \(settings.payload.rawValue)), spool \(stateDirectory)/spool/syslog")
    }

    /// A reload with other output settings: the syslog thread spools what it holds and ends,
    /// the file closes, and both open again as configured. The spool carries undelivered alerts
    /// over; counts start again.
    func reconfigure(_ outputs: AgentConfiguration.Output) {
        // The metrics file is not an alert output.
        guard outputs.file != settings?.file || outputs.syslog != settings?.syslog else { return }
        file?.drain()
        stop()
        (fileFailing, fileDroppedReported, syslogHealth) = (false, 0, SyslogHealth())
        open(outputs)
    }

    func consume(_ alert: Alert) {
        if let readAt = hostReadAt, case let now = monotonicMilliseconds(), now - readAt >= Self.hostRefreshMilliseconds {
            origin.host.refresh()
            hostReadAt = now
        }
        json.reset()
        AlertJSON.write(alert, origin: origin, users: users, to: &json)
        if let syslog {
            let message = syslogMessage(alert, syslog)
            syslog.forwarder.submit(message.bytes, truncated: message.truncatedFrom != nil)
        }
        json.newline()
        emitted += 1
        file?.append(json.bytes)
        printer.consume(alertLine: json.bytes)
        follower?.published(alertLine: json.bytes)
    }

    private func syslogMessage(_ alert: Alert, _ syslog: Syslog) -> SyslogMessageBuilder.Message {
        Self.syslogMessage(alert, builder: syslog.builder, payload: syslog.payload, wholeJSON: json.bytes, origin: origin, users: users)
    }

    /// The alert as one syslog message within max_message_size. `wholeJSON`: the alert's JSON,
    /// as the alert file has it.
    static func syslogMessage(
        _ alert: Alert, builder: SyslogMessageBuilder, payload kind: SyslogPayload, wholeJSON: [UInt8], origin: AlertOrigin, users: UserNames
    ) -> SyslogMessageBuilder.Message {
        func message(_ payload: [UInt8], shortenedFrom: Int?) -> SyslogMessageBuilder.Message {
            builder.message(
                time: alert.time, severity: syslogSeverity(eventSeverity: alert.severity), msgID: alert.rule.rawValue,
                parameters: [("rule", alert.rule.rawValue), ("event", alert.id), ("severity", String(alert.severity))],
                payload: payload, shortenedFrom: shortenedFrom)
        }
        func payload(_ limits: JSONWriter.Limits?) -> [UInt8] {
            if kind == .cef {
                var cef: [UInt8] = []
                AlertCEF.write(alert, hostname: origin.host.hostname, users: users, valueLimit: limits?.stringBytes, to: &cef)
                return cef
            }
            guard let limits else { return wholeJSON }
            var short = JSONWriter(capacity: builder.maximumBytes, limits: limits)
            AlertJSON.write(alert, origin: origin, users: users, to: &short)
            return short.bytes
        }
        return SyslogMessageBuilder.fitting(payload: payload, build: message)
    }

    /// SIGHUP: the alert file is opened again (after logrotate's copy or move).
    func reopen() { file?.reopen() }

    /// Writes what the alert file can still take, spools what syslog was handed and ends its
    /// thread.
    func stop() {
        file?.drain()
        syslog?.forwarder.stop()
    }

    /// After `stop`: the alerts that had nowhere durable to go (the alert file failing, the
    /// syslog spool unwritable), said for the last log line; nil when none.
    var lostAtStop: String? {
        var parts: [String] = []
        if let file, file.waitingCount > 0 {
            parts.append("\(file.waitingCount) not written to \(file.path) (\(file.failure ?? "not writable"))")
        }
        if let syslog, case let status = syslog.forwarder.currentStatus, status.waiting > 0 {
            parts.append("\(status.waiting) not spooled for syslog (\(status.spoolProblem ?? "spool not writable"))")
        }
        return parts.isEmpty ? nil : parts.joined(separator: "; ")
    }

    /// Retries waiting lines and follows rotation; reports to `health` when an output starts
    /// failing, drops alerts, or comes back after dropping.
    func service(now: Int64, health: HealthChannel) {
        guard now >= nextService else { return }
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
                    reasons.append(
                        "alert file output dropped \(file.dropped - fileDroppedReported) alerts while failing (queue of \(AlertFile.waitingLimit) full)")
                    fileDroppedReported = file.dropped
                }
            }
        }
        if let syslog {
            reasons += syslogHealth.check(syslog.forwarder.currentStatus, spoolLimit: syslog.forwarder.spoolLimit, now: now, log: log)
        }
        if !reasons.isEmpty { health.report(reasons, time: realtimeMilliseconds()) }
    }

    /// Each output's state for `agentctl status`; absent when turned off.
    var status: AgentStatus.Outputs {
        AgentStatus.Outputs(
            file: file.map {
                AgentStatus.FileOutput(
                    path: $0.path, written: $0.written, waiting: $0.waitingCount, dropped: $0.dropped,
                    rotations: $0.rotations, problem: $0.failure)
            },
            syslog: syslog.map { syslog in
                let s = syslog.forwarder.currentStatus
                return AgentStatus.SyslogOutput(
                    address: s.address, connected: s.connected, problem: s.problem ?? s.spoolProblem,
                    delivered: s.delivered, connections: s.connections, spoolRecords: s.spool.records,
                    spoolBytes: s.spool.bytes, spoolLimitBytes: syslog.forwarder.spoolLimit,
                    dropped: s.dropped, truncated: s.truncated, resent: s.resent)
            })
    }

    var summary: String {
        var parts = ["alerts \(emitted) emitted"]
        if let file {
            parts.append("\(file.written) written to \(file.path) (\(file.rotations) rotations), \(file.waitingCount) waiting, \(file.dropped) dropped")
        }
        if let syslog {
            let status = syslog.forwarder.currentStatus
            parts.append(
                "syslog \(status.address): \(status.delivered) delivered, \(status.spool.records) spooled (\(status.spool.bytes) bytes), "
                    + "\(status.dropped) dropped, \(status.truncated) truncated, \(status.resent) resent, \(status.connections) connections")
        }
        return parts.joined(separator: "; ")
    }
}
