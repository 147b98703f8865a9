/// Writes JSON straight into a byte buffer: no intermediate objects, no Foundation.
/// The caller keeps the structure right; the writer handles commas and escaping.
public struct JSONWriter {
    public private(set) var bytes: [UInt8] = []
    /// Whether the next value in the current container needs a comma before it.
    private var needsComma = false

    /// A shortened copy, for a bounded message: strings keep their first `stringBytes` and
    /// arrays their first `arrayElements`, each followed by a marker saying how much went.
    public struct Limits: Sendable {
        public var stringBytes: Int
        public var arrayElements: Int
        public init(stringBytes: Int, arrayElements: Int) { (self.stringBytes, self.arrayElements) = (stringBytes, arrayElements) }
    }

    /// nil (the default) writes everything.
    public let limits: Limits?
    /// Strings and arrays shortened since the last reset.
    public private(set) var valuesCut = 0
    /// With limits: the open containers (elements written and left out of arrays), and how
    /// deep the value being left out goes.
    private var containers: [(isArray: Bool, elements: Int, omitted: Int)] = []
    private var skipping = 0

    public init(capacity: Int = 4096, limits: Limits? = nil) {
        bytes.reserveCapacity(capacity)
        self.limits = limits
    }

    public mutating func reset() {
        bytes.removeAll(keepingCapacity: true)
        needsComma = false
        (valuesCut, skipping) = (0, 0)
        containers.removeAll(keepingCapacity: true)
    }

    public mutating func beginObject() { begin(UInt8(ascii: "{"), isArray: false) }
    public mutating func endObject() { end(UInt8(ascii: "}")) }
    public mutating func beginArray() { begin(UInt8(ascii: "["), isArray: true) }
    public mutating func endArray() { end(UInt8(ascii: "]")) }

    @inline(__always)
    private mutating func begin(_ bracket: UInt8, isArray: Bool) {
        guard admit(opening: true) else { return }
        separator()
        bytes.append(bracket)
        needsComma = false
        if limits != nil { containers.append((isArray, 0, 0)) }
    }

    @inline(__always)
    private mutating func end(_ bracket: UInt8) {
        if limits != nil {
            if skipping > 0 {
                skipping -= 1
                return
            }
            if let closing = containers.popLast(), closing.omitted > 0 {
                separator()
                appendQuoted("…[\(closing.omitted) more]".utf8)
                valuesCut += 1
            }
        }
        bytes.append(bracket)
        needsComma = true
    }

    /// With limits: whether the next value is written (an array past its bound leaves it out,
    /// and everything inside it).
    @inline(__always)
    private mutating func admit(opening: Bool) -> Bool {
        guard let limits else { return true }
        if skipping > 0 {
            if opening { skipping += 1 }
            return false
        }
        guard let last = containers.indices.last, containers[last].isArray else { return true }
        guard containers[last].elements < limits.arrayElements else {
            containers[last].omitted += 1
            if opening { skipping = 1 }
            return false
        }
        containers[last].elements += 1
        return true
    }

    /// Writes `"name":` inside an object; the value follows.
    public mutating func key(_ name: StaticString) {
        guard skipping == 0 else { return }
        separator()
        bytes.append(UInt8(ascii: "\""))
        name.withUTF8Buffer { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: [UInt8(ascii: "\""), UInt8(ascii: ":")])
        needsComma = false
    }

    public mutating func key(_ name: some Collection<UInt8>) {
        guard skipping == 0 else { return }
        separator()
        appendQuoted(name)
        bytes.append(UInt8(ascii: ":"))
        needsComma = false
    }

    public mutating func string(_ value: some Collection<UInt8>) {
        guard admit(opening: false) else { return }
        separator()
        if let limits, value.count > limits.stringBytes {
            var head = Array(value.prefix(limits.stringBytes + 1))
            var end = limits.stringBytes
            // Back up over continuation bytes to the start of the character that would be split.
            while end > 0 && head[end] & 0xC0 == 0x80 { end -= 1 }
            head.removeLast(head.count - end)
            head += "…[\(value.count - end) bytes cut]".utf8
            appendQuoted(head)
            valuesCut += 1
        } else {
            appendQuoted(value)
        }
        needsComma = true
    }
    public mutating func string(_ value: String) { string(value.utf8) }

    public mutating func number(_ value: some BinaryInteger) {
        guard admit(opening: false) else { return }
        separator()
        bytes.append(contentsOf: String(value).utf8)
        needsComma = true
    }

    public mutating func bool(_ value: Bool) {
        guard admit(opening: false) else { return }
        separator()
        bytes.append(contentsOf: (value ? "true" : "false").utf8)
        needsComma = true
    }

    public mutating func null() {
        guard admit(opening: false) else { return }
        separator()
        bytes.append(contentsOf: "null".utf8)
        needsComma = true
    }

    public mutating func newline() { bytes.append(0x0A); needsComma = false }

    @inline(__always)
    private mutating func separator() {
        if needsComma { bytes.append(UInt8(ascii: ",")) }
    }

    private static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    /// Quotes and escapes; invalid UTF-8 becomes U+FFFD so the output always parses.
    private mutating func appendQuoted<C: Collection<UInt8>>(_ value: C) {
        // Most values are plain printable ASCII: copy those in one go.
        let plain = value.withContiguousStorageIfAvailable { buffer -> Bool in
            for byte in buffer where byte < 0x20 || byte >= 0x7F || byte == 0x22 || byte == 0x5C { return false }
            bytes.append(UInt8(ascii: "\""))
            bytes.append(contentsOf: buffer)
            bytes.append(UInt8(ascii: "\""))
            return true
        }
        if plain == true { return }
        bytes.append(UInt8(ascii: "\""))
        var index = value.startIndex
        while index != value.endIndex {
            let byte = value[index]
            switch byte {
            case UInt8(ascii: "\""): bytes.append(contentsOf: [0x5C, 0x22])
            case UInt8(ascii: "\\"): bytes.append(contentsOf: [0x5C, 0x5C])
            case 0x0A: bytes.append(contentsOf: [0x5C, UInt8(ascii: "n")])
            case 0x0D: bytes.append(contentsOf: [0x5C, UInt8(ascii: "r")])
            case 0x09: bytes.append(contentsOf: [0x5C, UInt8(ascii: "t")])
            case 0..<0x20, 0x7F:
                bytes.append(contentsOf: [
                    0x5C, UInt8(ascii: "u"), 0x30, 0x30,
                    Self.hexDigits[Int(byte >> 4)], Self.hexDigits[Int(byte & 15)],
                ])
            case 0x20..<0x7F:
                bytes.append(byte)
            default:
                let length = Self.validSequenceLength(value, at: index)
                if length == 0 {
                    bytes.append(contentsOf: [0xEF, 0xBF, 0xBD])
                } else {
                    var i = index
                    for _ in 0..<length { bytes.append(value[i]); i = value.index(after: i) }
                    index = value.index(index, offsetBy: length - 1)
                }
            }
            index = value.index(after: index)
        }
        bytes.append(UInt8(ascii: "\""))
    }

    /// The length of the valid UTF-8 sequence starting at `index`, or 0.
    private static func validSequenceLength<C: Collection<UInt8>>(_ value: C, at index: C.Index) -> Int {
        let lead = value[index]
        let length: Int
        let minimum: UInt32
        switch lead {
        case 0xC2...0xDF: length = 2; minimum = 0x80
        case 0xE0...0xEF: length = 3; minimum = 0x800
        case 0xF0...0xF4: length = 4; minimum = 0x10000
        default: return 0
        }
        var scalar = UInt32(lead) & (0xFF >> (length + 1))
        var i = value.index(after: index)
        for _ in 1..<length {
            guard i != value.endIndex, value[i] & 0xC0 == 0x80 else { return 0 }
            scalar = scalar << 6 | UInt32(value[i] & 0x3F)
            i = value.index(after: i)
        }
        guard scalar >= minimum, scalar <= 0x10FFFF, !(0xD800...0xDFFF).contains(scalar) else { return 0 }
        return length
    }
}

extension JSONWriter {
    /// Milliseconds since the epoch as an RFC 3339 UTC string: 2026-11-22T14:47:06.123Z.
    public mutating func timestamp(milliseconds: Int64) { string(rfc3339UTF8(milliseconds: milliseconds)) }
}

/// `2026-11-22T10:00:00.123Z` (UTC, milliseconds) as bytes, without Foundation.
public func rfc3339UTF8(milliseconds: Int64) -> [UInt8] {
    var text = [UInt8]()
    text.reserveCapacity(24)
    let ms = Int(((milliseconds % 1000) + 1000) % 1000)
    let seconds = (milliseconds - Int64(ms)) / 1000
    let days = Int(seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400)
    let secondOfDay = Int(seconds - Int64(days) * 86_400)
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468
    let era = (z >= 0 ? z : z - 146_096) / 146_097
    let dayOfEra = z - era * 146_097
    let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
    let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
    let mp = (5 * dayOfYear + 2) / 153
    let day = dayOfYear - (153 * mp + 2) / 5 + 1
    let month = mp < 10 ? mp + 3 : mp - 9
    let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
    func digits(_ value: Int, _ count: Int) {
        var divisor = 1
        for _ in 1..<count { divisor *= 10 }
        var v = value
        while divisor > 0 { text.append(UInt8(48 + (v / divisor) % 10)); v %= divisor; divisor /= 10 }
    }
    digits(year, 4); text.append(UInt8(ascii: "-")); digits(month, 2); text.append(UInt8(ascii: "-")); digits(day, 2)
    text.append(UInt8(ascii: "T"))
    digits(secondOfDay / 3600, 2); text.append(UInt8(ascii: ":")); digits(secondOfDay / 60 % 60, 2)
    text.append(UInt8(ascii: ":")); digits(secondOfDay % 60, 2); text.append(UInt8(ascii: "."))
    digits(ms, 3); text.append(UInt8(ascii: "Z"))
    return text
}
