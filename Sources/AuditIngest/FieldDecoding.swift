/// Turns raw field values into what they mean: the kernel quotes strings it considers safe
/// and writes the others as hex (spaces, quotes, control or non-ASCII bytes).
public enum FieldDecoding {
    /// Fields the kernel or auditd may hex-encode (auparse's "escaped" fields).
    private static let encodedNames: [StaticString] = [
        "exe", "comm", "cwd", "name", "proctitle", "path", "key", "data", "cmd", "acct",
        "ocomm", "watch", "dir", "file", "root_dir", "vm", "grp", "new_group", "new_user",
        "old-chardev", "new-chardev", "old-disk", "new-disk", "old-fs", "new-fs", "old-net", "new-net",
        "sw", "invalid_context", "subj", "obj",
    ]

    /// The value a user would read: quotes stripped, hex decoded where the field is encodable.
    /// A slice of the record's text where the value stands there as it is (most do): no copy.
    public static func decode(name: ArraySlice<UInt8>, value: ArraySlice<UInt8>, recordType: AuditRecordType) -> ArraySlice<UInt8> {
        if let plain = plainValue(name: name, value: value, recordType: recordType) { return plain }
        return hex(value).map { $0[...] } ?? value
    }

    /// The decoded value when it is a part of the raw text (most fields: no copy needed), or
    /// nil when it is hex that must be decoded.
    @inline(__always)
    public static func plainValue(name: ArraySlice<UInt8>, value: ArraySlice<UInt8>, recordType: AuditRecordType) -> ArraySlice<UInt8>? {
        if value.count >= 2, let first = value.first, first == value.last,
            first == UInt8(ascii: "\"") || first == UInt8(ascii: "'")
        {
            return value.dropFirst().dropLast()
        }
        if isHexDigits(value), isEncodable(name: name, recordType: recordType) { return nil }
        return value
    }

    @inline(__always)
    static func isHexDigits(_ value: ArraySlice<UInt8>) -> Bool {
        guard !value.isEmpty, value.count % 2 == 0 else { return false }
        return value.allSatisfy { nibble($0) != nil }
    }

    static func isEncodable(name: ArraySlice<UInt8>, recordType: AuditRecordType) -> Bool {
        if recordType == .execve, ExecveArgument(name: name) != nil { return true }
        for candidate in encodedNames where candidate.utf8CodeUnitCount == name.count {
            if candidate.withUTF8Buffer({ $0.elementsEqual(name) }) { return true }
        }
        return false
    }

    /// Decodes an even-length run of hex digits; nil if the value is not one.
    public static func hex(_ value: ArraySlice<UInt8>) -> [UInt8]? {
        guard !value.isEmpty, value.count % 2 == 0 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(value.count / 2)
        var index = value.startIndex
        while index < value.endIndex {
            guard let high = nibble(value[index]), let low = nibble(value[index + 1]) else { return nil }
            out.append(high << 4 | low)
            index += 2
        }
        return out
    }

    @inline(__always)
    static func nibble(_ byte: UInt8) -> UInt8? {
        switch byte {
        case 0x30...0x39: byte - 0x30
        case 0x41...0x46: byte - 0x41 + 10
        case 0x61...0x66: byte - 0x61 + 10
        default: nil
        }
    }

    public static func decimal(_ value: ArraySlice<UInt8>) -> Int64? {
        var digits = value[...]
        var negative = false
        if digits.first == UInt8(ascii: "-") { negative = true; digits = digits.dropFirst() }
        guard !digits.isEmpty, digits.count <= 19 else { return nil }
        var result: Int64 = 0
        for byte in digits {
            guard byte >= 0x30 && byte <= 0x39 else { return nil }
            result = result * 10 + Int64(byte - 0x30)
        }
        return negative ? -result : result
    }

    public static func hexNumber(_ value: ArraySlice<UInt8>) -> UInt64? {
        guard !value.isEmpty, value.count <= 16 else { return nil }
        var result: UInt64 = 0
        for byte in value {
            guard let n = nibble(byte) else { return nil }
            result = result << 4 | UInt64(n)
        }
        return result
    }

    /// The arguments of an execve, put back together from the EXECVE records of one event:
    /// `a0=...`, and arguments the kernel split as `a1_len=N a1[0]=... a1[1]=...`, possibly
    /// across several EXECVE records.
    /// An array, not any sequence: a generic one is walked through copies of every record
    /// (a retain and release per array it holds), 7% of a replay.
    /// More arguments than any record set the kernel writes for one execve (its pages of
    /// arguments hold far fewer): a cap for hostile input.
    static let maximumArguments = 1 << 16

    /// An execve's arguments from its EXECVE records. Each is a slice of its record's text where
    /// it stands there as it is (most do: no copy), else its decoded or joined bytes.
    public static func argv(_ records: [AuditRecord]) -> [ArraySlice<UInt8>] {
        var argc = 0
        var arguments: [ArraySlice<UInt8>] = []
        for r in records.indices where records[r].type == .execve {
            for field in records[r].rawFields {
                let name = records[r].name(field)
                if name.elementsEqual("argc".utf8) {
                    // A bogus count must not make us allocate (found by fuzz/run records).
                    argc = max(argc, min(Int(decimal(records[r].rawValue(field)) ?? 0), maximumArguments))
                    continue
                }
                // Nor a bogus index: the kernel never writes one past argc.
                guard let argument = ExecveArgument(name: name), argument.index < maximumArguments else { continue }
                while arguments.count <= argument.index { arguments.append([]) }
                let value = decode(name: name, value: records[r].rawValue(field), recordType: .execve)
                if arguments[argument.index].isEmpty {
                    arguments[argument.index] = value
                } else {
                    arguments[argument.index].append(contentsOf: value)
                }
            }
        }
        while arguments.count < argc { arguments.append([]) }
        return arguments
    }

    /// PROCTITLE's value: the command line with NULs between arguments, possibly cut at 128 bytes.
    public static func proctitleArguments(_ value: [UInt8]) -> [[UInt8]] {
        value.split(separator: 0, omittingEmptySubsequences: false).map(Array.init)
            .reversed().drop(while: { $0.isEmpty }).reversed()
    }
}

/// `aN` or `aN[i]` in an EXECVE record (`aN_len` is not an argument).
struct ExecveArgument {
    let index: Int

    init?(name: ArraySlice<UInt8>) {
        guard name.count >= 2, name.first == UInt8(ascii: "a") else { return nil }
        var index = 0
        var i = name.startIndex + 1
        guard name[i] >= 0x30 && name[i] <= 0x39 else { return nil }
        while i < name.endIndex, name[i] >= 0x30 && name[i] <= 0x39 {
            index = index * 10 + Int(name[i] - 0x30)
            guard index < 1 << 20 else { return nil }
            i += 1
        }
        if i < name.endIndex {
            guard name[i] == UInt8(ascii: "["), name.last == UInt8(ascii: "]"), name.count > i - name.startIndex + 2 else { return nil }
        }
        self.index = index
    }
}
