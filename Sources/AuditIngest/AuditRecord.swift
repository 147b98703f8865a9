/// The time stamp that `audit(SECONDS.MILLIS:SERIAL)` carries.
public struct AuditTime: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var seconds: Int64
    public var milliseconds: UInt16

    public init(seconds: Int64, milliseconds: UInt16) {
        self.seconds = seconds
        self.milliseconds = milliseconds
    }

    public var totalMilliseconds: Int64 { seconds * 1000 + Int64(milliseconds) }

    public static func < (a: AuditTime, b: AuditTime) -> Bool { a.totalMilliseconds < b.totalMilliseconds }

    public var description: String {
        let ms = String(milliseconds)
        return "\(seconds).\(String(repeating: "0", count: 3 - ms.count))\(ms)"
    }
}

/// What identifies an event: records with the same key belong together.
public struct EventKey: Hashable, Sendable {
    public var time: AuditTime
    public var serial: UInt32
    /// The `node=` prefix of records forwarded from other hosts, if any.
    public var node: String?

    /// One word of serial and time: enough to tell apart the events open at once, and cheaper
    /// than hashing each part and the optional node (finding events was 5% of a replay).
    public func hash(into hasher: inout Hasher) {
        hasher.combine(word)
    }

    /// What a dictionary hashes: that word mixed with the table's seed by splitmix64's finaliser,
    /// without a Hasher (its set-up and SipHash rounds were 3% of a replay). Open events are
    /// bounded (`maximumPendingEvents`), so a log crafted to collide costs at most that bound.
    public func _rawHashValue(seed: Int) -> Int {
        var x = word ^ UInt64(UInt(bitPattern: seed))
        x = (x ^ (x >> 30)) &* 0xbf58_476d_1ce4_e5b9
        x = (x ^ (x >> 27)) &* 0x94d0_49bb_1331_11eb
        return Int(Int64(bitPattern: x ^ (x >> 31)))
    }

    private var word: UInt64 { UInt64(serial) | UInt64(UInt32(truncatingIfNeeded: time.totalMilliseconds)) << 32 }
}

/// Where one `name=value` field sits in a record's text. The value span is raw: it keeps
/// the quotes, hex and braces the kernel or auditd wrote.
public struct FieldSpan: Sendable {
    public var nameStart: UInt16
    public var nameEnd: UInt16
    public var valueStart: UInt16
    public var valueEnd: UInt16
}

/// A record's field index, read from the record's own storage.
public struct FieldSpans: RandomAccessCollection, Sendable {
    @usableFromInline let storage: [UInt8]
    /// Where the spans start in `storage`.
    @usableFromInline let base: Int
    public let startIndex: Int
    public let endIndex: Int

    @usableFromInline
    init(storage: [UInt8], base: Int, startIndex: Int, endIndex: Int) {
        (self.storage, self.base, self.startIndex, self.endIndex) = (storage, base, startIndex, endIndex)
    }

    /// Four little-endian UInt16 (`FieldScanner` writes them).
    public subscript(position: Int) -> FieldSpan {
        storage.withUnsafeBytes { bytes in
            let at = base + position * FieldSpan.storedSize
            func half(_ offset: Int) -> UInt16 { UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: at + offset, as: UInt16.self)) }
            return FieldSpan(nameStart: half(0), nameEnd: half(2), valueStart: half(4), valueEnd: half(6))
        }
    }

    @inlinable
    public subscript(bounds: Range<Int>) -> FieldSpans {
        FieldSpans(storage: storage, base: base, startIndex: bounds.lowerBound, endIndex: bounds.upperBound)
    }
}

extension FieldSpan {
    /// Four UInt16 in a record's storage.
    @usableFromInline static let storedSize = 8
}

/// One audit record: its type, key and field text, indexed but not yet decoded.
public struct AuditRecord: Sendable {
    public var type: AuditRecordType
    public var key: EventKey
    /// The field text, then the field index: one allocation per record, where a record is
    /// made per line or message and two were a sixth of a replay's time in malloc and free.
    @usableFromInline let storage: [UInt8]
    @usableFromInline let textCount: Int
    /// Index in `fields` of the first interpreted field; `fields.count` when there are none.
    public var interpretedStart: Int

    /// `storage`: the text then each field's span (`FieldSpan.storedSize` bytes).
    init(type: AuditRecordType, key: EventKey, storage: [UInt8], textCount: Int, interpretedStart: Int) {
        (self.type, self.key, self.storage, self.textCount, self.interpretedStart) = (type, key, storage, textCount, interpretedStart)
    }

    /// The field text after `): `, without the line end. With ENRICHED input this includes
    /// the 0x1D separator and the interpreted fields after it.
    public var text: ArraySlice<UInt8> { storage[..<textCount] }
    /// Fields written by the kernel, in order, then those auditd interpreted (ENRICHED).
    public var fields: FieldSpans {
        FieldSpans(storage: storage, base: textCount, startIndex: 0, endIndex: (storage.count - textCount) / FieldSpan.storedSize)
    }
    public var rawFields: FieldSpans { fields[0..<interpretedStart] }
    public var interpretedFields: FieldSpans {
        let all = fields
        return all[interpretedStart..<all.endIndex]
    }

    @inlinable
    public func name(_ field: FieldSpan) -> ArraySlice<UInt8> {
        storage[Int(field.nameStart)..<Int(field.nameEnd)]
    }

    @inlinable
    public func rawValue(_ field: FieldSpan) -> ArraySlice<UInt8> {
        storage[Int(field.valueStart)..<Int(field.valueEnd)]
    }

    /// The first kernel-written field called `name`. One pass over the index in place: the
    /// pipeline asks a record for a dozen fields.
    public func field(_ name: StaticString) -> FieldSpan? {
        name.withUTF8Buffer { wanted in
            storage.withUnsafeBytes { bytes -> FieldSpan? in
                guard let base = bytes.baseAddress, let wantedBase = wanted.baseAddress else { return nil }
                func half(_ offset: Int) -> Int { Int(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt16.self))) }
                var at = textCount
                let end = textCount + interpretedStart * FieldSpan.storedSize
                while at < end {
                    let nameStart = half(at)
                    if half(at + 2) - nameStart == wanted.count && equal(base + nameStart, wantedBase, wanted.count) {
                        return FieldSpan(
                            nameStart: UInt16(nameStart), nameEnd: UInt16(half(at + 2)), valueStart: UInt16(half(at + 4)), valueEnd: UInt16(half(at + 6)))
                    }
                    at += FieldSpan.storedSize
                }
                return nil
            }
        }
    }

    /// What auditd wrote for `name` after the 0x1D separator (ENRICHED), quotes removed.
    public func interpretedString(_ name: StaticString) -> String? {
        name.withUTF8Buffer { wanted in
            for field in interpretedFields where self.name(field).elementsEqual(wanted) {
                var value = rawValue(field)
                if value.count >= 2, value.first == UInt8(ascii: "\""), value.last == UInt8(ascii: "\"") { value = value.dropFirst().dropLast() }
                return String(decoding: value, as: UTF8.self)
            }
            return nil
        }
    }

    /// The raw value of the first kernel-written field called `name`.
    public func rawValue(_ name: StaticString) -> ArraySlice<UInt8>? {
        field(name).map { rawValue($0) }
    }

    /// A field's value as a user reads it: quotes removed and hex decoded where the kernel
    /// encodes that field (see `FieldDecoding`).
    public func value(_ name: StaticString) -> [UInt8]? {
        guard let field = field(name) else { return nil }
        return Array(FieldDecoding.decode(name: self.name(field), value: rawValue(field), recordType: type))
    }

    /// `value(name)` as text, made from the decoded slice without an array in between.
    public func string(_ name: StaticString) -> String? {
        guard let field = field(name) else { return nil }
        return String(decoding: FieldDecoding.decode(name: self.name(field), value: rawValue(field), recordType: type), as: UTF8.self)
    }

    /// A decimal field (pid, uid, exit, items...). Negative numbers are allowed.
    public func integer(_ name: StaticString) -> Int64? {
        rawValue(name).flatMap { FieldDecoding.decimal($0) }
    }

    /// A SYSCALL record's `success=yes`.
    public var syscallSucceeded: Bool {
        rawValue("success").map { $0.elementsEqual("yes".utf8) } ?? false
    }

    /// A hexadecimal field without prefix (a0..a3, arch).
    public func hexInteger(_ name: StaticString) -> UInt64? {
        rawValue(name).flatMap { FieldDecoding.hexNumber($0) }
    }

    /// A `major:minor` device field in hex (PATH's `dev=fd:01`) as glibc's `dev_t`, the
    /// number `stat` reports in `st_dev`.
    public func deviceNumber(_ name: StaticString) -> UInt64? {
        guard let raw = rawValue(name), let colon = raw.firstIndex(of: UInt8(ascii: ":")),
            let major = FieldDecoding.hexNumber(raw[..<colon]), let minor = FieldDecoding.hexNumber(raw[(colon + 1)...])
        else { return nil }
        return (major & 0xffff_f000) << 32 | (major & 0xfff) << 8 | (minor & 0xffff_ff00) << 12 | (minor & 0xff)
    }
}

/// Field names are a few bytes: compared inline, where a call to memcmp cost more than the bytes.
@inline(__always)
private func equal(_ a: UnsafeRawPointer, _ b: UnsafePointer<UInt8>, _ count: Int) -> Bool {
    var i = 0
    while i < count {
        if a.load(fromByteOffset: i, as: UInt8.self) != b[i] { return false }
        i += 1
    }
    return true
}
