#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Cuts a byte stream that arrives in chunks into lines, without copying complete lines.
/// A line longer than `maximumLength` is reported once as too long and skipped up to its newline.
public struct LineSplitter {
    public let maximumLength: Int
    /// The 1-based number of the next line.
    public private(set) var lineNumber = 1
    private var carry: [UInt8] = []
    private var skipping = false
    private var skippedLength = 0

    public enum Line {
        case text(UnsafeRawBufferPointer)
        case tooLong(length: Int)
    }

    public init(maximumLength: Int = RecordParser.maximumRecordLength) {
        self.maximumLength = maximumLength
    }

    /// Calls `body` for every line completed by `chunk`, with the line's number.
    public mutating func feed(_ chunk: UnsafeRawBufferPointer, _ body: (Line, Int) -> Void) {
        var start = 0
        let count = chunk.count
        guard let base = chunk.baseAddress else { return }
        while start < count {
            let found = memchr(base + start, 0x0A, count - start)
            guard let found else {
                appendCarry(UnsafeRawBufferPointer(rebasing: chunk[start..<count]))
                return
            }
            let end = base.distance(to: UnsafeRawPointer(found))
            let piece = UnsafeRawBufferPointer(rebasing: chunk[start..<end])
            if skipping {
                body(.tooLong(length: skippedLength + piece.count), lineNumber)
                skipping = false
                skippedLength = 0
            } else if carry.isEmpty {
                body(piece.count > maximumLength ? .tooLong(length: piece.count) : .text(piece), lineNumber)
            } else {
                appendCarry(piece)
                if skipping {
                    body(.tooLong(length: skippedLength), lineNumber)
                    skipping = false
                    skippedLength = 0
                } else {
                    carry.withUnsafeBytes { body(.text($0), lineNumber) }
                    carry.removeAll(keepingCapacity: true)
                }
            }
            lineNumber += 1
            start = end + 1
        }
    }

    /// Hands out a last line that had no newline (end of input).
    public mutating func finish(_ body: (Line, Int) -> Void) {
        if skipping {
            body(.tooLong(length: skippedLength), lineNumber)
        } else if !carry.isEmpty {
            carry.withUnsafeBytes { body(.text($0), lineNumber) }
        } else {
            return
        }
        carry.removeAll()
        skipping = false
        skippedLength = 0
        lineNumber += 1
    }

    private mutating func appendCarry(_ piece: UnsafeRawBufferPointer) {
        if skipping {
            skippedLength += piece.count
        } else if carry.count + piece.count > maximumLength {
            skipping = true
            skippedLength = carry.count + piece.count
            carry.removeAll(keepingCapacity: true)
        } else {
            carry.append(contentsOf: piece)
        }
    }
}
