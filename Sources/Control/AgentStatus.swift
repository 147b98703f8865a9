/// `agentctl status --json`: a snapshot of the running agent. The JSON form (snake_case keys,
/// absent optionals left out) is documented by `docs/agentctl-status.schema.json`; a change
/// that removes or retypes a field bumps `schemaVersion`.
public struct AgentStatus: Codable, Sendable {
    public static let currentSchemaVersion = 1

    public struct Health: Codable, Sendable {
        public enum Verdict: String, Codable, Sendable { case healthy, degraded }
        public var verdict: Verdict
        /// Why it is degraded: conditions now, and trouble reported in the last 5 minutes.
        public var reasons: [String]
        public init(verdict: Verdict, reasons: [String]) { (self.verdict, self.reasons) = (verdict, reasons) }
    }

    /// Per second over the last minute and the last 5 minutes (or since start, when shorter).
    public struct Rate: Codable, Sendable {
        public var oneMinute: Double
        public var fiveMinutes: Double
        public init(oneMinute: Double, fiveMinutes: Double) { (self.oneMinute, self.fiveMinutes) = (oneMinute, fiveMinutes) }
    }

    public struct Kernel: Codable, Sendable {
        public var enabled: Int
        /// The kernel's counter since boot, and how much of it grew while this agent ran.
        public var lost: Int
        public var lostSinceStart: Int
        public var backlog: Int
        public var backlogLimit: Int
        public var auditPid: Int
        public init(enabled: Int, lost: Int, lostSinceStart: Int, backlog: Int, backlogLimit: Int, auditPid: Int) {
            (self.enabled, self.lost, self.lostSinceStart, self.backlog, self.backlogLimit, self.auditPid) =
                (enabled, lost, lostSinceStart, backlog, backlogLimit, auditPid)
        }
    }

    public struct Audit: Codable, Sendable {
        /// unicast, multicast, audisp or file.
        public var source: String
        public var ruleKey: String
        /// Kernel rules installed with `ruleKey` (0 for audisp and file sources).
        public var rulesInstalled: Int
        /// Absent for audisp and file sources.
        public var kernel: Kernel?
        public var records: Int
        public var events: Int
        public var recordsPerSecond: Rate
        public var eventsPerSecond: Rate
        /// Records dropped in user space, by reason (netlink messages not from the kernel,
        /// malformed or truncated messages, events evicted unfinished).
        public var userspaceDrops: [String: Int]
        /// Records that did not parse.
        public var parseErrors: Int
        public var sequenceGaps: Int
        /// Pids whose unconnected datagrams are not audited now (a flood, `datagram_flood_rate`);
        /// absent from an agent that predates it.
        public var quietedSenders: [Int32]?
        public init(
            source: String, ruleKey: String, rulesInstalled: Int, kernel: Kernel?, records: Int, events: Int,
            recordsPerSecond: Rate, eventsPerSecond: Rate, userspaceDrops: [String: Int], parseErrors: Int, sequenceGaps: Int,
            quietedSenders: [Int32] = []
        ) {
            self.quietedSenders = quietedSenders
            (self.source, self.ruleKey, self.rulesInstalled, self.kernel, self.records, self.events) = (
                source, ruleKey, rulesInstalled, kernel, records, events
            )
            (self.recordsPerSecond, self.eventsPerSecond, self.userspaceDrops, self.parseErrors, self.sequenceGaps) =
                (recordsPerSecond, eventsPerSecond, userspaceDrops, parseErrors, sequenceGaps)
        }
    }

    public struct Host: Codable, Sendable {
        public var processes: Int
        public var flowsActive: Int
        public var flowsReported: Int
        /// Network namespaces whose sock_diag sockets are open (ours and containers'), two
        /// descriptors each; whether the namespace helper runs (nil when not needed: root).
        public var networkNamespaces: Int
        public var namespaceHelper: Bool?
        /// sock_diag requests that failed, and close notifications the kernel dropped on an
        /// overrun receive buffer (those flows end at the next poll, their last bytes unread).
        public var sockDiagErrors: Int
        public var destroyNotificationsLost: Int
        /// Floods of socket closes (`close_flood_rate`), and the network namespaces (inodes)
        /// whose closes are not heard now because of one: flows ending there keep their last
        /// polled counts.
        public var closeFloods: Int
        public var closesUnheard: [UInt64]
        public init(
            processes: Int, flowsActive: Int, flowsReported: Int, networkNamespaces: Int, namespaceHelper: Bool?, sockDiagErrors: Int,
            destroyNotificationsLost: Int, closeFloods: Int = 0, closesUnheard: [UInt64] = []
        ) {
            (self.processes, self.flowsActive, self.flowsReported) = (processes, flowsActive, flowsReported)
            (self.networkNamespaces, self.namespaceHelper) = (networkNamespaces, namespaceHelper)
            (self.sockDiagErrors, self.destroyNotificationsLost) = (sockDiagErrors, destroyNotificationsLost)
            (self.closeFloods, self.closesUnheard) = (closeFloods, closesUnheard)
        }
    }

    public struct Detection: Codable, Sendable {
        public var rulesEnabled: Int
        public var alerts: Int
        public var alertsByRule: [String: Int]
        public var exclusionsHit: [String: Int]
        public var execsChecked: Int
        public var flowsChecked: Int
        public var firstSeen: FirstSeen
        /// Execve-time alerts waiting for their process's first connection, exit or delay.
        public var heldAlerts: Int
        public init(
            rulesEnabled: Int, alerts: Int, alertsByRule: [String: Int], exclusionsHit: [String: Int], execsChecked: Int, flowsChecked: Int,
            firstSeen: FirstSeen, heldAlerts: Int
        ) {
            (self.rulesEnabled, self.alerts, self.alertsByRule, self.exclusionsHit, self.execsChecked, self.flowsChecked, self.firstSeen) =
                (rulesEnabled, alerts, alertsByRule, exclusionsHit, execsChecked, flowsChecked, firstSeen)
            self.heldAlerts = heldAlerts
        }
    }

    /// The packet tap (`[inspection]`).
    public struct Inspection: Codable, Sendable {
        public var enabled: Bool
        /// Interfaces it captures on (empty when off or when none could be opened).
        public var interfaces: [String]
        /// Packets the kernel filter passed and the agent read.
        public var packets: Int
        /// Packets the kernel dropped because the capture buffer was full.
        public var kernelDropped: Int
        public var malformed: Int
        public var unidentified: Int
        /// Packets whose content named a protocol, those that went to a known flow, and the
        /// connections their content made flows.
        public var identified: Int
        public var matchedToFlows: Int
        public var promoted: Int
        public init(
            enabled: Bool, interfaces: [String], packets: Int, kernelDropped: Int, malformed: Int, unidentified: Int, identified: Int,
            matchedToFlows: Int, promoted: Int
        ) {
            (self.enabled, self.interfaces, self.packets, self.kernelDropped, self.malformed) = (enabled, interfaces, packets, kernelDropped, malformed)
            (self.unidentified, self.identified, self.matchedToFlows, self.promoted) = (unidentified, identified, matchedToFlows, promoted)
        }
    }

    /// The executables known to connect out (network.first_seen_process).
    public struct FirstSeen: Codable, Sendable {
        public var known: Int
        /// Appends to the state file that failed: what was learned since lives in memory only.
        public var writeErrors: Int
        /// Executables neither stored nor alerted on because the store is full.
        public var overCapacity: Int
        public init(known: Int, writeErrors: Int, overCapacity: Int) {
            (self.known, self.writeErrors, self.overCapacity) = (known, writeErrors, overCapacity)
        }
    }

    public struct Yara: Codable, Sendable {
        public var enabled: Bool
        public var rules: Int
        public var ruleFiles: Int
        public var queued: Int
        public var scans: Int
        public var cacheHits: Int
        public var filesMatched: Int
        public var dropped: Int
        public init(enabled: Bool, rules: Int, ruleFiles: Int, queued: Int, scans: Int, cacheHits: Int, filesMatched: Int, dropped: Int) {
            (self.enabled, self.rules, self.ruleFiles, self.queued, self.scans, self.cacheHits, self.filesMatched, self.dropped) =
                (enabled, rules, ruleFiles, queued, scans, cacheHits, filesMatched, dropped)
        }
    }

    public struct FileOutput: Codable, Sendable {
        public var path: String
        public var written: Int
        public var waiting: Int
        public var dropped: Int
        public var rotations: Int
        /// Why writing fails now, if it does.
        public var problem: String?
        public init(path: String, written: Int, waiting: Int, dropped: Int, rotations: Int, problem: String?) {
            (self.path, self.written, self.waiting, self.dropped, self.rotations, self.problem) = (path, written, waiting, dropped, rotations, problem)
        }
    }

    public struct SyslogOutput: Codable, Sendable {
        public var address: String
        public var connected: Bool
        /// The last connection or send failure, while it lasts.
        public var problem: String?
        public var delivered: Int
        public var connections: Int
        public var spoolRecords: Int
        public var spoolBytes: Int
        public var spoolLimitBytes: Int
        public var dropped: Int
        public var truncated: Int
        /// Sent again after a connection broke before the receiver confirmed them (possible duplicates).
        public var resent: Int
        public init(
            address: String, connected: Bool, problem: String?, delivered: Int, connections: Int, spoolRecords: Int,
            spoolBytes: Int, spoolLimitBytes: Int, dropped: Int, truncated: Int, resent: Int
        ) {
            (self.address, self.connected, self.problem, self.delivered, self.connections) = (address, connected, problem, delivered, connections)
            (self.spoolRecords, self.spoolBytes, self.spoolLimitBytes, self.dropped, self.truncated, self.resent) = (
                spoolRecords, spoolBytes, spoolLimitBytes, dropped, truncated, resent
            )
        }
    }

    /// Who the agent runs as and what it may do (from the kernel, not from the configuration).
    public struct Privileges: Codable, Sendable {
        public var user: String
        public var uid: Int
        public var gid: Int
        /// Effective capabilities, named as in capabilities(7).
        public var capabilities: [String]
        /// What the process could still regain; the kept set after a drop as root.
        public var boundingCapabilities: [String]
        public var noNewPrivileges: Bool
        public init(user: String, uid: Int, gid: Int, capabilities: [String], boundingCapabilities: [String], noNewPrivileges: Bool) {
            (self.user, self.uid, self.gid, self.capabilities, self.boundingCapabilities, self.noNewPrivileges) =
                (user, uid, gid, capabilities, boundingCapabilities, noNewPrivileges)
        }
    }

    /// Absent outputs are turned off.
    public struct Outputs: Codable, Sendable {
        public var file: FileOutput?
        public var syslog: SyslogOutput?
        public init(file: FileOutput?, syslog: SyslogOutput?) { (self.file, self.syslog) = (file, syslog) }
    }

    public var schemaVersion = AgentStatus.currentSchemaVersion
    public var version: String
    public var pid: Int
    /// RFC 3339, UTC.
    public var started: String
    public var uptimeSeconds: Int
    public var configFile: String
    public var privileges: Privileges
    public var health: Health
    public var audit: Audit
    public var host: Host
    public var detection: Detection
    public var yara: Yara
    public var inspection: Inspection
    public var outputs: Outputs

    public init(
        version: String, pid: Int, started: String, uptimeSeconds: Int, configFile: String, privileges: Privileges, health: Health,
        audit: Audit, host: Host, detection: Detection, yara: Yara, inspection: Inspection, outputs: Outputs
    ) {
        (self.version, self.pid, self.started, self.uptimeSeconds, self.configFile) = (version, pid, started, uptimeSeconds, configFile)
        (self.privileges, self.health) = (privileges, health)
        (self.audit, self.host, self.detection, self.yara, self.inspection, self.outputs) = (audit, host, detection, yara, inspection, outputs)
    }
}
