#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Why a line or message could not be read as an audit record.
public enum RecordParseError: Error, Equatable, Sendable, CustomStringConvertible {
    case empty
    case tooLong(Int)
    case missingType
    case unknownType
    case missingStamp
    case badStamp
    case unterminatedValue(offset: Int)

    /// The reason without lengths or offsets, for counting drops by kind.
    public var kind: String {
        switch self {
        case .tooLong: "too long"
        case .unterminatedValue: "unterminated value"
        default: description
        }
    }

    public var description: String {
        switch self {
        case .empty: "empty record"
        case .tooLong(let length): "record of \(length) bytes is longer than \(RecordParser.maximumRecordLength)"
        case .missingType: "no type= field"
        case .unknownType: "record type is neither a known name nor UNKNOWN[n]"
        case .missingStamp: "no msg=audit(...) stamp"
        case .badStamp: "malformed audit(SECONDS.MILLIS:SERIAL) stamp"
        case .unterminatedValue(let offset): "unterminated quoted value at byte \(offset)"
        }
    }
}

/// Parses the record forms a user meets: auditd RAW and ENRICHED log lines and the audisp
/// `string` format (`[node=N ]type=T msg=audit(S.MS:SERIAL): fields`), and netlink message
/// bodies (`audit(S.MS:SERIAL): fields`, type from the netlink header).
public enum RecordParser {
    /// The kernel never sends more than 8970 bytes; anything far longer is not a record.
    public static let maximumRecordLength = 65_535

    static let enrichedSeparator: UInt8 = 0x1D

    /// Parses one log line (without its newline).
    public static func parseLine(_ line: UnsafeRawBufferPointer) throws(RecordParseError) -> AuditRecord {
        var cursor = Cursor(line)
        cursor.trimEnd()
        guard !cursor.atEnd else { throw .empty }
        guard cursor.remaining <= maximumRecordLength else { throw .tooLong(cursor.remaining) }

        var node: String?
        if cursor.consume("node=") {
            let value = cursor.takeUntilSpace()
            node = String(decoding: value, as: UTF8.self)
            cursor.skipSpaces()
        }
        guard cursor.consume("type=") else { throw .missingType }
        let typeName = cursor.takeUntilSpace()
        guard let type = AuditRecordType(name: typeName) else { throw .unknownType }
        cursor.skipSpaces()
        guard cursor.consume("msg=") else { throw .missingStamp }
        return try parseStamped(&cursor, type: type, node: node, mayBeEnriched: true)
    }

    /// Parses the body of a netlink audit message whose header carried `type`.
    public static func parseNetlink(type: UInt16, body: UnsafeRawBufferPointer) throws(RecordParseError) -> AuditRecord {
        var cursor = Cursor(body)
        cursor.trimEnd()
        guard !cursor.atEnd else { throw .empty }
        guard cursor.remaining <= maximumRecordLength else { throw .tooLong(cursor.remaining) }
        return try parseStamped(&cursor, type: AuditRecordType(code: type), node: nil, mayBeEnriched: false)
    }

    /// `audit(S.MS:SERIAL): fields...` from the cursor on. Only auditd's ENRICHED lines carry
    /// the 0x1D separator: in a netlink message one is no separator but text (a user-space
    /// writer's, the kernel hex-encodes control bytes), and is not searched for.
    private static func parseStamped(
        _ cursor: inout Cursor, type: AuditRecordType, node: String?, mayBeEnriched: Bool
    ) throws(RecordParseError) -> AuditRecord {
        guard cursor.consume("audit(") else { throw .missingStamp }
        // Seconds past year 30,000 are no kernel's: they would overflow the milliseconds.
        guard let seconds = cursor.takeDecimal(), seconds < 1 << 40, cursor.consume(".") else { throw .badStamp }
        let fractionStart = cursor.position
        guard var fraction = cursor.takeDecimal() else { throw .badStamp }
        // Normalise any number of fractional digits to milliseconds.
        var digits = cursor.position - fractionStart
        while digits > 3 { fraction /= 10; digits -= 1 }
        while digits < 3 { fraction *= 10; digits += 1 }
        guard cursor.consume(":"), let serial = cursor.takeDecimal(), serial <= UInt64(UInt32.max),
            cursor.consume(")")
        else { throw .badStamp }
        _ = cursor.consume(":")
        cursor.skipSpaces()

        let key = EventKey(
            time: AuditTime(seconds: Int64(seconds), milliseconds: UInt16(fraction)),
            serial: UInt32(serial), node: node)
        let text = cursor.rest
        // memchr: the generic search went byte by byte, 4% of a replay.
        let separator =
            mayBeEnriched
            ? text.baseAddress.flatMap { base in memchr(base, Int32(enrichedSeparator), text.count).map { base.distance(to: UnsafeRawPointer($0)) } }
                ?? text.count : text.count
        // Every field has its `=`: their count bounds the index. The spans are scanned into a
        // temporary buffer of that size, then text and spans go into one allocation reserved
        // at the right size. Reserving finds the storage's type directly; the uninitialized-capacity
        // initializer looked its generic metadata up at run time, 3% of a replay.
        let spanBytes = FieldScanner.equalsSigns(in: text) * FieldSpan.storedSize
        var storage: [UInt8] = []
        storage.reserveCapacity(text.count + spanBytes)
        storage.append(contentsOf: text)
        var interpretedStart = 0
        var failure: RecordParseError?
        withUnsafeTemporaryAllocation(byteCount: spanBytes, alignment: MemoryLayout<UInt16>.alignment) { spans in
            var written = 0
            do throws(RecordParseError) {
                try FieldScanner.scan(text, from: 0, to: separator, into: spans, at: &written)
                interpretedStart = written / FieldSpan.storedSize
                if separator < text.count {
                    try FieldScanner.scan(text, from: separator + 1, to: text.count, into: spans, at: &written)
                }
            } catch {
                failure = error
            }
            storage.append(contentsOf: UnsafeRawBufferPointer(rebasing: spans[..<written]))
        }
        if let failure { throw failure }
        return AuditRecord(type: type, key: key, storage: storage, textCount: text.count, interpretedStart: interpretedStart)
    }
}

/// Splits `name=value name="quoted" name='nested fields' NAME={ braces }` into spans,
/// written after a record's text in its storage (`FieldSpan.storedSize` bytes each).
enum FieldScanner {
    /// How many `=` the text holds: at least as many as it has fields.
    static func equalsSigns(in bytes: UnsafeRawBufferPointer) -> Int {
        // A plain count the compiler vectorizes: memchr per sign was a call per field.
        var count = 0
        for byte in bytes where byte == UInt8(ascii: "=") { count += 1 }
        return count
    }

    /// Appends the spans of `bytes[start..<end]` to `output` from `written` on; `output` has
    /// room for one span per `=` (`equalsSigns`).
    static func scan(
        _ bytes: UnsafeRawBufferPointer, from start: Int, to end: Int,
        into output: UnsafeMutableRawBufferPointer, at written: inout Int
    ) throws(RecordParseError) {
        let space = UInt8(ascii: " "), equals = UInt8(ascii: "=")
        var i = start
        while i < end {
            while i < end && bytes[i] == space { i += 1 }
            guard i < end else { break }
            let nameStart = i
            while i < end && bytes[i] != equals && bytes[i] != space { i += 1 }
            // A word without a name or without `=` (AVC's `denied { read } for`) is no field:
            // skip to its end.
            guard i < end && bytes[i] == equals && i > nameStart else {
                while i < end && bytes[i] != space { i += 1 }
                continue
            }
            let nameEnd = i
            i += 1
            let valueStart = i
            guard i < end else {
                store(nameStart, nameEnd, valueStart, i, in: output, at: &written)
                break
            }
            switch bytes[i] {
            case UInt8(ascii: "\""):
                i = try closing(UInt8(ascii: "\""), in: bytes, after: i, end: end) + 1
            case UInt8(ascii: "'"):
                let close = try closing(UInt8(ascii: "'"), in: bytes, after: i, end: end)
                // User-space messages nest their own fields in msg='...': read them as
                // fields of the record, the way auparse does.
                if nameEnd - nameStart == 3, bytes[nameStart] == UInt8(ascii: "m"),
                    bytes[nameStart + 1] == UInt8(ascii: "s"), bytes[nameStart + 2] == UInt8(ascii: "g")
                {
                    try scan(bytes, from: i + 1, to: close, into: output, at: &written)
                    i = close + 1
                    continue
                }
                i = close + 1
            case UInt8(ascii: "{"):
                i = try closing(UInt8(ascii: "}"), in: bytes, after: i, end: end) + 1
            default:
                while i < end && bytes[i] != space { i += 1 }
            }
            store(nameStart, nameEnd, valueStart, i, in: output, at: &written)
        }
    }

    @inline(__always)
    private static func closing(_ byte: UInt8, in bytes: UnsafeRawBufferPointer, after open: Int, end: Int) throws(RecordParseError) -> Int {
        var i = open + 1
        while i < end {
            if bytes[i] == byte { return i }
            i += 1
        }
        throw .unterminatedValue(offset: open)
    }

    /// Four little-endian UInt16 (`FieldSpans` reads them back).
    @inline(__always)
    private static func store(_ a: Int, _ b: Int, _ c: Int, _ d: Int, in output: UnsafeMutableRawBufferPointer, at written: inout Int) {
        output.storeBytes(of: UInt16(truncatingIfNeeded: a).littleEndian, toByteOffset: written, as: UInt16.self)
        output.storeBytes(of: UInt16(truncatingIfNeeded: b).littleEndian, toByteOffset: written + 2, as: UInt16.self)
        output.storeBytes(of: UInt16(truncatingIfNeeded: c).littleEndian, toByteOffset: written + 4, as: UInt16.self)
        output.storeBytes(of: UInt16(truncatingIfNeeded: d).littleEndian, toByteOffset: written + 6, as: UInt16.self)
        written += FieldSpan.storedSize
    }
}

/// A forward-only reader over bytes.
struct Cursor {
    let bytes: UnsafeRawBufferPointer
    var position = 0
    var end: Int

    init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
        self.end = bytes.count
    }

    var atEnd: Bool { position >= end }
    var remaining: Int { end - position }
    var rest: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: bytes[position..<end]) }

    /// Drops the line end, NUL padding and trailing blanks netlink and files leave.
    mutating func trimEnd() {
        while end > position, [0, 0x0A, 0x0D, 0x20].contains(bytes[end - 1]) { end -= 1 }
    }

    mutating func skipSpaces() {
        while position < end && bytes[position] == 0x20 { position += 1 }
    }

    mutating func consume(_ literal: StaticString) -> Bool {
        let count = literal.utf8CodeUnitCount
        guard remaining >= count else { return false }
        let start = literal.utf8Start
        for i in 0..<count where bytes[position + i] != start[i] { return false }
        position += count
        return true
    }

    mutating func takeUntilSpace() -> UnsafeRawBufferPointer {
        let start = position
        while position < end && bytes[position] != 0x20 { position += 1 }
        return UnsafeRawBufferPointer(rebasing: bytes[start..<position])
    }

    mutating func takeDecimal() -> UInt64? {
        let start = position
        var value: UInt64 = 0
        while position < end, bytes[position] >= 0x30, bytes[position] <= 0x39 {
            let (times10, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(UInt64(bytes[position] - 0x30))
            guard !o1 && !o2 else { return nil }
            value = sum
            position += 1
        }
        return position > start ? value : nil
    }
}
