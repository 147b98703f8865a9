import CPCRE2

/// A PCRE2 regular expression, compiled once (JIT when the CPU allows) and matched against
/// bytes. Patterns are PCRE-compatible as written in rules elsewhere (Splunk, Sigma): no
/// translation. Not thread-safe: each pattern owns one match block, used by one event loop.
public final class Pattern: @unchecked Sendable, CustomStringConvertible {
    public let source: String
    /// Whether the JIT compiled it (it falls back to the interpreter when JIT is unavailable).
    public let isJIT: Bool
    private let code: OpaquePointer
    private let matchData: OpaquePointer
    private let context: OpaquePointer
    /// Matches that hit the backtracking limit: counted and treated as no match.
    public private(set) var limitErrors = 0

    /// Bounds the work of one match: a pathological pattern must not stall the agent.
    static let matchLimit: UInt32 = 1_000_000

    public init(_ source: String) throws(PatternError) {
        let compiled = try Self.compile(source)
        code = compiled
        isJIT = pcre2_jit_compile_8(compiled, PCRE2_JIT_COMPLETE) == 0
        matchData = pcre2_match_data_create_from_pattern_8(compiled, nil)
        context = pcre2_match_context_create_8(nil)
        pcre2_set_match_limit_8(context, Self.matchLimit)
        self.source = source
    }

    /// Throws what `init` would for `source`, without keeping it or JIT-compiling it: a
    /// configuration check, which the JIT's work would double at every start.
    public static func validate(_ source: String) throws(PatternError) {
        pcre2_code_free_8(try compile(source))
    }

    private static func compile(_ source: String) throws(PatternError) -> OpaquePointer {
        var errorCode: Int32 = 0
        var errorOffset = 0
        let compiled = source.utf8CString.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: UInt8.self) {
                pcre2_compile_8($0.baseAddress, $0.count - 1, 0, &errorCode, &errorOffset, nil)
            }
        }
        guard let compiled else {
            throw PatternError(pattern: source, offset: errorOffset, message: Self.message(errorCode))
        }
        return compiled
    }

    deinit {
        pcre2_match_context_free_8(context)
        pcre2_match_data_free_8(matchData)
        pcre2_code_free_8(code)
    }

    public var description: String { source }

    public func matches(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        // A zero-length buffer may have no base address; PCRE2 wants a valid pointer.
        let empty: UInt8 = 0
        let result = withUnsafePointer(to: empty) { fallback in
            pcre2_match_8(code, bytes.baseAddress ?? fallback, bytes.count, 0, 0, matchData, context)
        }
        if result >= 0 { return true }
        if result != PCRE2_ERROR_NOMATCH { limitErrors += 1 }
        return false
    }

    public func matches(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { matches($0) }
    }

    static func message(_ code: Int32) -> String {
        var buffer = [UInt8](repeating: 0, count: 256)
        let length = pcre2_get_error_message_8(code, &buffer, buffer.count)
        return length > 0 ? String(decoding: buffer[..<Int(length)], as: UTF8.self) : "error \(code)"
    }
}

public struct PatternError: Error, Sendable, CustomStringConvertible {
    public let pattern: String
    public let offset: Int
    public let message: String

    public var description: String { "\(message) at offset \(offset) of \(pattern)" }
}
