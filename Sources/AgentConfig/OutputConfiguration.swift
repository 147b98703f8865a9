/// `[output.file]` and `[output.syslog]` of agent.conf: where alerts go.
extension AgentConfiguration {
    public struct Output: Sendable, Equatable {
        public var file = FileOutput()
        public var syslog = SyslogOutput()
        public var metrics = MetricsOutput()
    }

    /// The agent's counters in the Prometheus text format, written atomically to a file (for
    /// node_exporter's textfile collector) every `intervalSeconds`.
    public struct MetricsOutput: Sendable, Equatable {
        public var enabled = false
        public var path = "/var/lib/prometheus/node-exporter/xferwatch.prom"
        public var intervalSeconds = 15
    }

    /// Alerts as JSON lines in a local file, rotated by size.
    public struct FileOutput: Sendable, Equatable {
        public var enabled = true
        public var path = "/var/log/xferwatch/alerts.jsonl"
        /// The file is rotated before it would pass this size; 0 leaves rotation to logrotate.
        public var maximumBytes = 100 << 20
        /// Rotated files kept: path.1 (newest) ... path.N.
        public var generations = 5

        public init() {}
    }

    /// Alerts forwarded to a syslog receiver through a durable spool in state_dir.
    public struct SyslogOutput: Sendable, Equatable {
        public var enabled = true
        public var address = SyslogAddress(transport: .unix, host: "", port: 0, path: "/dev/log")
        public var format = SyslogFormat.rfc5424
        public var payload = SyslogPayload.json
        public var facility = SyslogFacility.authpriv
        /// Stream transports: RFC 6587 octet counting, or one message per line.
        public var framing = SyslogFraming.octetCounting
        public var appName = "xferwatch"
        /// No message is longer: longer alerts are shortened and marked as truncated. Below the
        /// 8,096 bytes rsyslog takes whole by default (on udp, tcp and relp alike).
        public var maximumMessageBytes = 8000
        /// TLS: the CA bundle the receiver's certificate must chain to (system store when empty).
        public var tlsCAFile = ""
        /// TLS client authentication: both or neither.
        public var tlsCertificateFile = ""
        public var tlsKeyFile = ""
        /// The name the receiver's certificate must carry (the address's host when empty).
        public var tlsServerName = ""
        public var tlsVerifyHostname = true
        /// The spool's bound on disk; when full, the oldest alerts are dropped (counted).
        public var spoolMaximumBytes = 64 << 20
        public var retryInitialMilliseconds = 1000
        public var retryMaximumMilliseconds = 60_000
    }

    mutating func readOutput(_ reader: inout TableReader) {
        var section = reader.section("output")

        var file = section.section("file")
        output.file.enabled = file.bool("enabled", default: output.file.enabled)
        if let path = file.optionalString("path") {
            // "" was how earlier versions turned the file off; it still does.
            if path.isEmpty {
                output.file.enabled = false
            } else if path.hasPrefix("/") {
                output.file.path = path
            } else {
                file.problem("path", "expected an absolute path, found \"\(path)\"")
            }
        }
        output.file.maximumBytes = file.integer("max_size", default: output.file.maximumBytes, in: 0...1 << 40)
        output.file.generations = file.integer("generations", default: output.file.generations, in: 1...100)
        section.absorb(file)

        var metrics = section.section("metrics")
        output.metrics.enabled = metrics.bool("enabled", default: output.metrics.enabled)
        output.metrics.path = metrics.string("path", default: output.metrics.path, absolutePath: true)
        output.metrics.intervalSeconds = metrics.integer("interval_seconds", default: output.metrics.intervalSeconds, in: 1...3600)
        section.absorb(metrics)

        var syslog = section.section("syslog")
        output.syslog.enabled = syslog.bool("enabled", default: output.syslog.enabled)
        if let text = syslog.optionalString("address") {
            switch SyslogAddress.parse(text) {
            case .success(let address): output.syslog.address = address
            case .failure(let problem): syslog.problem("address", problem.reason)
            }
        }
        output.syslog.format = syslog.choice("format", default: output.syslog.format)
        output.syslog.payload = syslog.choice("payload", default: output.syslog.payload)
        output.syslog.facility = syslog.choice("facility", default: output.syslog.facility)
        output.syslog.framing = syslog.choice("framing", default: output.syslog.framing)
        output.syslog.appName = syslog.string("app_name", default: output.syslog.appName, maximumLength: 48)
        if !output.syslog.appName.utf8.allSatisfy({ (33...126).contains($0) }) {
            syslog.problem("app_name", "expected printable ASCII without spaces (RFC 5424 APP-NAME)")
            output.syslog.appName = "xferwatch"
        }
        output.syslog.maximumMessageBytes = syslog.integer("max_message_size", default: output.syslog.maximumMessageBytes, in: 480...65_000)
        output.syslog.tlsCAFile = syslog.optionalPath("tls_ca_file") ?? ""
        output.syslog.tlsCertificateFile = syslog.optionalPath("tls_cert_file") ?? ""
        output.syslog.tlsKeyFile = syslog.optionalPath("tls_key_file") ?? ""
        if output.syslog.tlsCertificateFile.isEmpty != output.syslog.tlsKeyFile.isEmpty {
            syslog.problem("tls_key_file", "tls_cert_file and tls_key_file go together")
        }
        output.syslog.tlsServerName = syslog.optionalString("tls_server_name") ?? ""
        output.syslog.tlsVerifyHostname = syslog.bool("tls_verify_hostname", default: output.syslog.tlsVerifyHostname)
        output.syslog.spoolMaximumBytes = syslog.integer("spool_max_bytes", default: output.syslog.spoolMaximumBytes, in: 16_384...1 << 40)
        output.syslog.retryInitialMilliseconds = syslog.integer("retry_initial_ms", default: output.syslog.retryInitialMilliseconds, in: 10...600_000)
        output.syslog.retryMaximumMilliseconds = syslog.integer("retry_max_ms", default: output.syslog.retryMaximumMilliseconds, in: 10...3_600_000)
        if output.syslog.retryMaximumMilliseconds < output.syslog.retryInitialMilliseconds {
            syslog.problem("retry_max_ms", "must not be below retry_initial_ms")
        }
        section.absorb(syslog)

        reader.absorb(section)
    }
}

public enum SyslogFormat: String, CaseIterable, Sendable { case rfc5424, rfc3164 }
public enum SyslogPayload: String, CaseIterable, Sendable { case json, cef }
public enum SyslogFraming: String, CaseIterable, Sendable {
    case octetCounting = "octet-counting"
    case lf
}

public enum SyslogTransport: String, CaseIterable, Sendable {
    case unix, udp, tcp, tls
    /// RELP (rsyslog's Reliable Event Logging Protocol), plain and over TLS.
    case relp
    case relpTLS = "relp+tls"

    public var isStream: Bool { self != .unix && self != .udp }
    public var usesTLS: Bool { self == .tls || self == .relpTLS }
    public var isRELP: Bool { self == .relp || self == .relpTLS }
    /// RELP has no assigned port; 2514 is the one rsyslog's documentation uses.
    var defaultPort: UInt16 {
        switch self {
        case .tls: 6514
        case .relp, .relpTLS: 2514
        case .unix, .udp, .tcp: 514
        }
    }
}

/// RFC 5424 facility names and codes.
public enum SyslogFacility: String, CaseIterable, Sendable {
    case kern, user, mail, daemon, auth, syslog, lpr, news, uucp, cron, authpriv, ftp
    case local0, local1, local2, local3, local4, local5, local6, local7

    public var code: Int {
        switch self {
        case .kern: 0
        case .user: 1
        case .mail: 2
        case .daemon: 3
        case .auth: 4
        case .syslog: 5
        case .lpr: 6
        case .news: 7
        case .uucp: 8
        case .cron: 9
        case .authpriv: 10
        case .ftp: 11
        case .local0, .local1, .local2, .local3, .local4, .local5, .local6, .local7:
            16 + Self.allCases.firstIndex(of: self)! - Self.allCases.firstIndex(of: .local0)!
        }
    }
}

/// `unix:///dev/log`, `udp://host:port`, `tcp://host:port`, `tls://host:port`, `relp://host:port`,
/// `relp+tls://host:port` (IPv6 hosts in brackets).
public struct SyslogAddress: Equatable, Sendable, CustomStringConvertible {
    public var transport: SyslogTransport
    public var host: String
    public var port: UInt16
    public var path: String

    public struct Problem: Error, Equatable {
        public var reason: String
    }

    public var description: String {
        if transport == .unix { return "unix://\(path)" }
        return "\(transport.rawValue)://\(host.contains(":") ? "[\(host)]" : host):\(port)"
    }

    public static func parse(_ text: String) -> Result<SyslogAddress, Problem> {
        guard let separator = text.firstRange(of: "://"), let transport = SyslogTransport(rawValue: String(text[..<separator.lowerBound])) else {
            return .failure(
                Problem(
                    reason:
                        "expected unix:///path, udp://host:port, tcp://host:port, tls://host:port, relp://host:port or relp+tls://host:port, found \"\(text)\"")
            )
        }
        let rest = String(text[separator.upperBound...])
        if transport == .unix {
            guard rest.hasPrefix("/") else { return .failure(Problem(reason: "a unix address needs an absolute path, found \"\(text)\"")) }
            return .success(SyslogAddress(transport: .unix, host: "", port: 0, path: rest))
        }
        var host = rest
        var portText: Substring?
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { return .failure(Problem(reason: "unclosed [ in \"\(text)\"")) }
            host = String(rest[rest.index(after: rest.startIndex)..<close])
            let after = rest[rest.index(after: close)...]
            if after.hasPrefix(":") {
                portText = after.dropFirst()
            } else if !after.isEmpty {
                return .failure(Problem(reason: "unexpected \"\(after)\" after the host in \"\(text)\""))
            }
        } else if let colon = rest.lastIndex(of: ":") {
            host = String(rest[..<colon])
            portText = rest[rest.index(after: colon)...]
        }
        guard !host.isEmpty, !host.contains("/") else { return .failure(Problem(reason: "no host in \"\(text)\"")) }
        var port = transport.defaultPort
        if let portText {
            guard let number = UInt16(portText), number > 0 else { return .failure(Problem(reason: "\"\(portText)\" is not a port (1-65535)")) }
            port = number
        }
        return .success(SyslogAddress(transport: transport, host: host, port: port, path: ""))
    }
}

extension TableReader {
    /// A string that, when given, must be an absolute path.
    mutating func optionalPath(_ key: String) -> String? {
        guard let text = optionalString(key) else { return nil }
        guard text.hasPrefix("/") else {
            problem(key, "expected an absolute path, found \"\(text)\"")
            return nil
        }
        return text
    }
}
