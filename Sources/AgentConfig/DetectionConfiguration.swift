import Patterns

/// `[detection]`, `[network]` and `[[exclusions]]` of agent.conf.
extension AgentConfiguration {
    public struct Detection: Sendable, Equatable {
        /// Rule ids turned off.
        public var disabledRules: Set<RuleID> = []
        /// an1170.large_transfer: bytes sent in one flow (FTP sessions with their data).
        public var transferSizeThreshold = 10 << 20
        /// an1169.outbound_ratio: the outbound share of a flow's bytes, and the size below which it is ignored.
        public var dataFlowDirectionThreshold = 0.9
        public var outboundMinimumBytes = 1 << 20
        /// A plain SSH session (no scp or sftp) is a transfer once it carried this many bytes
        /// one way: a remote command's output or a login's keystrokes stay below it.
        public var sshTransferMinimumBytes = 64 << 10
        /// an1170.command_line: PCRE patterns on the command line (arguments joined by spaces).
        public var commandLinePatterns = [
            #"(?:^|/)(?:scp|rsync|sftp)\s(?:.*\s)?(?:-[a-zA-Z]*[ra][a-zA-Z]*|--recursive|--archive)\s(?:.*\s)?/(?:var/log|etc|home|root)(?:[/\s*]|$)"#,
            #"(?:^|/)lftp\s.*mirror\s+(?:-\S+\s+)*(?:-R|--reverse)\s+(?:-\S+\s+)*/(?:var/log|etc|home|root)(?:[/\s*]|$)"#,
            #"(?:^|/)ncftpput\s(?:.*\s)?-[a-zA-Z]*R[a-zA-Z]*\s(?:.*\s)?/(?:var/log|etc|home|root)(?:[/\s*]|$)"#,
            #"(?:^|/)curl\s(?:.*\s)?(?:-T\s*|--upload-file[\s=]+)/(?:var/log|etc|home|root)(?:[/\s*{]|$)"#,
        ]
        /// an1169.lolbin_transfer: PCRE patterns on a process image: its executable path, then
        /// its arguments after argv[0], joined by spaces (`/usr/bin/python3.11 -c ...`).
        public var processImageFilter = [
            #"^\S*/python[0-9.]*(?:\s+-[A-Za-z]+)*\s+-[A-Za-z]*c(?:\s|$)"#,
            #"^\S*/perl[0-9.]*(?:\s+-\S+)*\s+-[A-Za-z]*[eE](?:\s|$)"#,
            #"^\S*/ruby[0-9.]*(?:\s+-\S+)*\s+-[A-Za-z]*e(?:\s|$)"#,
            #"^\S*/php[0-9.]*(?:\s+-\S+)*\s+-[A-Za-z]*r(?:\s|$)"#,
            #"^\S*/(?:node|nodejs)(?:\s+-\S+)*\s+(?:-e|--eval|-p|--print)(?:\s|$)"#,
            #"^\S*/(?:busybox|curl|wget|nc|ncat|netcat|nc\.openbsd|nc\.traditional|socat|openssl)(?:\s|$)"#,
            #"(?i)(?:^|[\s\\/])(?:cmd|powershell|pwsh|rundll32|mshta|certutil|bitsadmin)\.exe(?:\s|"|$)"#,
        ]
        /// an1169.suspicious_filename: PCRE patterns on the base name of each word of a transfer's command line.
        public var filenamePatterns = [
            #"(?i)\.(?:zip|rar|7z|tar|gz|tgz|bz2|tbz2?|xz|txz|zst|cab|lzma?)$"#,
            #"(?i)^(?:[0-9a-f]{32}|[0-9a-f]{40}|[0-9a-f]{64})(?:\.[a-z0-9]{1,5})?$"#,
        ]
        /// ftp.scripted: Splunk's regex, verbatim, on the command line.
        public var scriptedFTPPatterns = [#"(?i)ftp\s+(.{1,})?\-s\:.{1,}\.\w{2,5}"#]
        /// network.first_seen_process: how long executables are learned before new ones alert.
        public var firstSeenLearningMinutes = 1440
        /// How long execve-time alerts wait for their process's first outbound connection (its
        /// destination then decides exclusions that name one); 0 decides them at once.
        public var holdExecveAlertsMilliseconds = 5000
    }

    public struct Network: Sendable, Equatable {
        /// Destinations that are not "untrusted", the one definition of the Internet every rule
        /// uses: private, loopback, link-local, multicast and unique-local. Documentation and
        /// test ranges (203.0.113.0/24, 2001:db8::/32) are the Internet, in both families.
        public var trustedNetworks = [
            "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "169.254.0.0/16",
            "224.0.0.0/4", "::1/128", "fe80::/10", "ff00::/8", "fc00::/7",
        ].compactMap(IPNetwork.init)
    }

    /// Alerts that must not be emitted: every field given must match (a list matches any item).
    public struct Exclusion: Sendable, Equatable {
        public var name: String
        public var rules: Set<RuleID> = []
        public var processExecutables: [String] = []
        public var processNames: [String] = []
        public var parentExecutables: [String] = []
        public var ancestorExecutables: [String] = []
        /// User names or numeric uids.
        public var users: [String] = []
        public var commandLinePattern: String?
        public var destinationNetworks: [IPNetwork] = []
        public var destinationPorts: [Int] = []
        /// Container ids (a prefix of at least 12 characters matches, as `docker ps` shows them)
        /// and runtimes (`docker`, `containerd`, `cri-o`, `podman`, `lxc`, `systemd-nspawn`).
        public var containerIDs: [String] = []
        public var containerRuntimes: [String] = []

        public init(name: String) { self.name = name }
    }

    mutating func readDetection(_ reader: inout TableReader) {
        var section = reader.section("detection")
        let ruleNames = section.strings("disabled_rules", default: [])
        detection.disabledRules = Set(section.ruleIDs(ruleNames, key: "disabled_rules"))
        detection.transferSizeThreshold = section.integer("transfer_size_threshold", default: detection.transferSizeThreshold, in: 1...1 << 50)
        detection.dataFlowDirectionThreshold = section.double("data_flow_direction_threshold", default: detection.dataFlowDirectionThreshold, in: 0.5...1)
        detection.outboundMinimumBytes = section.integer("outbound_minimum_bytes", default: detection.outboundMinimumBytes, in: 0...1 << 50)
        detection.sshTransferMinimumBytes = section.integer(
            "ssh_transfer_minimum_bytes", default: detection.sshTransferMinimumBytes, in: 1...1 << 50)
        detection.commandLinePatterns = section.patterns("command_line_patterns", default: detection.commandLinePatterns)
        detection.processImageFilter = section.patterns("process_image_filter", default: detection.processImageFilter)
        detection.filenamePatterns = section.patterns("filename_patterns", default: detection.filenamePatterns)
        detection.scriptedFTPPatterns = section.patterns("scripted_ftp_patterns", default: detection.scriptedFTPPatterns)
        detection.firstSeenLearningMinutes = section.integer("first_seen_learning_minutes", default: detection.firstSeenLearningMinutes, in: 0...525_600)
        detection.holdExecveAlertsMilliseconds = section.integer(
            "hold_execve_alerts_ms", default: detection.holdExecveAlertsMilliseconds, in: 0...60_000)
        reader.absorb(section)

        var networkSection = reader.section("network")
        network.trustedNetworks = networkSection.networks("trusted_networks", default: network.trustedNetworks)
        reader.absorb(networkSection)

        exclusions = reader.tables("exclusions").enumerated().map { index, table in
            var table = table
            var exclusion = Exclusion(name: table.string("name", default: "exclusion \(index + 1)"))
            exclusion.rules = Set(table.ruleIDs(table.strings("rules", default: []), key: "rules"))
            exclusion.processExecutables = table.strings("process_executable", default: [])
            exclusion.processNames = table.strings("process_name", default: [])
            exclusion.parentExecutables = table.strings("parent_executable", default: [])
            exclusion.ancestorExecutables = table.strings("ancestor_executable", default: [])
            exclusion.users = table.strings("user", default: [])
            exclusion.commandLinePattern = table.patterns("command_line_pattern", default: []).first
            exclusion.destinationNetworks = table.networks("destination_networks", default: [])
            exclusion.destinationPorts = table.integers("destination_ports", in: 0...65535)
            exclusion.containerIDs = table.strings("container_ids", default: [])
            for (index, id) in exclusion.containerIDs.enumerated() where id.utf8.count < 12 {
                table.problem("container_ids[\(index)]", "\"\(id)\" is shorter than 12 characters: it would match many containers")
            }
            exclusion.containerRuntimes = table.strings("container_runtimes", default: [])
            if !table.hasCondition {
                table.problem("", "an exclusion needs at least one field besides name: it would silence every alert")
            }
            reader.absorb(table)
            return exclusion
        }
    }
}

extension TableReader {
    /// A string or a list of strings (`process_name = "lftp"` reads as `["lftp"]`).
    mutating func strings(_ key: String, default fallback: [String]) -> [String] {
        declare(key)
        guard let value = table?[key] else { return fallback }
        if let single = value.string {
            conditionKeys.insert(key)
            return [single]
        }
        guard let array = value.array else {
            problem(key, "expected a string or a list of strings, found \(value.typeName)")
            return fallback
        }
        var result: [String] = []
        for (index, item) in array.enumerated() {
            guard let text = item.string else {
                problem("\(key)[\(index)]", "expected a string, found \(item.typeName)")
                continue
            }
            result.append(text)
        }
        if !result.isEmpty { conditionKeys.insert(key) }
        return result
    }

    mutating func integers(_ key: String, in range: ClosedRange<Int>) -> [Int] {
        declare(key)
        guard let value = table?[key] else { return [] }
        let items = value.integer != nil ? [value] : (value.array ?? [])
        if value.integer == nil && value.array == nil { problem(key, "expected an integer or a list of integers, found \(value.typeName)") }
        var result: [Int] = []
        for item in items {
            guard let number = item.integer, range.contains(number) else {
                problem(key, "expected integers in \(range.lowerBound)...\(range.upperBound)")
                continue
            }
            result.append(number)
        }
        if !result.isEmpty { conditionKeys.insert(key) }
        return result
    }

    /// Strings that must compile as PCRE2 patterns.
    mutating func patterns(_ key: String, default fallback: [String]) -> [String] {
        let texts = strings(key, default: fallback)
        for text in texts {
            do { try Pattern.validate(text) } catch { problem(key, "not a valid regular expression: \(error)") }
        }
        return texts
    }

    mutating func networks(_ key: String, default fallback: [IPNetwork]) -> [IPNetwork] {
        let texts = strings(key, default: [])
        guard table?[key] != nil else { return fallback }
        return texts.compactMap { text in
            if let network = IPNetwork(text) { return network }
            problem(key, "\"\(text)\" is not an address or CIDR block")
            return nil
        }
    }

    mutating func ruleIDs(_ names: [String], key: String) -> [RuleID] {
        names.compactMap { name in
            if let id = RuleID(rawValue: name) { return id }
            problem(key, "\"\(name)\" is not a rule id (one of \(RuleID.allCases.map(\.rawValue).joined(separator: ", ")))")
            return nil
        }
    }

    mutating func double(_ key: String, default fallback: Double, in range: ClosedRange<Double>) -> Double {
        declare(key)
        guard let value = table?[key] else { return fallback }
        guard let number = value.float ?? value.integer.map(Double.init) else {
            problem(key, "expected a number, found \(value.typeName)")
            return fallback
        }
        guard range.contains(number) else {
            problem(key, "\(number) is outside \(range.lowerBound)...\(range.upperBound)")
            return fallback
        }
        return number
    }

    mutating func optionalString(_ key: String) -> String? {
        declare(key)
        guard let value = table?[key] else { return nil }
        guard let text = value.string else {
            problem(key, "expected a string, found \(value.typeName)")
            return nil
        }
        return text
    }

    /// An array of tables (`[[exclusions]]`), each read on its own.
    mutating func tables(_ key: String) -> [TableReader] {
        known.insert(key)
        guard let value = table?[key] else { return [] }
        guard let array = value.array else {
            problem(key, "expected an array of tables ([[\(key)]]), found \(value.typeName)")
            return []
        }
        return array.enumerated().compactMap { index, item in
            guard let table = item.table else {
                problem("\(key)[\(index)]", "expected a table, found \(item.typeName)")
                return nil
            }
            return TableReader(table: table, path: "\(keyPath(key))[\(index)]")
        }
    }

    /// Whether any condition key (beyond `name`) was given with a value.
    var hasCondition: Bool { !conditionKeys.subtracting(["name"]).isEmpty }
}
