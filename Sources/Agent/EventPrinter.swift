import AuditIngest
import ByteJSON

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
