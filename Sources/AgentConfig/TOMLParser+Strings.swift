/// TOML's strings (basic and literal, single and multi-line, escapes) and the byte-level
/// reading the parser shares.
extension TOMLParser {
    // MARK: strings

    /// After the opening quote(s); consumes the closing ones. `"` opens a basic string
    /// (escapes), `'` a literal one (none).
    mutating func string(quote: UInt8, multiline: Bool) throws(TOMLError) -> String {
        var out: [UInt8] = []
        if multiline { skipFirstNewline() }
        while true {
            guard let byte = peek() else { throw failure("unterminated string") }
            if byte == quote {
                if !multiline { index += 1; return String(decoding: out, as: UTF8.self) }
                if closesMultiline(byte, into: &out) { return String(decoding: out, as: UTF8.self) }
            } else if byte == UInt8(ascii: "\\") && quote == UInt8(ascii: "\"") {
                index += 1
                if multiline, let next = peek(),
                    next == UInt8(ascii: " ") || next == UInt8(ascii: "\t") || next == UInt8(ascii: "\n") || next == UInt8(ascii: "\r")
                {
                    try lineEndingBackslash()
                } else {
                    try escape(into: &out)
                }
            } else {
                try plain(byte, multiline: multiline, into: &out)
            }
        }
    }

    /// `\` at the end of a line in a multi-line basic string: it and the whitespace and
    /// newlines after it vanish.
    mutating func lineEndingBackslash() throws(TOMLError) {
        let start = index
        while let byte = peek(), byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") { index += 1 }
        guard let byte = peek(), byte == UInt8(ascii: "\n") || (byte == UInt8(ascii: "\r") && peek(1) == UInt8(ascii: "\n")) else {
            index = start
            throw failure("a backslash followed by spaces must end the line")
        }
        while let byte = peek() {
            if byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") {
                index += 1
            } else if byte == UInt8(ascii: "\n") {
                index += 1; newline(consumed: true)
            } else if byte == UInt8(ascii: "\r"), peek(1) == UInt8(ascii: "\n") {
                index += 2; newline(consumed: true)
            } else {
                break
            }
        }
    }

    mutating func escape(into out: inout [UInt8]) throws(TOMLError) {
        guard let byte = peek() else { throw failure("unterminated string") }
        index += 1
        switch byte {
        case UInt8(ascii: "b"): out.append(0x08)
        case UInt8(ascii: "t"): out.append(0x09)
        case UInt8(ascii: "n"): out.append(0x0A)
        case UInt8(ascii: "f"): out.append(0x0C)
        case UInt8(ascii: "r"): out.append(0x0D)
        case UInt8(ascii: "\""): out.append(byte)
        case UInt8(ascii: "\\"): out.append(byte)
        case UInt8(ascii: "u"), UInt8(ascii: "U"):
            let count = byte == UInt8(ascii: "u") ? 4 : 8
            guard index + count <= bytes.count, let code = UInt32(String(decoding: bytes[index..<(index + count)], as: UTF8.self), radix: 16),
                let scalar = Unicode.Scalar(code)
            else { throw failure("invalid \\\(Character(UnicodeScalar(byte))) escape") }
            index += count
            out += Array(String(Character(scalar)).utf8)
        default:
            index -= 1
            throw failure("invalid escape \\\(describe(byte))")
        }
    }

    /// At a quote of a multi-line string's kind: three close it (up to two more just before
    /// them belong to the text); fewer are text.
    mutating func closesMultiline(_ quote: UInt8, into out: inout [UInt8]) -> Bool {
        guard peek(1) == quote, peek(2) == quote else {
            out.append(quote)
            index += 1
            return false
        }
        var extra = 0
        while extra < 2, peek(3 + extra) == quote { extra += 1 }
        out += Array(repeating: quote, count: extra)
        index += 3 + extra
        return true
    }

    /// Any other byte of a string: newlines (multi-line only, kept as \n), no control characters.
    mutating func plain(_ byte: UInt8, multiline: Bool, into out: inout [UInt8]) throws(TOMLError) {
        if byte == UInt8(ascii: "\n") || (byte == UInt8(ascii: "\r") && peek(1) == UInt8(ascii: "\n")) {
            guard multiline else { throw failure("newline in a single-line string") }
            index += byte == UInt8(ascii: "\r") ? 2 : 1
            out.append(UInt8(ascii: "\n"))
            newline(consumed: true)
            return
        }
        if isControl(byte) { throw failure("control character \(describe(byte)) in a string") }
        out.append(byte)
        index += 1
    }

    /// A newline right after the opening delimiter of a multi-line string is not part of it.
    mutating func skipFirstNewline() {
        if peek() == UInt8(ascii: "\n") {
            index += 1; newline(consumed: true)
        } else if peek() == UInt8(ascii: "\r"), peek(1) == UInt8(ascii: "\n") {
            index += 2; newline(consumed: true)
        }
    }

    // MARK: bytes

    func peek(_ offset: Int = 0) -> UInt8? { index + offset < bytes.count ? bytes[index + offset] : nil }

    mutating func skipWhitespace() {
        while let byte = peek(), byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") { index += 1 }
    }

    /// Whitespace, newlines and comments (inside arrays).
    mutating func skipBlank() throws(TOMLError) {
        while let byte = peek() {
            switch byte {
            case UInt8(ascii: " "), UInt8(ascii: "\t"): index += 1
            case UInt8(ascii: "\n"): newline()
            case UInt8(ascii: "\r") where peek(1) == UInt8(ascii: "\n"): index += 1; newline()
            case UInt8(ascii: "#"): try comment()
            default: return
            }
        }
    }

    /// At a `\n` (or after it, when `consumed`): counts the line.
    mutating func newline(consumed: Bool = false) {
        if !consumed { index += 1 }
        line += 1
        lineStart = index
    }

    func failure(_ message: String) -> TOMLError {
        TOMLError(line: line, column: index - lineStart + 1, message: message)
    }

    func describe(_ byte: UInt8) -> String {
        byte >= 0x20 && byte < 0x7F ? "'\(Character(UnicodeScalar(byte)))'" : "0x" + String(byte, radix: 16)
    }
}

func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

func isBareKey(_ byte: UInt8) -> Bool {
    isDigit(byte) || (byte | 0x20 >= UInt8(ascii: "a") && byte | 0x20 <= UInt8(ascii: "z")) || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
}

func isScalarByte(_ byte: UInt8) -> Bool {
    isBareKey(byte) || byte == UInt8(ascii: "+") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: ":")
}

/// Control characters TOML allows nowhere but as tabs.
func isControl(_ byte: UInt8) -> Bool { (byte < 0x20 && byte != 0x09) || byte == 0x7F }
