import AgentConfig
import AuditIngest
import ByteJSON

#if canImport(Glibc)
import Glibc
#endif

/// What a replay or a live run prints on standard output.
public struct OutputOptions: Sendable {
    /// Every assembled event as one JSON line.
    public var events = false

    public init(events: Bool = false) { self.events = events }
}

/// Builds the consumer that turns events into output lines.
final class EventPrinter {
    private let output = OutputBuffer(fd: 1)
    private var json = JSONWriter(capacity: 16_384)
    private let options: OutputOptions

    init(options: OutputOptions) { self.options = options }

    func consume(_ event: AuditEvent) {
        guard options.events else { return }
        json.reset()
        EventJSON.write(event, to: &json)
        json.newline()
        output.append(json.bytes)
    }

    func flush() { output.flush() }
}

/// Reads a file descriptor in large chunks and hands out its lines.
struct LineInput {
    let fd: Int32
    let name: String
    private var splitter = LineSplitter()
    private var chunk = [UInt8](repeating: 0, count: 1 << 20)

    init(fd: Int32, name: String) {
        self.fd = fd
        self.name = name
    }

    enum ReadResult { case data, endOfInput, wouldBlock, failed(Int32) }

    /// Reads once and feeds the complete lines to the pipeline.
    mutating func readOnce(into pipeline: Pipeline, wallTime: Int64) -> ReadResult {
        let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if count < 0 {
            if errno == EINTR { return .data }
            if errno == EAGAIN { return .wouldBlock }
            return .failed(errno)
        }
        if count == 0 { return .endOfInput }
        let name = self.name
        chunk.withUnsafeBytes { bytes in
            splitter.feed(UnsafeRawBufferPointer(rebasing: bytes[0..<count])) { line, number in
                deliver(line, number, name, pipeline, wallTime)
            }
        }
        return .data
    }

    /// The last line of a stream that did not end in a newline.
    mutating func finish(into pipeline: Pipeline) {
        let name = self.name
        splitter.finish { line, number in deliver(line, number, name, pipeline, 0) }
    }
}

@inline(__always)
private func deliver(_ line: LineSplitter.Line, _ number: Int, _ name: String, _ pipeline: Pipeline, _ wallTime: Int64) {
    switch line {
    case .text(let bytes):
        pipeline.ingest(line: bytes, position: "\(name):\(number)", wallTime: wallTime)
    case .tooLong(let length):
        pipeline.malformed(.tooLong(length), "\(name):\(number)")
    }
}

/// `xferwatchd replay`: recorded logs through the same pipeline as the live agent.
public enum Replay {
    public static func run(configuration: AgentConfiguration, files: [String], output: OutputOptions, log: Logger) -> Int32 {
        let printer = EventPrinter(options: output)
        let pipeline = Pipeline(settings: configuration.assemblerSettings, log: log, consumer: printer.consume)
        var failed = false
        for file in files.isEmpty ? ["-"] : files {
            let fd = file == "-" ? 0 : open(file, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else {
                log.error("\(file): \(String(cString: strerror(errno)))")
                failed = true
                continue
            }
            var input = LineInput(fd: fd, name: file == "-" ? "stdin" : file)
            readLoop: while true {
                switch input.readOnce(into: pipeline, wallTime: 0) {
                case .data, .wouldBlock: continue
                case .endOfInput: break readLoop
                case .failed(let code):
                    log.error("\(file): read failed: \(String(cString: strerror(code)))")
                    failed = true
                    break readLoop
                }
            }
            input.finish(into: pipeline)
            if fd != 0 { close(fd) }
        }
        pipeline.flush()
        printer.flush()
        log.info("replay: \(pipeline.summary)")
        return failed ? 1 : 0
    }
}

extension AgentConfiguration {
    var assemblerSettings: AssemblerSettings {
        AssemblerSettings(logTimeoutMilliseconds: Int64(audit.eventTimeoutMilliseconds),
                          wallTimeoutMilliseconds: Int64(audit.eventTimeoutMilliseconds),
                          maximumPendingEvents: audit.maximumPendingEvents)
    }
}
