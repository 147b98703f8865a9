import AgentConfig
import Runtime

#if canImport(Glibc)
    import Glibc
#endif

/// The agent's own log: one line per message on standard error, which systemd's journal
/// or the terminal takes. Alerts never go here.
public final class Logger: Sendable {
    public let level: LogLevel
    private let program: String
    /// Under systemd, standard error goes to the journal: each line starts with its syslog
    /// priority (`<3>` error, `<4>` warning, `<6>` info, `<7>` debug), which journald takes
    /// (SyslogLevelPrefix=), so `journalctl -p warning` shows the agent's warnings.
    private let priorityPrefix: Bool

    public init(level: LogLevel, program: String = "xferwatchd") {
        self.level = level
        self.program = program
        priorityPrefix = Self.standardErrorIsTheJournal()
    }

    /// systemd sets JOURNAL_STREAM to the device and inode of the stream it connected; stderr
    /// redirected elsewhere (a file, a terminal, a test's pipe) is not the journal.
    static func standardErrorIsTheJournal() -> Bool {
        guard let value = getenv("JOURNAL_STREAM").map({ String(cString: $0) }) else { return false }
        var info = stat()
        guard fstat(2, &info) == 0 else { return false }
        return value == "\(info.st_dev):\(info.st_ino)"
    }

    public func error(_ message: @autoclosure () -> String) { write(.error, message) }
    public func warning(_ message: @autoclosure () -> String) { write(.warning, message) }
    public func info(_ message: @autoclosure () -> String) { write(.info, message) }
    public func debug(_ message: @autoclosure () -> String) { write(.debug, message) }

    private func write(_ messageLevel: LogLevel, _ message: () -> String) {
        guard messageLevel <= level else { return }
        let prefix = priorityPrefix ? "<\(messageLevel.syslogPriority)>" : ""
        let line = Array("\(prefix)\(program): \(messageLevel.rawValue): \(message())\n".utf8)
        line.withUnsafeBytes { _ = writeAll(2, $0) }
    }
}

/// Buffered standard output: events and alerts go out in large writes.
final class OutputBuffer {
    private let fd: Int32
    private var buffer: [UInt8] = []
    private let limit = 256 * 1024

    init(fd: Int32) {
        self.fd = fd
        buffer.reserveCapacity(limit + 65_536)
    }

    func append(_ bytes: [UInt8]) {
        buffer.append(contentsOf: bytes)
        if buffer.count >= limit { flush() }
    }

    func flush() {
        guard !buffer.isEmpty else { return }
        buffer.withUnsafeBytes { _ = writeAll(fd, $0) }
        buffer.removeAll(keepingCapacity: true)
    }
}

extension LogLevel {
    /// syslog(3)'s priority of a message at this level.
    var syslogPriority: Int {
        switch self {
        case .error: 3
        case .warning: 4
        case .info: 6
        case .debug: 7
        }
    }
}
