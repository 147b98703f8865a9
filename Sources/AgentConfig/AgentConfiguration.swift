import Patterns
import Runtime

#if canImport(Glibc)
    import Glibc
#endif

/// One thing wrong with a configuration file, named by its key path (`audit.source`).
public struct ConfigProblem: Equatable, Sendable, CustomStringConvertible {
    public var keyPath: String
    public var reason: String

    public var description: String { keyPath.isEmpty ? reason : "\(keyPath): \(reason)" }
}

public struct ConfigError: Error, Sendable, CustomStringConvertible {
    public var file: String
    public var problems: [ConfigProblem]

    public var description: String {
        problems.map { "\(file): \($0)" }.joined(separator: "\n")
    }
}

/// Where audit records come from.
public enum AuditSourceMode: String, CaseIterable, Sendable {
    /// Multicast beside a running auditd or where auditd starts at boot, unicast otherwise;
    /// the audit socket is handed to a daemon that asks for it.
    case auto
    /// Become the audit daemon (the kernel's one unicast receiver).
    case unicast
    /// Read the read-only multicast group beside another audit daemon.
    case multicast
    /// Read auditd's plugin `string` format on standard input.
    case audisp
    /// Follow an audit log file across rotation.
    case file

    /// Read from the kernel over netlink (rules installed by the agent).
    public var isKernel: Bool { self == .auto || self == .unicast || self == .multicast }
}

public enum LogLevel: String, CaseIterable, Sendable, Comparable {
    case error, warning, info, debug

    private var rank: Int { Self.allCases.firstIndex(of: self)! }
    public static func < (a: LogLevel, b: LogLevel) -> Bool { a.rank < b.rank }
}

/// The typed contents of agent.conf. Every key has a default, so a missing key never fails.
public struct AgentConfiguration: Sendable, Equatable {
    public struct Agent: Sendable, Equatable {
        public var stateDirectory = "/var/lib/xferwatch"
        public var logLevel = LogLevel.info
        /// Where agentctl reaches the agent; mode 0660, owned by root and `controlGroup`.
        public var controlSocket = "/run/xferwatch/agent.sock"
        /// Besides root, members of this group may use the control socket.
        public var controlGroup = "adm"
        /// Who the agent becomes when started as root, once its root-only setup is done;
        /// "root" keeps root with every capability.
        public var user = "_xferwatch"
        /// Whether the agent stays root.
        public var keepsRoot: Bool { user == "root" }
    }

    public struct Audit: Sendable, Equatable {
        public var source = AuditSourceMode.auto
        public var logFile = "/var/log/audit/audit.log"
        public var ruleKey = "xferwatch"
        public var backlogLimit = 8192
        public var rateLimit = 0
        public var eventTimeoutMilliseconds = 3000
        public var maximumPendingEvents = 2048
        public var statusIntervalMilliseconds = 1000
        public var receiveBufferBytes = 8 << 20
        /// While records arrive back to back, how long they gather before the next read.
        public var batchWaitMilliseconds = 8
        /// `auto` on the multicast group: how long the audit socket must stay free (no daemon,
        /// and none starts at boot here) before the agent takes it.
        public var takeoverDelayMilliseconds = 10_000
        /// How often the agent checks that its rules are loaded and no rule hides what they ask
        /// for (besides at once after rule changes).
        public var ruleCheckIntervalMilliseconds = 5000
        /// Unconnected datagrams a second, none a transfer, past which a process's sendto and
        /// sendmsg stop being audited (as the audit daemon only); 0: every one is audited.
        public var datagramFloodRate = 1000
    }

    public struct Host: Sendable, Equatable {
        /// Process records kept; the least recently used go first when full.
        public var maximumProcesses = 16384
        /// How often records of exited processes are dropped.
        public var pruneIntervalMilliseconds = 2000
    }

    public struct Flows: Sendable, Equatable {
        public var unresolvedWaitMilliseconds = 5000
        public var pollIntervalMilliseconds = 2000
        public var dataLingerMilliseconds = 10_000
        public var maximumOpenFlows = 4096
        /// How long the sock_diag sockets of another network namespace stay open once no flow
        /// uses it (a socket keeps a dead container's namespace alive).
        public var namespaceIdleMilliseconds = 60_000
        /// Socket closes a second in one network namespace past which they are not heard for
        /// `closeFloodPauseMilliseconds` (their notifications cost every close); 0: always heard.
        public var closeFloodRate = 10_000
        public var closeFloodPauseMilliseconds = 5000
    }

    /// `[inspection]`: the packet tap that identifies FTP, SSH, TFTP and SMB by their first bytes.
    public struct Inspection: Sendable, Equatable {
        public var enabled = true
        /// Interfaces to capture on; "any" is every interface of the host's network namespace.
        public var interfaces = ["any"]
        /// Bytes kept of each packet the filter passes: headers and the first line of payload.
        public var snapLength = 256
        /// The kernel's capture buffer per interface.
        public var bufferBytes = 2 << 20
    }

    /// `[rules.yara]`: scanning executed binaries and listening servers with libyara.
    public struct Yara: Sendable, Equatable {
        public var enabled = true
        /// Globs of rule files, compiled at start (a file that does not compile is skipped).
        public var paths = ["/etc/xferwatch/yara/*.yar"]
        /// Larger files are not scanned (counted).
        public var maximumFileSize = 64 << 20
        /// Also scan the local files a transfer command line names (what it may upload).
        public var scanUploadedFiles = false
        /// Targets waiting for the scanning thread; more are dropped (counted).
        public var queueSize = 1024
    }

    public var agent = Agent()
    public var audit = Audit()
    public var host = Host()
    public var flows = Flows()
    public var detection = Detection()
    public var network = Network()
    public var output = Output()
    public var exclusions: [Exclusion] = []
    public var yara = Yara()
    public var inspection = Inspection()

    public init() {}

    /// Reads and validates a file; every problem found is reported, not just the first.
    public static func load(path: String) throws(ConfigError) -> AgentConfiguration {
        guard let text = readTextFile(path) else {
            throw ConfigError(file: path, problems: [ConfigProblem(keyPath: "", reason: "cannot read the file: \(String(cString: strerror(errno)))")])
        }
        return try parse(text, file: path)
    }

    public static func parse(_ text: String, file: String = "agent.conf") throws(ConfigError) -> AgentConfiguration {
        let root: [String: TOMLValue]
        do {
            root = try TOML.parse(text)
        } catch {
            throw ConfigError(file: file, problems: [ConfigProblem(keyPath: "", reason: error.description)])
        }

        let (config, reader) = read(root)
        if !reader.problems.isEmpty { throw ConfigError(file: file, problems: reader.problems) }
        return config
    }

    /// Every key the reader knows, as `section.key` (`rules.yara.paths`, `exclusions.user`),
    /// in reading order: what the shipped agent.conf and agent.conf(5) must document.
    static var keyPaths: [String] {
        // One exclusion, so that its keys are read too.
        read(["exclusions": .array([.table([:])])]).reader.declared.map { $0.split(separator: "[0]").joined() }
    }

    private static func read(_ root: [String: TOMLValue]) -> (config: AgentConfiguration, reader: TableReader) {
        var config = AgentConfiguration()
        var reader = TableReader(table: root, path: "")

        var agent = reader.section("agent")
        config.agent.stateDirectory = agent.string("state_dir", default: config.agent.stateDirectory, absolutePath: true)
        config.agent.logLevel = agent.choice("log_level", default: config.agent.logLevel)
        config.agent.controlSocket = agent.string("control_socket", default: config.agent.controlSocket, absolutePath: true, maximumLength: 107)
        config.agent.controlGroup = agent.string("control_group", default: config.agent.controlGroup, maximumLength: 64)
        config.agent.user = agent.string("user", default: config.agent.user, maximumLength: 64)
        reader.absorb(agent)

        var audit = reader.section("audit")
        config.audit.source = audit.choice("source", default: config.audit.source)
        config.audit.logFile = audit.string("log_file", default: config.audit.logFile, absolutePath: true)
        config.audit.ruleKey = audit.string("rule_key", default: config.audit.ruleKey, maximumLength: 31)
        config.audit.backlogLimit = audit.integer("backlog_limit", default: config.audit.backlogLimit, in: 64...1 << 20)
        config.audit.rateLimit = audit.integer("rate_limit", default: config.audit.rateLimit, in: 0...1_000_000)
        config.audit.eventTimeoutMilliseconds = audit.integer("event_timeout_ms", default: config.audit.eventTimeoutMilliseconds, in: 100...60_000)
        config.audit.maximumPendingEvents = audit.integer("max_pending_events", default: config.audit.maximumPendingEvents, in: 64...1 << 20)
        config.audit.statusIntervalMilliseconds = audit.integer("status_interval_ms", default: config.audit.statusIntervalMilliseconds, in: 100...60_000)
        config.audit.receiveBufferBytes = audit.integer("receive_buffer_bytes", default: config.audit.receiveBufferBytes, in: 65_536...1 << 30)
        config.audit.batchWaitMilliseconds = audit.integer("batch_wait_ms", default: config.audit.batchWaitMilliseconds, in: 0...50)
        config.audit.takeoverDelayMilliseconds = audit.integer(
            "takeover_delay_ms", default: config.audit.takeoverDelayMilliseconds, in: 100...3_600_000)
        config.audit.ruleCheckIntervalMilliseconds = audit.integer(
            "rule_check_interval_ms", default: config.audit.ruleCheckIntervalMilliseconds, in: 100...600_000)
        config.audit.datagramFloodRate = audit.integer("datagram_flood_rate", default: config.audit.datagramFloodRate, in: 0...10_000_000)
        reader.absorb(audit)

        var host = reader.section("host")
        config.host.maximumProcesses = host.integer("max_processes", default: config.host.maximumProcesses, in: 256...1 << 22)
        config.host.pruneIntervalMilliseconds = host.integer("prune_interval_ms", default: config.host.pruneIntervalMilliseconds, in: 100...600_000)
        reader.absorb(host)

        var flows = reader.section("flows")
        config.flows.unresolvedWaitMilliseconds = flows.integer("unresolved_wait_ms", default: config.flows.unresolvedWaitMilliseconds, in: 100...600_000)
        config.flows.pollIntervalMilliseconds = flows.integer("poll_interval_ms", default: config.flows.pollIntervalMilliseconds, in: 100...600_000)
        config.flows.dataLingerMilliseconds = flows.integer("data_linger_ms", default: config.flows.dataLingerMilliseconds, in: 0...600_000)
        config.flows.maximumOpenFlows = flows.integer("max_open_flows", default: config.flows.maximumOpenFlows, in: 16...1 << 20)
        config.flows.namespaceIdleMilliseconds = flows.integer(
            "namespace_idle_ms", default: config.flows.namespaceIdleMilliseconds, in: 1000...3_600_000)
        config.flows.closeFloodRate = flows.integer("close_flood_rate", default: config.flows.closeFloodRate, in: 0...10_000_000)
        config.flows.closeFloodPauseMilliseconds = flows.integer(
            "close_flood_pause_ms", default: config.flows.closeFloodPauseMilliseconds, in: 250...600_000)
        reader.absorb(flows)

        config.readDetection(&reader)
        config.readOutput(&reader)

        var inspection = reader.section("inspection")
        config.inspection.enabled = inspection.bool("enabled", default: config.inspection.enabled)
        config.inspection.interfaces = inspection.strings("interfaces", default: config.inspection.interfaces)
        for (index, name) in config.inspection.interfaces.enumerated()
        where name.isEmpty || name.utf8.count > 15 || name.contains("/") || name.contains(" ") {
            inspection.problem("interfaces[\(index)]", "\"\(name)\" is not an interface name")
        }
        if config.inspection.interfaces.isEmpty { inspection.problem("interfaces", "expected at least one interface (\"any\" for all)") }
        config.inspection.snapLength = inspection.integer("snap_length", default: config.inspection.snapLength, in: 96...65_535)
        config.inspection.bufferBytes = inspection.integer("buffer_bytes", default: config.inspection.bufferBytes, in: 65_536...1 << 30)
        reader.absorb(inspection)

        var rules = reader.section("rules")
        var yara = rules.section("yara")
        config.yara.enabled = yara.bool("enabled", default: config.yara.enabled)
        config.yara.paths = yara.strings("paths", default: config.yara.paths)
        for (index, path) in config.yara.paths.enumerated() where !path.hasPrefix("/") {
            yara.problem("paths[\(index)]", "expected an absolute path or glob, found \"\(path)\"")
        }
        config.yara.maximumFileSize = yara.integer("max_file_size", default: config.yara.maximumFileSize, in: 1...1 << 40)
        config.yara.scanUploadedFiles = yara.bool("scan_uploaded_files", default: config.yara.scanUploadedFiles)
        config.yara.queueSize = yara.integer("queue_size", default: config.yara.queueSize, in: 1...1 << 20)
        rules.absorb(yara)
        reader.absorb(rules)

        reader.finish()
        return (config, reader)
    }
}

/// Reads one table: each accessor both declares a key (so the rest are reported as unknown)
/// and checks its type and value, recording problems instead of stopping at the first.
struct TableReader {
    let table: [String: TOMLValue]?
    let path: String
    var known: Set<String> = []
    /// Keys given with a non-empty value (an exclusion must have one besides its name).
    var conditionKeys: Set<String> = []
    var problems: [ConfigProblem] = []
    /// Every key path asked for, here and in absorbed sub-readers.
    private(set) var declared: [String] = []

    init(table: [String: TOMLValue]?, path: String) {
        self.table = table
        self.path = path
    }

    func keyPath(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    mutating func problem(_ key: String, _ reason: String) {
        problems.append(ConfigProblem(keyPath: key.isEmpty ? path : keyPath(key), reason: reason))
    }

    /// A key this reader knows (so it is not reported as unknown) that holds a value.
    mutating func declare(_ key: String) {
        known.insert(key)
        declared.append(keyPath(key))
    }

    mutating func section(_ key: String) -> TableReader {
        known.insert(key)
        guard let value = table?[key] else { return TableReader(table: nil, path: keyPath(key)) }
        guard let section = value.table else {
            problems.append(ConfigProblem(keyPath: keyPath(key), reason: "expected a table, found \(value.typeName)"))
            return TableReader(table: nil, path: keyPath(key))
        }
        return TableReader(table: section, path: keyPath(key))
    }

    /// Takes a finished sub-reader's problems (after checking its unknown keys).
    mutating func absorb(_ child: TableReader) {
        var child = child
        child.finish()
        problems += child.problems
        declared += child.declared
    }

    mutating func finish() {
        guard let table else { return }
        for key in table.keys.sorted() where !known.contains(key) {
            problems.append(ConfigProblem(keyPath: keyPath(key), reason: "unknown key"))
        }
        known.formUnion(table.keys)
    }

    /// The value of `key` when it has the type `extract` takes; a problem when it has another.
    private mutating func value<T>(_ key: String, _ extract: (TOMLValue) -> T?, _ expected: String) -> T? {
        declare(key)
        guard let value = table?[key] else { return nil }
        guard let typed = extract(value) else {
            problems.append(ConfigProblem(keyPath: keyPath(key), reason: "expected \(expected), found \(value.typeName)"))
            return nil
        }
        return typed
    }

    mutating func string(_ key: String, default fallback: String, absolutePath: Bool = false, maximumLength: Int = 4096) -> String {
        guard let text = value(key, \.string, "a string") else { return fallback }
        conditionKeys.insert(key)
        if absolutePath && !text.hasPrefix("/") {
            problems.append(ConfigProblem(keyPath: keyPath(key), reason: "expected an absolute path, found \"\(text)\""))
            return fallback
        }
        if text.isEmpty || text.utf8.count > maximumLength {
            problems.append(ConfigProblem(keyPath: keyPath(key), reason: "expected 1 to \(maximumLength) characters"))
            return fallback
        }
        return text
    }

    mutating func integer(_ key: String, default fallback: Int, in range: ClosedRange<Int>) -> Int {
        guard let number = value(key, \.integer, "an integer") else { return fallback }
        guard range.contains(number) else {
            problems.append(ConfigProblem(keyPath: keyPath(key), reason: "\(number) is outside \(range.lowerBound)...\(range.upperBound)"))
            return fallback
        }
        return number
    }

    mutating func bool(_ key: String, default fallback: Bool) -> Bool {
        value(key, \.boolean, "true or false") ?? fallback
    }

    mutating func choice<T: RawRepresentable & CaseIterable>(_ key: String, default fallback: T) -> T where T.RawValue == String {
        guard let text = value(key, \.string, "a string") else { return fallback }
        guard let choice = T(rawValue: text) else {
            let allowed = T.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")
            problems.append(ConfigProblem(keyPath: keyPath(key), reason: "\"\(text)\" is not one of \(allowed)"))
            return fallback
        }
        return choice
    }
}
