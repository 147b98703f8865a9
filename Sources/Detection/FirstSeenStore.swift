import AgentConfig
import Runtime

#if canImport(Glibc)
    import Glibc
#endif

/// The executables that have made an outbound connection, learned for a period and then
/// used to spot new ones. Live, it persists in `state_dir` so a restart neither relearns nor
/// re-alerts; replaying a log it lives in memory, with the log's first connection as the start.
public final class FirstSeenStore {
    public enum Verdict: Equatable { case known, learned, new }

    public static let fileName = "first-seen-executables"
    /// Beyond this many executables, new ones are neither stored nor alerted on (counted).
    public static let capacity = 65_536

    public let learningMilliseconds: Int64
    public private(set) var learningStarted: Int64?
    public private(set) var writeErrors = 0
    public private(set) var overCapacity = 0
    private var known: Set<String> = []
    private var fd: Int32 = -1
    private let path: String?

    public var count: Int { known.count }

    /// A store in memory: learning starts with the first connection it sees.
    public init(learningMinutes: Int) {
        learningMilliseconds = Int64(learningMinutes) * 60_000
        path = nil
    }

    /// Loads the store from `directory` (created if missing) and appends to it from now on.
    public init(directory: String, learningMinutes: Int, now: Int64) throws(StateError) {
        learningMilliseconds = Int64(learningMinutes) * 60_000
        let path = directory + "/" + Self.fileName
        self.path = path
        if let failure = createDirectories(directory) { throw StateError(path: directory, reason: failure) }
        if let text = readTextFile(path) {
            for line in text.split(separator: "\n") {
                if line.hasPrefix("learning-started ") {
                    learningStarted = Int64(line.dropFirst("learning-started ".count))
                } else if line.hasPrefix("/") {
                    known.insert(String(line))
                }
            }
        }
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw StateError(path: path, reason: String(cString: strerror(errno))) }
        if learningStarted == nil {
            learningStarted = now
            append("# xferwatch: executables that made outbound connections (network.first_seen_process)\nlearning-started \(now)\n")
        }
    }

    deinit { if fd >= 0 { close(fd) } }

    /// Records that `executable` connected out at `now`; `.new` only after the learning period.
    public func observe(_ executable: String, now: Int64) -> Verdict {
        if known.contains(executable) { return .known }
        guard known.count < Self.capacity else {
            overCapacity += 1
            return .known
        }
        known.insert(executable)
        if path != nil { append(executable + "\n") }
        let start = learningStarted ?? now
        if learningStarted == nil { learningStarted = now }
        return now - start < learningMilliseconds ? .learned : .new
    }

    private func append(_ text: String) {
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if written != bytes.count { writeErrors += 1 }
    }
}

public struct StateError: Error, CustomStringConvertible {
    public let path: String
    public let reason: String
    public var description: String { "\(path): \(reason)" }
}
