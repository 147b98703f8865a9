import AgentConfig
import AuditIngest
import Flows
import HostState

/// One rule firing on one process, flow or agent condition.
public struct Alert {
    /// Given when the alert is emitted (a held alert gets its id when it is decided).
    public internal(set) var id: String
    public let rule: RuleID
    /// Milliseconds since the epoch: the event that fired it.
    public let time: Int64
    /// Why it fired, in words an analyst reads ("no tty", "parent cron", "sent 12 MB").
    public let reasons: [String]
    public let process: ProcessRecord?
    public let interactivity: Interactivity?
    public let flow: Flow?
    /// The peer of a connection that is not a transfer flow (first-seen processes).
    public internal(set) var remote: (address: IPAddress, port: UInt16)?
    public var yara: YaraFinding? = nil

    /// The rule's name; a YARA match is named by its YARA rule.
    public var ruleName: String { yara.map { "yara:\($0.match.rule)" } ?? rule.info.name }
    /// ECS event.severity (1-100): the rule's, or a YARA rule's own score.
    public var severity: Int { yara?.severity ?? rule.info.severity }

    /// Where the transfer went: for a flow through a proxy, the address the client asked it for
    /// (the proxy when it asked for a name).
    public var destination: (address: IPAddress, port: UInt16)? {
        flow.map { ($0.content.proxy?.address ?? $0.remoteAddress, $0.targetPort) } ?? remote
    }
}

/// Where decided alerts go: the detector hands each one on, with its id, and keeps none.
public protocol AlertSink: AnyObject {
    func consume(_ alert: Alert)
}

/// What a rule found about a process, before its alert is made: the caller judges the
/// process's interactivity from host state and hands both back (`Detector.hold`, `raise`).
public struct ProcessFinding {
    public let rule: RuleID
    public let reasons: [String]
    public let process: ProcessRecord
    public let time: Int64
    public let remote: (IPAddress, UInt16)?

    init(_ rule: RuleID, reasons: [String], process: ProcessRecord, time: Int64, remote: (IPAddress, UInt16)? = nil) {
        self.rule = rule
        self.reasons = reasons
        self.process = process
        self.time = time
        self.remote = remote
    }
}
