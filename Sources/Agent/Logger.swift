import AgentConfig
import Outputs

#if canImport(Glibc)
    import Glibc
#endif

/// The agent's own log: one line per message on standard error, which systemd's journal
/// or the terminal takes. Alerts never go here.
public final class Logger: Sendable {
    public let level: LogLevel
    private let program: String

    public init(level: LogLevel, program: String = "xferwatchd") {
        self.level = level
        self.program = program
    }

    public func error(_ message: @autoclosure () -> String) { write(.error, message) }
    public func warning(_ message: @autoclosure () -> String) { write(.warning, message) }
    public func info(_ message: @autoclosure () -> String) { write(.info, message) }
    public func debug(_ message: @autoclosure () -> String) { write(.debug, message) }

    private func write(_ messageLevel: LogLevel, _ message: () -> String) {
        guard messageLevel <= level else { return }
        let line = Array("\(program): \(messageLevel.rawValue): \(message())\n".utf8)
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
