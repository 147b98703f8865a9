import Foundation
import TestSupport
import Testing

/// The live sources that read lines: audisp (auditd's plugin format on stdin) and a followed
/// log file across rotation and truncation.
@Suite struct LineSourceTests {
    /// A configuration whose state, alerts and control socket stay in the temporary directory,
    /// never in /var or /run.
    func config(_ body: String) throws -> String {
        let base = NSTemporaryDirectory() + "xferwatch-\(UUID().uuidString)"
        let path = base + ".conf"
        let own = "[agent]\nstate_dir = \"\(base)-state\"\ncontrol_socket = \"\(base).sock\"\nuser = \"root\"\n[output.file]\npath = \"\(base)-alerts.jsonl\"\n"
        try (own + body).write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func removeConfig(_ path: String) {
        let base = String(path.dropLast(".conf".count))
        for leftover in [path, base + "-state", base + "-alerts.jsonl"] { try? FileManager.default.removeItem(atPath: leftover) }
    }

    @Test func audispReadsThePluginFormatOnStdinUntilEndOfInput() throws {
        // The plugin format is auditd's line format, with node= when forwarded.
        let records = try lines(ofFile: Repo.fixture("raw.log")).prefix(60).map { "node=web-01 " + $0 }.joined(separator: "\n") + "\n"
        let input = NSTemporaryDirectory() + "xferwatch-audisp-\(getpid()).log"
        try records.write(toFile: input, atomically: true, encoding: .utf8)
        defer { unlink(input) }
        let conf = try config("[audit]\nsource = \"audisp\"\n")
        defer { removeConfig(conf) }
        let result = try runCommand(Repo.xferwatchd, ["run", "--config", conf, "--events"], stdin: FileHandle(forReadingAtPath: input), seconds: 20)
        #expect(result.status == 0)
        let events = try jsonLines(result.stdout)
        #expect(events.count > 5)
        #expect(events.allSatisfy { $0["node"] as? String == "web-01" })
    }

    /// What auditd's plugin configuration runs: `run --source=audisp` over a file that names
    /// another source.
    @Test func sourceOnTheCommandLineWinsOverTheFile() throws {
        let records = try lines(ofFile: Repo.fixture("raw.log")).prefix(60).joined(separator: "\n") + "\n"
        let input = NSTemporaryDirectory() + "xferwatch-source-\(getpid()).log"
        try records.write(toFile: input, atomically: true, encoding: .utf8)
        defer { unlink(input) }
        let conf = try config("[audit]\nsource = \"file\"\nlog_file = \"/nonexistent/audit.log\"\n")
        defer { removeConfig(conf) }
        let result = try runCommand(
            Repo.xferwatchd, ["run", "--config", conf, "--source=audisp", "--events"], stdin: FileHandle(forReadingAtPath: input), seconds: 20)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try jsonLines(result.stdout).count > 5)
        let bad = try runCommand(Repo.xferwatchd, ["run", "--config", conf, "--source=udp"])
        #expect(bad.status == 64 && bad.stderr.contains("--source must be one of"), "\(bad)")
    }

    /// Started as root with a user that does not exist, the agent stops before it touches the
    /// kernel, and says what to do.
    @Test func aMissingUserStopsTheAgentAtStart() throws {
        try #require(getuid() == 0, "the drop happens only as root (CI runs as root)")
        let conf = try config("[audit]\nsource = \"audisp\"\n")
        defer { removeConfig(conf) }
        try String(contentsOfFile: conf, encoding: .utf8).replacingOccurrences(of: "user = \"root\"", with: "user = \"xferwatch-no-such-user\"")
            .write(toFile: conf, atomically: true, encoding: .utf8)
        let result = try runCommand(Repo.xferwatchd, ["run", "--config", conf], stdin: FileHandle(forReadingAtPath: "/dev/null"), seconds: 20)
        #expect(result.status == 1)
        #expect(
            result.stderr.contains("user xferwatch-no-such-user does not exist: the package creates it; or set [agent] user = \"root\""), "\(result.stderr)")
    }

    @Test func fileSourceFollowsRotationAndTruncation() throws {
        let directory = NSTemporaryDirectory() + "xferwatch-follow-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let log = directory + "/audit.log"
        // Written before the agent starts: not read (the agent starts at the end, like tail -F).
        try "type=SYSCALL msg=audit(1.000:1): pid=1 comm=\"old\"\n".write(toFile: log, atomically: true, encoding: .utf8)
        let conf = try config("[audit]\nsource = \"file\"\nlog_file = \"\(log)\"\nevent_timeout_ms = 200\n")
        defer { removeConfig(conf) }

        let agent = try Child(Repo.xferwatchd, ["run", "--config", conf, "--events"])
        defer { agent.stop() }
        try #require(agent.waitForStderr(containing: "following", seconds: 10))

        func append(_ path: String, _ text: String) throws {
            let handle = try #require(FileHandle(forWritingAtPath: path))
            handle.seekToEndOfFile()
            handle.write(Data(text.utf8))
            try handle.close()
        }
        // Each step waits until the agent has read what the one before wrote.
        try append(log, "type=SYSCALL msg=audit(2.000:2): pid=2 comm=\"before\"\n")
        #expect(agent.waitForStdout(containing: #""comm":"before""#, seconds: 10))
        // Rotation: the old file moves away, a new one takes its name.
        try FileManager.default.moveItem(atPath: log, toPath: log + ".1")
        try "type=SYSCALL msg=audit(3.000:3): pid=3 comm=\"rotated\"\n".write(toFile: log, atomically: false, encoding: .utf8)
        #expect(agent.waitForStdout(containing: #""comm":"rotated""#, seconds: 10))
        // Truncation in place (copytruncate), noticed before the file grows past where the agent was.
        try "".write(toFile: log, atomically: false, encoding: .utf8)
        #expect(agent.waitForStderr(containing: "was truncated", seconds: 10))
        try append(log, "type=SYSCALL msg=audit(4.000:4): pid=4 comm=\"truncated\"\n")
        #expect(agent.waitForStdout(containing: #""comm":"truncated""#, seconds: 10))
        #expect(agent.stop() == 0)

        let comms = try jsonLines(agent.stdout).compactMap {
            (($0["records"] as? [[String: Any]])?.first?["fields"] as? [String: String])?["comm"]
        }
        #expect(comms == ["before", "rotated", "truncated"])
        #expect(agent.stderr.contains("was rotated"))
        #expect(agent.stderr.contains("was truncated"))
    }
}
