import CYara

#if canImport(Glibc)
    import Glibc
#endif

/// A rule file libyara refused, with where and why.
public struct RuleFileError: Error, Sendable, CustomStringConvertible {
    public let file: String
    public let line: Int
    public let message: String
    public var description: String { "\(file):\(line): \(message)" }
}

/// One YARA rule that matched a file, with its meta as written in the rule.
public struct YaraMatch: Sendable {
    public enum MetaValue: Sendable, Equatable {
        case string(String)
        case integer(Int64)
        case boolean(Bool)
    }

    public let rule: String
    public let namespace: String
    public let tags: [String]
    /// In the rule's order; a key may repeat (hash1, hash2 are separate keys, but nothing forbids repeats).
    public let meta: [(key: String, value: MetaValue)]

    public func meta(_ key: String) -> MetaValue? { meta.first { $0.key == key }?.value }

    public func metaString(_ key: String) -> String? {
        switch meta(key) {
        case .string(let text): text
        case .integer(let number): String(number)
        case .boolean(let flag): String(flag)
        case nil: nil
        }
    }
}

/// Rules compiled by libyara from the files a set of globs names. A file that does not compile
/// is reported with its line and left out; the others still load. Each file gets its own
/// namespace, so two files may use the same rule name.
public final class YaraRules: @unchecked Sendable {
    public let files: [String]
    public let ruleCount: Int
    private let rules: UnsafeMutablePointer<YR_RULES>

    /// libyara's global state, set up once per process.
    private static let initialized: Bool = yr_initialize() == ERROR_SUCCESS

    /// Compiles every file the globs name, in sorted order. Returns nil rules when none loaded.
    public static func compile(globs: [String]) -> (rules: YaraRules?, errors: [RuleFileError]) {
        var errors: [RuleFileError] = []
        guard initialized else {
            return (nil, [RuleFileError(file: "-", line: 0, message: "libyara failed to initialise")])
        }
        var good: [String] = []
        for file in expand(globs) {
            let fileErrors = compileErrors(of: file)
            if fileErrors.isEmpty { good.append(file) } else { errors += fileErrors }
        }
        guard !good.isEmpty else { return (nil, errors) }
        var compiler: UnsafeMutablePointer<YR_COMPILER>?
        guard yr_compiler_create(&compiler) == ERROR_SUCCESS, let compiler else {
            return (nil, errors + [RuleFileError(file: "-", line: 0, message: "libyara cannot create a compiler")])
        }
        defer { yr_compiler_destroy(compiler) }
        let failures = good.reduce(0) { $0 + add($1, to: compiler) }
        var compiled: UnsafeMutablePointer<YR_RULES>?
        guard failures == 0, yr_compiler_get_rules(compiler, &compiled) == ERROR_SUCCESS, let compiled else {
            return (nil, errors + [RuleFileError(file: good.joined(separator: ", "), line: 0, message: "the rule files compile alone but not together")])
        }
        // The compiler's arena is megabytes whatever the rules; the same rules loaded back take
        // what they need. Should that fail (memory), the compiled rules serve as well.
        var compacted: UnsafeMutablePointer<YR_RULES>?
        let rules: UnsafeMutablePointer<YR_RULES>
        if xw_yara_rules_compacted(compiled, &compacted) == ERROR_SUCCESS, let compacted {
            yr_rules_destroy(compiled)
            rules = compacted
        } else {
            rules = compiled
        }
        return (YaraRules(files: good, ruleCount: Int(xw_yara_rule_count(rules)), rules: rules), errors)
    }

    private init(files: [String], ruleCount: Int, rules: UnsafeMutablePointer<YR_RULES>) {
        self.files = files
        self.ruleCount = ruleCount
        self.rules = rules
    }

    deinit { yr_rules_destroy(rules) }

    /// The errors libyara reports for `file` compiled alone (empty when it compiles).
    private static func compileErrors(of file: String) -> [RuleFileError] {
        var compiler: UnsafeMutablePointer<YR_COMPILER>?
        guard yr_compiler_create(&compiler) == ERROR_SUCCESS, let compiler else {
            return [RuleFileError(file: file, line: 0, message: "libyara cannot create a compiler")]
        }
        defer { yr_compiler_destroy(compiler) }
        let collector = ErrorCollector()
        let unmanaged = Unmanaged.passRetained(collector)
        defer { unmanaged.release() }
        yr_compiler_set_callback(
            compiler,
            { level, file, line, _, message, context in
                guard level == YARA_ERROR_LEVEL_ERROR, let context else { return }
                let collector = Unmanaged<ErrorCollector>.fromOpaque(context).takeUnretainedValue()
                collector.errors.append(
                    RuleFileError(
                        file: file.map { String(cString: $0) } ?? "-", line: Int(line),
                        message: message.map { String(cString: $0) } ?? "error"))
            }, unmanaged.toOpaque())
        if add(file, to: compiler) > 0 && collector.errors.isEmpty {
            collector.errors.append(RuleFileError(file: file, line: 0, message: "cannot read the rule file"))
        }
        return collector.errors
    }

    /// Adds one file in its own namespace; the number of errors.
    private static func add(_ file: String, to compiler: UnsafeMutablePointer<YR_COMPILER>) -> Int {
        let fd = open(file, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return 1 }
        defer { close(fd) }
        return Int(yr_compiler_add_fd(compiler, fd, file, file))
    }

    private final class ErrorCollector { var errors: [RuleFileError] = [] }

    /// glob(3) over each pattern; a plain path that does not exist stays out.
    static func expand(_ globs: [String]) -> [String] {
        var found: [String] = []
        for pattern in globs {
            var result = glob_t()
            defer { globfree(&result) }
            guard glob(pattern, 0, nil, &result) == 0 else { continue }
            for index in 0..<Int(result.gl_pathc) {
                if let path = result.gl_pathv[index].map({ String(cString: $0) }), !found.contains(path) { found.append(path) }
            }
        }
        return found
    }

    public enum ScanError: Error, Sendable, CustomStringConvertible {
        case timeout
        case libyara(Int32)
        public var description: String {
            switch self {
            case .timeout: "scan timed out"
            case .libyara(let code): "libyara error \(code)"
            }
        }
    }

    /// Scans read a file a window at a time: the agent's resident size grows by one window
    /// during a scan, not by the file (a 33 MB binary took it from 31 to 63 MB). A string up to
    /// `scanOverlap` long is found wherever it lies; modules see the first window of a larger file.
    public static let scanWindow: UInt64 = 8 << 20
    public static let scanOverlap: UInt64 = 64 << 10

    /// The rules matching the open regular file `fd` of `size` bytes. Fast mode: each string's
    /// first match is enough.
    public func scan(fd: Int32, size: UInt64, timeoutSeconds: Int32 = 10) throws(ScanError) -> [YaraMatch] {
        final class Matches { var list: [YaraMatch] = [] }
        let matches = Matches()
        let unmanaged = Unmanaged.passRetained(matches)
        defer { unmanaged.release() }
        let status = xw_yara_scan_windows(
            rules, fd, size, Self.scanWindow, Self.scanOverlap, SCAN_FLAGS_FAST_MODE,
            { _, message, data, context in
                if message == CALLBACK_MSG_RULE_MATCHING, let data, let context {
                    let rule = data.assumingMemoryBound(to: YR_RULE.self)
                    Unmanaged<Matches>.fromOpaque(context).takeUnretainedValue().list.append(YaraRules.match(rule))
                }
                return CALLBACK_CONTINUE
            }, unmanaged.toOpaque(), timeoutSeconds)
        switch status {
        case ERROR_SUCCESS: return matches.list
        case ERROR_SCAN_TIMEOUT: throw .timeout
        default: throw .libyara(status)
        }
    }

    private static func match(_ rule: UnsafePointer<YR_RULE>) -> YaraMatch {
        var tags: [String] = []
        if var tag = xw_yara_rule_tags(rule) {
            while tag.pointee != 0 {
                let text = String(cString: tag)
                tags.append(text)
                tag += text.utf8.count + 1
            }
        }
        var meta: [(key: String, value: YaraMatch.MetaValue)] = []
        if var entry = xw_yara_rule_metas(rule) {
            while true {
                let key = String(cString: xw_yara_meta_identifier(entry))
                switch entry.pointee.type {
                case META_TYPE_INTEGER: meta.append((key, .integer(entry.pointee.integer)))
                case META_TYPE_BOOLEAN: meta.append((key, .boolean(entry.pointee.integer != 0)))
                default: meta.append((key, .string(xw_yara_meta_string(entry).map { String(cString: $0) } ?? "")))
                }
                if xw_yara_meta_is_last(entry) != 0 { break }
                entry += 1
            }
        }
        return YaraMatch(
            rule: String(cString: xw_yara_rule_identifier(rule)), namespace: String(cString: xw_yara_rule_namespace(rule)),
            tags: tags, meta: meta)
    }
}
