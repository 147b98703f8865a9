import AuditIngest

/// Counts of input that could not be used: every dropped record is counted by reason.
public struct IngestCounters: Sendable, Equatable {
    public var malformed = 0
    /// Empty lines: not records, not errors.
    public var blank = 0
    public var malformedByReason: [String: Int] = [:]
}

/// audit ingestion -> event assembly -> consumers. One pipeline per input stream; sources
/// push records in, consumers get complete events out.
public final class Pipeline {
    public let assembler: EventAssembler
    public private(set) var ingest = IngestCounters()
    private let log: Logger
    /// Malformed input is logged with its position up to this many times, then only counted.
    private static let loggedMalformedLimit = 50

    init(settings: AssemblerSettings, log: Logger, sink: EventSink) {
        self.log = log
        self.assembler = EventAssembler(settings: settings) { [unowned sink] in sink.consume($0) }
    }

    /// One line of a log or of audisp's string format; `position` names where it came from.
    @inline(__always)
    public func ingest(line: UnsafeRawBufferPointer, position: @autoclosure () -> String, arrivalTime: Int64 = 0) {
        do {
            assembler.add(try RecordParser.parseLine(line), arrivalTime: arrivalTime)
        } catch .empty {
            ingest.blank += 1
        } catch {
            malformed(error, position())
        }
    }

    /// One netlink message body with the type from its header.
    public func ingest(netlinkType type: UInt16, body: UnsafeRawBufferPointer, arrivalTime: Int64) {
        do {
            assembler.add(try RecordParser.parseNetlink(type: type, body: body), arrivalTime: arrivalTime)
        } catch {
            malformed(error, "netlink message type \(type)")
        }
    }

    public func malformed(_ error: RecordParseError, _ position: String) {
        ingest.malformed += 1
        ingest.malformedByReason[error.kind, default: 0] += 1
        if ingest.malformed <= Self.loggedMalformedLimit {
            log.warning("\(position): dropped malformed record: \(error)")
            if ingest.malformed == Self.loggedMalformedLimit {
                log.warning("further malformed records are counted, not logged")
            }
        }
    }

    public func tick(arrivalTime: Int64) { assembler.tick(arrivalTime: arrivalTime) }
    public func flush() { assembler.flush() }

    /// One line for the log: what went in, what came out, what was dropped.
    public var summary: String {
        let c = assembler.counters
        var text =
            "records \(c.records), events \(c.events), partial \(c.partialEvents), timeouts \(c.completedByTimeout), "
            + "serial gaps \(c.sequenceGaps), malformed \(ingest.malformed)"
        if !ingest.malformedByReason.isEmpty {
            text += " (" + ingest.malformedByReason.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ") + ")"
        }
        return text
    }
}
