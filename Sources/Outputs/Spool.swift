import AgentConfig
import Runtime

#if canImport(Glibc)
    import Glibc
#endif

/// A durable FIFO of messages on disk: what the syslog forwarder has not yet delivered.
///
/// Messages are appended to numbered segment files as records (`length`, `CRC-32`, bytes) and
/// made durable with fdatasync before the forwarder sends them. A cursor file names the first
/// record not yet acknowledged; segments wholly before it are deleted. When the spool passes
/// its bound, the oldest segment goes (its unsent records are counted as dropped), so the
/// newest alerts are kept. At start, segments are checked record by record: a torn write at
/// the end (a crash mid-append) is cut off and counted.
public final class Spool {
    /// At 80% of its bound a spool is reported: the receiver has been away long enough to matter.
    public static func isNearlyFull(bytes: Int, limit: Int) -> Bool { bytes * 5 >= limit * 4 }

    public struct Position: Comparable, Sendable, CustomStringConvertible {
        public var segment: UInt64
        public var offset: Int

        public static func < (a: Position, b: Position) -> Bool { (a.segment, a.offset) < (b.segment, b.offset) }
        public var description: String { "\(segment):\(offset)" }
    }

    public struct Counters: Sendable, Equatable {
        /// Records waiting to be delivered, and their bytes on disk.
        public var records = 0
        public var bytes = 0
        public var appended = 0
        /// Records dropped to keep the spool within its bound.
        public var dropped = 0
        /// Bytes of damaged records cut off when the spool was opened.
        public var damagedBytes = 0
    }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    public let directory: String
    public let maximumBytes: Int
    let segmentBytes: Int
    public private(set) var counters = Counters()
    /// The first record not yet acknowledged.
    public private(set) var cursor: Position

    private struct Segment {
        let number: UInt64
        var size: Int
        var records: Int
    }

    private var segments: [Segment] = []
    /// Records of the cursor's segment before the cursor.
    private var consumedInCursorSegment = 0
    private var tailFD: Int32 = -1
    private var readFD: (segment: UInt64, fd: Int32)?
    private let cursorFD: Int32
    private var cursorDirty = false
    private static let headerBytes = 8

    public init(directory: String, maximumBytes: Int) throws(Failure) {
        self.directory = directory
        self.maximumBytes = maximumBytes
        // Eight segments or more: dropping one frees an eighth of the bound, not all of it.
        segmentBytes = max(4096, min(maximumBytes / 8, 4 << 20))
        if let problem = createDirectories(directory) { throw Failure(description: problem) }
        cursorFD = open(directory + "/cursor", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard cursorFD >= 0 else { throw Failure(description: "\(directory)/cursor: \(String(cString: strerror(errno)))") }
        cursor = Position(segment: 0, offset: 0)
        do {
            try load()
        } catch {
            close(cursorFD)
            throw error
        }
    }

    deinit {
        if tailFD >= 0 { close(tailFD) }
        if let readFD { close(readFD.fd) }
        close(cursorFD)
    }

    // MARK: writing

    /// Appends messages and makes them durable; a failed write leaves the spool as it was.
    public func append(_ messages: [[UInt8]]) throws(Failure) {
        guard !messages.isEmpty else { return }
        if tailFD < 0 || (segments.last?.size ?? segmentBytes) >= segmentBytes { try startSegment() }
        guard let tail = segments.indices.last else { throw Failure(description: "\(directory): no segment to append to") }
        var buffer: [UInt8] = []
        buffer.reserveCapacity(messages.reduce(0) { $0 + $1.count + Self.headerBytes })
        for message in messages {
            Self.appendLittleEndian(UInt32(message.count), to: &buffer)
            Self.appendLittleEndian(crc32(message), to: &buffer)
            buffer += message
        }
        let written = buffer.withUnsafeBytes { writeAll(tailFD, $0) }
        guard written, fdatasync(tailFD) == 0 else {
            let reason = String(cString: strerror(errno))
            // Whatever part reached the file is cut off again, so the records stay whole.
            _ = ftruncate(tailFD, off_t(segments[tail].size))
            throw Failure(description: "\(segmentPath(segments[tail].number)): \(reason)")
        }
        segments[tail].size += buffer.count
        segments[tail].records += messages.count
        counters.appended += messages.count
        counters.records += messages.count
        enforceBound()
    }

    private func startSegment() throws(Failure) {
        let number = (segments.last?.number ?? cursor.segment) + (segments.isEmpty ? 0 : 1)
        let fd = open(segmentPath(number), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw Failure(description: "\(segmentPath(number)): \(String(cString: strerror(errno)))") }
        if tailFD >= 0 { close(tailFD) }
        tailFD = fd
        if segments.last?.number != number { segments.append(Segment(number: number, size: 0, records: 0)) }
        syncDirectory()
    }

    /// Drops the oldest segments while the spool is over its bound; the tail stays.
    private func enforceBound() {
        while onDisk > maximumBytes && segments.count > 1 {
            let oldest = segments.removeFirst()
            let lost = oldest.records - (oldest.number == cursor.segment ? consumedInCursorSegment : 0)
            counters.dropped += lost
            counters.records -= lost
            unlink(segmentPath(oldest.number))
            moveCursor(to: Position(segment: segments[0].number, offset: 0), consumedRecords: 0)
        }
        counters.bytes = onDisk - cursor.offset
    }

    /// Bytes of all segment files.
    private var onDisk: Int { segments.reduce(0) { $0 + $1.size } }

    // MARK: reading and acknowledging

    /// Records from `position` on, up to about `maximumBytes`, each with the position after it.
    public func read(from position: Position, maximumBytes: Int) -> [(message: [UInt8], next: Position)] {
        var out: [(message: [UInt8], next: Position)] = []
        var at = position
        var total = 0
        while total < maximumBytes, let index = segments.firstIndex(where: { $0.number >= at.segment }) {
            if segments[index].number != at.segment { at = Position(segment: segments[index].number, offset: 0) }
            guard at.offset < segments[index].size else {
                guard index + 1 < segments.count else { break }
                at = Position(segment: segments[index + 1].number, offset: 0)
                continue
            }
            guard let fd = readDescriptor(at.segment), let record = Self.readRecord(fd, at: at.offset) else { break }
            at.offset += Self.headerBytes + record.count
            total += record.count
            out.append((record, at))
        }
        return out
    }

    /// Delivered records, named by the positions after them (in order); persisted by `sync()`.
    /// Records of a segment dropped meanwhile were counted as dropped already and are skipped.
    public func acknowledge(_ delivered: some Sequence<Position>) {
        let live = delivered.filter { position in position > cursor && segments.contains { $0.number == position.segment } }
        guard let last = live.last else { return }
        let inLastSegment = live.reduce(0) { $0 + ($1.segment == last.segment ? 1 : 0) }
        moveCursor(to: last, consumedRecords: inLastSegment + (last.segment == cursor.segment ? consumedInCursorSegment : 0))
        counters.records = max(0, counters.records - live.count)
        while segments.count > 1 && segments[0].number < cursor.segment {
            unlink(segmentPath(segments.removeFirst().number))
        }
        counters.bytes = onDisk - cursor.offset
    }

    /// Writes the cursor through to disk if it moved.
    /// Whether the cursor moved since it was last written (`sync`).
    public var hasUnsyncedCursor: Bool { cursorDirty }

    public func sync() {
        guard cursorDirty else { return }
        var bytes: [UInt8] = []
        Self.appendLittleEndian(UInt32(truncatingIfNeeded: cursor.segment), to: &bytes)
        Self.appendLittleEndian(UInt32(truncatingIfNeeded: cursor.segment >> 32), to: &bytes)
        Self.appendLittleEndian(UInt32(truncatingIfNeeded: cursor.offset), to: &bytes)
        Self.appendLittleEndian(UInt32(truncatingIfNeeded: cursor.offset >> 32), to: &bytes)
        Self.appendLittleEndian(crc32(bytes), to: &bytes)
        if bytes.withUnsafeBytes({ pwrite(cursorFD, $0.baseAddress, $0.count, 0) }) == bytes.count, fdatasync(cursorFD) == 0 {
            cursorDirty = false
        }
    }

    private func moveCursor(to position: Position, consumedRecords: Int) {
        cursor = position
        consumedInCursorSegment = consumedRecords
        cursorDirty = true
    }

    // MARK: opening

    private func load() throws(Failure) {
        guard let entries = Self.segmentNumbers(in: directory) else {
            throw Failure(description: "\(directory): \(String(cString: strerror(errno)))")
        }
        var saved: Position?
        var raw = [UInt8](repeating: 0, count: 20)
        if raw.withUnsafeMutableBytes({ pread(cursorFD, $0.baseAddress, 20, 0) }) == 20, crc32(Array(raw[0..<16])) == Self.littleEndian(raw, 16) {
            saved = Position(
                segment: UInt64(Self.littleEndian(raw, 0)) | UInt64(Self.littleEndian(raw, 4)) << 32,
                offset: Int(Self.littleEndian(raw, 8)) | Int(Self.littleEndian(raw, 12)) << 32)
        }
        for number in entries {
            if let saved, number < saved.segment {
                unlink(segmentPath(number))
                continue
            }
            let (size, boundaries) = try checkSegment(number)
            var segment = Segment(number: number, size: size, records: boundaries.count)
            if let saved, number == saved.segment {
                if let consumed = boundaries.firstIndex(of: saved.offset) {
                    cursor = saved
                    consumedInCursorSegment = consumed
                } else if saved.offset == size {
                    cursor = saved
                    consumedInCursorSegment = boundaries.count
                } else {
                    cursor = Position(segment: number, offset: 0)
                }
            } else if segments.isEmpty {
                cursor = Position(segment: number, offset: 0)
            }
            segment.records = boundaries.count
            segments.append(segment)
        }
        if segments.isEmpty {
            cursor = Position(segment: saved.map { $0.segment + 1 } ?? 1, offset: 0)
        }
        counters.records = segments.reduce(0) { $0 + $1.records } - consumedInCursorSegment
        counters.bytes = onDisk - cursor.offset
        if let last = segments.last {
            tailFD = open(segmentPath(last.number), O_WRONLY | O_APPEND | O_CLOEXEC)
            guard tailFD >= 0 else { throw Failure(description: "\(segmentPath(last.number)): \(String(cString: strerror(errno)))") }
        }
        cursorDirty = true
    }

    /// The segment's whole records (their start offsets); a damaged end is cut off.
    private func checkSegment(_ number: UInt64) throws(Failure) -> (size: Int, boundaries: [Int]) {
        let path = segmentPath(number)
        let fd = open(path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw Failure(description: "\(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var info = stat()
        fstat(fd, &info)
        let fileSize = Int(info.st_size)
        var boundaries: [Int] = []
        var offset = 0
        while offset < fileSize, let record = Self.readRecord(fd, at: offset) {
            boundaries.append(offset)
            offset += Self.headerBytes + record.count
        }
        if offset < fileSize {
            counters.damagedBytes += fileSize - offset
            guard ftruncate(fd, off_t(offset)) == 0, fdatasync(fd) == 0 else {
                throw Failure(description: "\(path): cannot cut off a damaged record: \(String(cString: strerror(errno)))")
            }
        }
        return (offset, boundaries)
    }

    // MARK: files

    private func segmentPath(_ number: UInt64) -> String {
        let digits = String(number)
        return directory + "/" + String(repeating: "0", count: max(0, 20 - digits.count)) + digits + ".seg"
    }

    private static func segmentNumbers(in directory: String) -> [UInt64]? {
        directoryEntries(directory)?.compactMap { $0.hasSuffix(".seg") ? UInt64($0.dropLast(4)) : nil }.sorted()
    }

    private func readDescriptor(_ segment: UInt64) -> Int32? {
        if let readFD, readFD.segment == segment { return readFD.fd }
        if let readFD { close(readFD.fd) }
        readFD = nil
        let fd = open(segmentPath(segment), O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        readFD = (segment, fd)
        return fd
    }

    private func syncDirectory() {
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 {
            fsync(fd)
            close(fd)
        }
    }

    /// The record at `offset`, or nil when it is incomplete or its checksum does not match.
    private static func readRecord(_ fd: Int32, at offset: Int) -> [UInt8]? {
        var header = [UInt8](repeating: 0, count: headerBytes)
        guard header.withUnsafeMutableBytes({ pread(fd, $0.baseAddress, headerBytes, off_t(offset)) }) == headerBytes else { return nil }
        let length = Int(littleEndian(header, 0))
        guard length <= 16 << 20 else { return nil }
        var record = [UInt8](repeating: 0, count: length)
        guard record.withUnsafeMutableBytes({ pread(fd, $0.baseAddress, length, off_t(offset + headerBytes)) }) == length,
            crc32(record) == littleEndian(header, 4)
        else { return nil }
        return record
    }

    private static func appendLittleEndian(_ value: UInt32, to bytes: inout [UInt8]) {
        for shift in stride(from: 0, to: 32, by: 8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) }
    }

    private static func littleEndian(_ bytes: [UInt8], _ at: Int) -> UInt32 {
        UInt32(bytes[at]) | UInt32(bytes[at + 1]) << 8 | UInt32(bytes[at + 2]) << 16 | UInt32(bytes[at + 3]) << 24
    }
}

/// CRC-32 (IEEE 802.3, as zlib computes it): catches torn and damaged spool records.
func crc32(_ bytes: [UInt8]) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for byte in bytes { crc = crcTable[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
    return crc ^ 0xFFFF_FFFF
}

private let crcTable: [UInt32] = (0..<256).map { index in
    var value = UInt32(index)
    for _ in 0..<8 { value = value & 1 != 0 ? 0xEDB8_8320 ^ (value >> 1) : value >> 1 }
    return value
}
