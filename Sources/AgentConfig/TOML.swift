/// TOML 1.0, parsed from bytes into plain values: what agent.conf is written in. Our own so the
/// agent needs no Foundation (the TOML packages at hand import all of it, 40 MB in a static
/// binary). Dates and times are checked and kept as written: no key of ours takes one.
public indirect enum TOMLValue: Equatable, Sendable {
    case string(String)
    case integer(Int)
    case float(Double)
    case boolean(Bool)
    /// An offset or local date-time, a local date or a local time, as written.
    case dateTime(String)
    case array([TOMLValue])
    case table([String: TOMLValue])

    /// How problems name the type a value has.
    public var typeName: String {
        switch self {
        case .string: "string"
        case .integer: "integer"
        case .float: "float"
        case .boolean: "boolean"
        case .dateTime: "date-time"
        case .array: "array"
        case .table: "table"
        }
    }

    public var string: String? { if case .string(let v) = self { v } else { nil } }
    public var integer: Int? { if case .integer(let v) = self { v } else { nil } }
    public var float: Double? { if case .float(let v) = self { v } else { nil } }
    public var boolean: Bool? { if case .boolean(let v) = self { v } else { nil } }
    public var array: [TOMLValue]? { if case .array(let v) = self { v } else { nil } }
    public var table: [String: TOMLValue]? { if case .table(let v) = self { v } else { nil } }
}

public struct TOMLError: Error, Sendable, Equatable, CustomStringConvertible {
    public let line: Int
    public let column: Int
    public let message: String
    public var description: String { "line \(line), column \(column): \(message)" }
}

public enum TOML {
    /// The document's root table.
    public static func parse(_ text: String) throws(TOMLError) -> [String: TOMLValue] {
        var parser = TOMLParser(Array(text.utf8))
        return try parser.document()
    }
}

/// A table while the document is read: how it came to be decides what may still add to it.
final class TableNode {
    enum Origin {
        /// `[a.b]`: defined; a second header for it is an error.
        case header
        /// A prefix of a header (`a` of `[a.b]`): a later `[a]` may still define it.
        case implicit
        /// A prefix of a dotted key (`a` of `a.b = 1`): more dotted keys may add to it, headers may not.
        case dottedKey
        /// `{ ... }` and the tables inside: complete as written.
        case inline
    }

    enum Entry {
        case value(TOMLValue)
        case table(TableNode)
        case tableArray([TableNode])
    }

    var origin: Origin
    var entries: [String: Entry] = [:]

    init(_ origin: Origin) { self.origin = origin }

    var value: TOMLValue {
        .table(
            entries.mapValues { entry in
                switch entry {
                case .value(let value): value
                case .table(let table): table.value
                case .tableArray(let tables): .array(tables.map(\.value))
                }
            })
    }
}

/// A TOML 1.0 document on bytes: structure, keys and values here; strings and the byte
/// reader in TOMLParser+Strings.swift.
struct TOMLParser {
    let bytes: [UInt8]
    var index = 0
    var line = 1
    var lineStart = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    // MARK: structure

    mutating func document() throws(TOMLError) -> [String: TOMLValue] {
        let root = TableNode(.header)
        var current = root
        while true {
            skipWhitespace()
            guard let byte = peek() else { break }
            switch byte {
            case UInt8(ascii: "#"), UInt8(ascii: "\n"), UInt8(ascii: "\r"):
                try endOfLine()
            case UInt8(ascii: "["):
                if peek(1) == UInt8(ascii: "[") {
                    index += 2
                    current = try tableArrayHeader(root)
                } else {
                    index += 1
                    current = try tableHeader(root)
                }
                try endOfLine()
            default:
                try keyValue(into: current)
                try endOfLine()
            }
        }
        return root.value.table ?? [:]
    }

    /// `[a.b.c]`: the table it names, defined now.
    mutating func tableHeader(_ root: TableNode) throws(TOMLError) -> TableNode {
        let keys = try headerKeys(closing: 1)
        let parent = try walk(keys.dropLast(), from: root, creating: .implicit, extendable: [.header, .implicit])
        let last = keys.last!
        switch parent.entries[last] {
        case nil:
            let table = TableNode(.header)
            parent.entries[last] = .table(table)
            return table
        case .table(let table) where table.origin == .implicit:
            table.origin = .header
            return table
        default:
            throw failure("[\(keys.joined(separator: "."))] is already defined")
        }
    }

    /// `[[a.b]]`: a new table at the end of the array it names.
    mutating func tableArrayHeader(_ root: TableNode) throws(TOMLError) -> TableNode {
        let keys = try headerKeys(closing: 2)
        let parent = try walk(keys.dropLast(), from: root, creating: .implicit, extendable: [.header, .implicit])
        let last = keys.last!
        let table = TableNode(.header)
        switch parent.entries[last] {
        case nil:
            parent.entries[last] = .tableArray([table])
        case .tableArray(let tables):
            parent.entries[last] = .tableArray(tables + [table])
        default:
            throw failure("[[\(keys.joined(separator: "."))]] names something that is not an array of tables")
        }
        return table
    }

    mutating func headerKeys(closing count: Int) throws(TOMLError) -> [String] {
        skipWhitespace()
        let keys = try dottedKey()
        skipWhitespace()
        for _ in 0..<count {
            guard peek() == UInt8(ascii: "]") else { throw failure("expected ] after the table name") }
            index += 1
        }
        return keys
    }

    /// Follows `keys` from `table`, making missing tables with `origin`; an existing table
    /// must have one of the `extendable` origins (the last table of an array of tables is entered).
    mutating func walk(
        _ keys: ArraySlice<String>, from table: TableNode, creating origin: TableNode.Origin,
        extendable: Set<TableNode.Origin>
    ) throws(TOMLError) -> TableNode {
        var current = table
        for key in keys {
            switch current.entries[key] {
            case nil:
                let next = TableNode(origin)
                current.entries[key] = .table(next)
                current = next
            case .table(let next) where extendable.contains(next.origin):
                current = next
            case .tableArray(let tables) where origin == .implicit:
                current = tables.last!
            default:
                throw failure("\(key) is already defined and cannot be extended")
            }
        }
        return current
    }

    mutating func keyValue(into table: TableNode) throws(TOMLError) {
        let keys = try dottedKey()
        skipWhitespace()
        guard peek() == UInt8(ascii: "=") else { throw failure("expected = after the key") }
        index += 1
        skipWhitespace()
        let value = try value()
        let extendable: Set<TableNode.Origin> = table.origin == .inline ? [.inline] : [.dottedKey]
        let parent = try walk(keys.dropLast(), from: table, creating: table.origin == .inline ? .inline : .dottedKey, extendable: extendable)
        guard parent.entries[keys.last!] == nil else { throw failure("\(keys.joined(separator: ".")) is already defined") }
        // An inline table is stored as a value: complete as written, nothing may add to it.
        parent.entries[keys.last!] = .value(value)
    }

    /// Only whitespace and a comment may follow until the end of the line.
    mutating func endOfLine() throws(TOMLError) {
        skipWhitespace()
        if peek() == UInt8(ascii: "#") { try comment() }
        guard let byte = peek() else { return }
        if byte == UInt8(ascii: "\n") { newline(); return }
        if byte == UInt8(ascii: "\r"), peek(1) == UInt8(ascii: "\n") { index += 1; newline(); return }
        throw failure("unexpected \(describe(byte)) at the end of a line")
    }

    mutating func comment() throws(TOMLError) {
        index += 1
        while let byte = peek(), byte != UInt8(ascii: "\n") {
            if byte == UInt8(ascii: "\r") && peek(1) == UInt8(ascii: "\n") { return }
            if isControl(byte) { throw failure("control character \(describe(byte)) in a comment") }
            index += 1
        }
    }

    // MARK: keys

    mutating func dottedKey() throws(TOMLError) -> [String] {
        var keys = [try simpleKey()]
        while true {
            let mark = index
            skipWhitespace()
            guard peek() == UInt8(ascii: ".") else { index = mark; return keys }
            index += 1
            skipWhitespace()
            keys.append(try simpleKey())
        }
    }

    mutating func simpleKey() throws(TOMLError) -> String {
        switch peek() {
        case UInt8(ascii: "\""), UInt8(ascii: "'"):
            index += 1
            return try string(quote: bytes[index - 1], multiline: false)
        default:
            let start = index
            while let byte = peek(), isBareKey(byte) { index += 1 }
            guard index > start else { throw failure(peek().map { "expected a key, found \(describe($0))" } ?? "expected a key") }
            return String(decoding: bytes[start..<index], as: UTF8.self)
        }
    }

    // MARK: values

    mutating func value() throws(TOMLError) -> TOMLValue {
        guard let byte = peek() else { throw failure("expected a value") }
        switch byte {
        case UInt8(ascii: "\""), UInt8(ascii: "'"):
            // Three quotes open a multi-line string.
            let multiline = peek(1) == byte && peek(2) == byte
            index += multiline ? 3 : 1
            return .string(try string(quote: byte, multiline: multiline))
        case UInt8(ascii: "["):
            index += 1
            return try array()
        case UInt8(ascii: "{"):
            index += 1
            return try inlineTable()
        default:
            return try scalar()
        }
    }

    mutating func array() throws(TOMLError) -> TOMLValue {
        var items: [TOMLValue] = []
        while true {
            try skipBlank()
            if peek() == UInt8(ascii: "]") { index += 1; return .array(items) }
            items.append(try value())
            try skipBlank()
            switch peek() {
            case UInt8(ascii: ","): index += 1
            case UInt8(ascii: "]"): index += 1; return .array(items)
            default: throw failure("expected , or ] in an array")
            }
        }
    }

    mutating func inlineTable() throws(TOMLError) -> TOMLValue {
        let table = TableNode(.inline)
        skipWhitespace()
        if peek() == UInt8(ascii: "}") { index += 1; return table.value }
        while true {
            skipWhitespace()
            try keyValue(into: table)
            skipWhitespace()
            switch peek() {
            case UInt8(ascii: ","): index += 1
            case UInt8(ascii: "}"): index += 1; return table.value
            default: throw failure("expected , or } in an inline table (which stays on one line)")
            }
        }
    }
}
