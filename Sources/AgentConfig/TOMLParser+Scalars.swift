/// TOML's scalars: integers, floats, booleans, dates and times, one token each.
extension TOMLParser {
    /// Integers, floats, booleans, dates and times: one token, classified.
    mutating func scalar() throws(TOMLError) -> TOMLValue {
        let start = index
        while let byte = peek(), isScalarByte(byte) { index += 1 }
        // A date and a time may be separated by one space.
        if index - start == 10, peek() == UInt8(ascii: " "), let next = peek(1), isDigit(next), Self.isDate(bytes[start..<index]) {
            index += 1
            while let byte = peek(), isScalarByte(byte) { index += 1 }
        }
        let token = bytes[start..<index]
        let text = String(decoding: token, as: UTF8.self)
        guard !token.isEmpty else { throw failure(peek().map { "expected a value, found \(describe($0))" } ?? "expected a value") }
        switch text {
        case "true": return .boolean(true)
        case "false": return .boolean(false)
        case "inf", "+inf": return .float(.infinity)
        case "-inf": return .float(-.infinity)
        case "nan", "+nan", "-nan": return .float(.nan)
        default: break
        }
        if Self.isDateTime(token) { return .dateTime(text) }
        if let number = Self.integer(token) { return .integer(number) }
        if let number = Self.float(token) { return .float(number) }
        index = start
        throw failure("\"\(text)\" is not a TOML value")
    }

    static func integer(_ token: ArraySlice<UInt8>) -> Int? {
        var digits = token
        var negative = false
        if let sign = digits.first, sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") {
            negative = sign == UInt8(ascii: "-")
            digits = digits.dropFirst()
        }
        var radix = 10
        if digits.count > 2, digits.first == UInt8(ascii: "0") {
            switch digits[digits.startIndex + 1] {
            case UInt8(ascii: "x"): radix = 16
            case UInt8(ascii: "o"): radix = 8
            case UInt8(ascii: "b"): radix = 2
            default: return nil  // leading zeros
            }
            guard token.count == digits.count else { return nil }  // no sign on 0x, 0o, 0b
            digits = digits.dropFirst(2)
        } else if digits.count > 1, digits.first == UInt8(ascii: "0") {
            return nil
        }
        guard let cleaned = withoutUnderscores(digits, allowed: { Int(String(UnicodeScalar($0)), radix: radix) != nil }) else { return nil }
        guard let magnitude = UInt64(cleaned, radix: radix) else { return nil }
        if negative { return magnitude <= UInt64(Int.max) + 1 ? Int(truncatingIfNeeded: 0 &- magnitude) : nil }
        return magnitude <= UInt64(Int.max) ? Int(magnitude) : nil
    }

    static func float(_ token: ArraySlice<UInt8>) -> Double? {
        var body = token
        if let sign = body.first, sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") { body = body.dropFirst() }
        // integer part [. fraction] [e exponent], each a run of digits with single underscores.
        let exponentAt = body.firstIndex { $0 == UInt8(ascii: "e") || $0 == UInt8(ascii: "E") }
        let mantissa = body[..<(exponentAt ?? body.endIndex)]
        let dotAt = mantissa.firstIndex(of: UInt8(ascii: "."))
        let integerPart = mantissa[..<(dotAt ?? mantissa.endIndex)]
        guard exponentAt != nil || dotAt != nil else { return nil }
        guard withoutUnderscores(integerPart, allowed: isDigit) != nil,
            integerPart.count == 1 || integerPart.first != UInt8(ascii: "0")
        else { return nil }
        if let dotAt, withoutUnderscores(mantissa[(dotAt + 1)...], allowed: isDigit) == nil { return nil }
        if let exponentAt {
            var exponent = body[(exponentAt + 1)...]
            if let sign = exponent.first, sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") { exponent = exponent.dropFirst() }
            if withoutUnderscores(exponent, allowed: isDigit) == nil { return nil }
        }
        return Double(String(decoding: token.filter { $0 != UInt8(ascii: "_") }, as: UTF8.self))
    }

    /// The digits with their underscores removed; nil when empty, when a byte is not allowed,
    /// or when an underscore is not between two digits.
    static func withoutUnderscores(_ digits: ArraySlice<UInt8>, allowed: (UInt8) -> Bool) -> String? {
        guard let first = digits.first, let last = digits.last, first != UInt8(ascii: "_"), last != UInt8(ascii: "_") else { return nil }
        var previousUnderscore = false
        var kept: [UInt8] = []
        for byte in digits {
            if byte == UInt8(ascii: "_") {
                if previousUnderscore { return nil }
                previousUnderscore = true
                continue
            }
            guard allowed(byte) else { return nil }
            previousUnderscore = false
            kept.append(byte)
        }
        return String(decoding: kept, as: UTF8.self)
    }

    static func isDate(_ token: ArraySlice<UInt8>) -> Bool {
        let b = Array(token)
        guard b.count == 10, b[4] == UInt8(ascii: "-"), b[7] == UInt8(ascii: "-") else { return false }
        guard [0, 1, 2, 3, 5, 6, 8, 9].allSatisfy({ isDigit(b[$0]) }) else { return false }
        let month = Int(b[5] - 48) * 10 + Int(b[6] - 48), day = Int(b[8] - 48) * 10 + Int(b[9] - 48)
        return (1...12).contains(month) && (1...31).contains(day)
    }

    static func isTime(_ token: ArraySlice<UInt8>) -> Bool {
        let b = Array(token)
        guard b.count >= 8, b[2] == UInt8(ascii: ":"), b[5] == UInt8(ascii: ":"),
            [0, 1, 3, 4, 6, 7].allSatisfy({ isDigit(b[$0]) })
        else { return false }
        let hour = Int(b[0] - 48) * 10 + Int(b[1] - 48), minute = Int(b[3] - 48) * 10 + Int(b[4] - 48)
        let second = Int(b[6] - 48) * 10 + Int(b[7] - 48)
        guard hour < 24, minute < 60, second <= 60 else { return false }
        var rest = b[8...]
        if rest.first == UInt8(ascii: ".") {
            rest = rest.dropFirst()
            let digits = rest.prefix(while: isDigit)
            guard !digits.isEmpty else { return false }
            rest = rest.dropFirst(digits.count)
        }
        if rest.isEmpty { return true }
        if rest.count == 1 { return rest.first == UInt8(ascii: "Z") || rest.first == UInt8(ascii: "z") }
        let offset = Array(rest)
        return offset.count == 6 && (offset[0] == UInt8(ascii: "+") || offset[0] == UInt8(ascii: "-")) && offset[3] == UInt8(ascii: ":")
            && [1, 2, 4, 5].allSatisfy { isDigit(offset[$0]) }
    }

    static func isDateTime(_ token: ArraySlice<UInt8>) -> Bool {
        if isTime(token) { return true }
        guard token.count >= 10, isDate(token.prefix(10)) else { return false }
        if token.count == 10 { return true }
        let separator = token[token.startIndex + 10]
        guard separator == UInt8(ascii: "T") || separator == UInt8(ascii: "t") || separator == UInt8(ascii: " ") else { return false }
        return isTime(token.dropFirst(11))
    }
}
