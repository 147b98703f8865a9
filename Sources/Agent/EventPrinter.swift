import AuditIngest
import ByteJSON
import Flows

/// What a replay or a live run prints on standard output.
public struct OutputOptions: Sendable {
    /// Every assembled event as one JSON line.
    public var events = false
    /// Every finished file-transfer flow as one JSON line.
    public var flows = false
    /// Every alert as one JSON line.
    public var alerts = false
    /// Where the lines go: standard output unless a test asks for a file.
    public var descriptor: Int32 = 1

    public init(events: Bool = false, flows: Bool = false, alerts: Bool = false, descriptor: Int32 = 1) {
        self.events = events
        self.flows = flows
        self.alerts = alerts
        self.descriptor = descriptor
    }
}

/// Turns events, flows and alerts into lines on standard output.
final class EventPrinter {
    private let output: OutputBuffer
    private var json = JSONWriter(capacity: 16_384)
    private let options: OutputOptions

    init(options: OutputOptions) {
        self.options = options
        output = OutputBuffer(fd: options.descriptor)
    }

    func consume(_ event: AuditEvent) {
        if options.events { line { EventJSON.write(event, to: &$0) } }
    }

    func consume(_ flow: Flow) {
        if options.flows { line { FlowJSON.write(flow, to: &$0) } }
    }

    func consume(alertLine: [UInt8]) {
        if options.alerts { output.append(alertLine) }
    }

    private func line(_ write: (inout JSONWriter) -> Void) {
        json.reset()
        write(&json)
        json.newline()
        output.append(json.bytes)
    }

    func flush() { output.flush() }
}
