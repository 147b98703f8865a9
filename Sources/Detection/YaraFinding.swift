import Scanning

/// A YARA rule that matched a file a process executed, tried to execute, serves from or names
/// for upload: the payload of a `yara.match` alert.
public struct YaraFinding: Sendable {
    public let match: YaraMatch
    public let file: ScannedFile
    /// What made the agent scan it ("tried to execute /tmp/x.exe (ENOEXEC)").
    public let trigger: String

    public init(match: YaraMatch, file: ScannedFile, trigger: String) {
        self.match = match
        self.file = file
        self.trigger = trigger
    }

    /// `score` from the rule's meta as ECS severity (1-100), when the rule gives one.
    public var severity: Int? {
        guard case .integer(let score)? = match.meta("score"), score > 0 else { return nil }
        return Int(min(score, 100))
    }
}
