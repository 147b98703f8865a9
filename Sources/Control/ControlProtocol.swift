import FoundationEssentials

/// The control protocol between xferwatchd and agentctl: JSON lines over a Unix stream socket.
/// The client sends one request line; the agent answers with one response line, followed, for
/// `alerts` and `flows`, by `count` lines each holding one alert or flow object exactly as the
/// alert file and `--flows` write them (and, with `follow`, every later alert as it is raised).
/// Both sides speak `ControlProtocol.version`; a request of another version gets an error.
public enum ControlProtocol {
    public static let version = 1
    public static let defaultSocket = "/run/xferwatch/agent.sock"
    /// A request longer than this is refused: requests are a few dozen bytes.
    public static let maximumRequestBytes = 4096
    /// The most `alerts --last` returns: what the agent keeps in memory.
    public static let recentAlertsKept = 500

    public static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }

    public static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return decoder
    }

    public static func decode<Value: Decodable>(_ type: Value.Type, from line: [UInt8]) throws -> Value {
        try decoder().decode(type, from: Data(line))
    }

    /// One line: the value's JSON and a newline.
    public static func line(_ value: some Encodable) -> [UInt8] {
        // Our types always encode; a failure here is a programming error worth a clear line.
        guard let data = try? encoder().encode(value) else { return Array("{\"protocol\":1,\"ok\":false,\"error\":\"cannot encode the response\"}\n".utf8) }
        return Array(data) + [UInt8(ascii: "\n")]
    }
}

public enum ControlCommand: String, Codable, Sendable, CaseIterable {
    case status, alerts, flows, reload, rules, metrics
}

public struct ControlRequest: Codable, Sendable, Equatable {
    public var `protocol`: Int
    public var command: ControlCommand
    /// alerts: how many of the most recent to send first.
    public var last: Int?
    /// alerts: keep the connection and send each new alert.
    public var follow: Bool?

    public init(command: ControlCommand, last: Int? = nil, follow: Bool? = nil) {
        self.protocol = ControlProtocol.version
        self.command = command
        self.last = last
        self.follow = follow
    }
}

public struct ControlResponse: Codable, Sendable {
    /// Why a request was refused.
    public enum Failure: String, Codable, Sendable {
        /// The peer is neither root nor in the control group.
        case denied
        /// Malformed request, unknown command, other protocol version.
        case badRequest = "bad_request"
        /// reload: the new configuration is invalid; the running one stays.
        case invalidConfiguration = "invalid_configuration"
        case busy
    }

    public var `protocol` = ControlProtocol.version
    public var ok: Bool
    public var error: String?
    public var failure: Failure?
    public var status: AgentStatus?
    /// alerts, flows: the object lines that follow.
    public var count: Int?
    public var reload: ReloadResult?
    public var rules: RulesReport?

    public init(ok: Bool = true, status: AgentStatus? = nil, count: Int? = nil, reload: ReloadResult? = nil, rules: RulesReport? = nil) {
        self.ok = ok
        self.status = status
        self.count = count
        self.reload = reload
        self.rules = rules
    }

    public static func refused(_ failure: Failure, _ error: String) -> ControlResponse {
        var response = ControlResponse(ok: false)
        response.failure = failure
        response.error = error
        return response
    }
}

/// What `reload` did: the sections applied now, those that need a restart (they keep running
/// as they were), and what is worth knowing (no YARA rule found: scanning off, as at start).
public struct ReloadResult: Codable, Sendable, Equatable {
    public var applied: [String]
    public var restartNeeded: [String]
    public var warnings: [String]

    public init(applied: [String], restartNeeded: [String], warnings: [String]) {
        (self.applied, self.restartNeeded, self.warnings) = (applied, restartNeeded, warnings)
    }
}

/// `rules`: every rule with its state and alert count, every exclusion with its hits.
public struct RulesReport: Codable, Sendable, Equatable {
    public struct Rule: Codable, Sendable, Equatable {
        public var id: String
        public var name: String
        public var enabled: Bool
        public var alerts: Int
        public init(id: String, name: String, enabled: Bool, alerts: Int) {
            (self.id, self.name, self.enabled, self.alerts) = (id, name, enabled, alerts)
        }
    }

    public struct Exclusion: Codable, Sendable, Equatable {
        public var name: String
        public var rules: [String]
        public var hits: Int
        public init(name: String, rules: [String], hits: Int) {
            (self.name, self.rules, self.hits) = (name, rules, hits)
        }
    }

    public var rules: [Rule]
    public var exclusions: [Exclusion]
    public var yaraRuleFiles: [String]
    public var yaraRules: Int

    public init(rules: [Rule], exclusions: [Exclusion], yaraRuleFiles: [String], yaraRules: Int) {
        (self.rules, self.exclusions, self.yaraRuleFiles, self.yaraRules) = (rules, exclusions, yaraRuleFiles, yaraRules)
    }
}
