import Foundation
import TestSupport
import Testing

/// Tests against the real kernel audit subsystem. Audit state is global, so this is the one
/// suite that touches it, and it runs serialized. It needs root; without it the tests fail
/// loudly rather than skip.
@Suite(.serialized) struct KernelAuditTests {
    struct KernelState: Equatable {
        var enabled: String
        var pid: String
        var rules: String
    }

    static func kernelState() throws -> KernelState {
        let status = try runCommand("/usr/sbin/auditctl", ["-s"]).stdout
        func value(_ key: String) -> String {
            status.split(separator: "\n").first { $0.hasPrefix(key + " ") }.map { String($0.dropFirst(key.count + 1)) } ?? "?"
        }
        let rules = try runCommand("/usr/sbin/auditctl", ["-l"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        // The kernel keeps a dead daemon's pid until its next send fails: that pid is free.
        var pid = value("pid")
        if pid != "0", kill(pid_t(pid) ?? 0, 0) != 0 { pid = "0" }
        return KernelState(enabled: value("enabled"), pid: pid, rules: rules)
    }

    /// The kernel's lost counter now.
    static func lostRecords() throws -> Int {
        let status = try runCommand("/usr/sbin/auditctl", ["-s"]).stdout
        return status.split(separator: "\n").first { $0.hasPrefix("lost ") }.flatMap { Int($0.dropFirst(5)) } ?? -1
    }

    init() throws {
        try #require(getuid() == 0, "the kernel audit tests need root (CI runs as root)")
        try #require(FileManager.default.isExecutableFile(atPath: "/usr/sbin/auditctl"), "auditd is not installed: run make test")
        try #require(FileManager.default.isExecutableFile(atPath: Repo.xferwatchd), "xferwatchd is not built: run make test")
        try Self.removeLeftovers()
    }

    /// The rules and exclusion of an agent killed before this run (on a machine that ran one
    /// before the tests) would be the state the tests start from and give back, and keep
    /// auditd's log short in the auditd tests. The agent's own cleanup removes them, once,
    /// before the first test; a running agent's rules it leaves, and the tests then say so.
    static func removeLeftovers() throws {
        let result = try leftoverRemoval.get()
        try #require(result.status == 0, "xferwatchd cleanup: \(result.stderr)")
    }

    private static let leftoverRemoval = Result { () throws -> (status: Int32, stderr: String) in
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let config = directory + "/agent.conf"
        try "[agent]\nstate_dir = \"\(directory)/state\"\n[audit]\nsource = \"unicast\"\n".write(toFile: config, atomically: true, encoding: .utf8)
        let result = try runCommand(Repo.xferwatchd, ["cleanup", "--config", config])
        if result.stderr.contains("removed") { print("before the kernel audit tests, xferwatchd cleanup:\n\(result.stderr)") }
        return (result.status, result.stderr)
    }

    func configFile(in directory: String, source: String, extra: String = "") throws -> String {
        let path = directory + "/agent.conf"
        // State, alerts and the control socket stay in the test's directory, never in /var or /run.
        try """
        [agent]
        log_level = "debug"
        state_dir = "\(directory)/state"
        control_socket = "\(directory)/agent.sock"
        user = "root"
        [audit]
        source = "\(source)"
        event_timeout_ms = 500
        [output.file]
        path = "\(directory)/alerts.jsonl"

        """.appending(extra).appending(noSyslogUnlessAsked(extra)).write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Every event and field xferwatch decodes equals what auparse reports, on a log the test
    /// records from the kernel with auditd.
    @Test func decodingMatchesAuparseOnAFreshKernelLog() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let capture = try runCommand(
            Repo.path("tools/audit-capture"),
            [
                directory, "RAW", Repo.fixture("workload/rules.txt"), "--", Repo.fixture("workload/commands.sh"),
            ])
        #expect(capture.status == 0, "audit-capture: \(capture.stderr)")
        let log = directory + "/audit.log"

        let ours = try runCommand(Repo.xferwatchd, ["replay", "--config", Repo.path("agent.conf"), "--events", log])
        #expect(ours.status == 0)
        let reference = try runCommand("/usr/bin/python3", [Repo.path("Tests/support/auparse_events.py"), log])
        #expect(reference.status == 0, "auparse: \(reference.stderr)")

        func key(_ event: [String: Any]) -> String { "\(event["time"]!):\(event["serial"]!)" }
        let ourEvents = Dictionary(try jsonLines(ours.stdout).map { (key($0), $0) }, uniquingKeysWith: { a, _ in a })
        let theirEvents = try jsonLines(reference.stdout)
        #expect(theirEvents.count > 40)
        #expect(ourEvents.count == theirEvents.count)

        var comparedFields = 0
        for theirs in theirEvents {
            guard let mine = ourEvents[key(theirs)] else {
                Issue.record("event \(key(theirs)) missing from xferwatch's output")
                continue
            }
            let theirRecords = theirs["records"] as! [[String: Any]]
            let myRecords = mine["records"] as! [[String: Any]]
            #expect(myRecords.map { $0["type"] as! String } == theirRecords.map { $0["type"] as! String }, "records of \(key(theirs))")
            for (myRecord, theirRecord) in zip(myRecords, theirRecords) {
                let myFields = myRecord["fields"] as! [String: String]
                for pair in theirRecord["fields"] as! [[String]] where pair[0] != "type" {
                    var mineValue = myFields[pair[0]]
                    // auparse shows the NULs between proctitle's arguments as spaces.
                    if pair[0] == "proctitle" { mineValue = mineValue?.replacingOccurrences(of: "\0", with: " ") }
                    #expect(mineValue == pair[1], "\(theirRecord["type"]!) \(pair[0]) in event \(key(theirs))")
                    comparedFields += 1
                }
            }
        }
        #expect(comparedFields > 1000)
    }

    @Test func unicastModeSeesRealCommandsAndRestoresTheKernel() throws {
        let before = try Self.kernelState()
        try #require(before.pid == "0", "another process holds the audit socket")
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }

        let agent = try Child(Repo.xferwatchd, ["run", "--config", try configFile(in: directory, source: "unicast"), "--events"])
        defer { agent.stop() }
        try #require(agent.waitForStderr(containing: "ready: watching", seconds: 20), "agent did not start: \(agent.stderr)")
        let during = try Self.kernelState()
        #expect(during.enabled == "1")
        #expect(during.pid == String(agent.pid))
        #expect(during.rules.contains("-F key=xferwatch"))
        #expect(during.rules.contains("saddr_fam=2"))

        // Someone removes our rules: the agent notices the CONFIG_CHANGE and puts them back.
        #expect(try runCommand("/usr/sbin/auditctl", ["-D", "-k", "xferwatch"]).status == 0)
        #expect(agent.waitForStderr(containing: "were removed by someone else; reinstalled them", seconds: 8), "\(agent.stderr)")
        // Reinstalling may take more than one pass if removals straddle a check; the periodic check catches the rest.
        let reinstallDeadline = Date().addingTimeInterval(6)
        while try Self.kernelState().rules != during.rules, Date() < reinstallDeadline { usleep(100_000) }
        #expect(try Self.kernelState().rules == during.rules)

        let (truePid, curlPid) = try runClients()
        try waitForConnect(of: curlPid, in: agent)
        #expect(agent.stop() == 0)

        try expectClientEvents(in: agent.stdout, truePid: truePid, curlPid: curlPid)
        #expect(!agent.stderr.contains("dropped malformed"))
        #expect(try Self.kernelState() == before)
    }

    /// `auto` beside a running auditd takes the multicast stream and leaves auditd's pid and
    /// rules alone; when auditd stops while the agent runs, the stream goes on without it.
    @Test func multicastModeBesideAnAuditdThatStopsMidway() throws {
        let before = try Self.kernelState()
        try #require(before.pid == "0", "another process holds the audit socket")
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let auditd = try PrivateAuditd(directory: directory + "/auditd")
        defer {
            _ = try? runCommand("/usr/sbin/auditctl", ["-D", "-k", "othertool"])
            auditd.stop()
            _ = try? runCommand("/usr/sbin/auditctl", ["-e", before.enabled])
        }
        try #require(try auditd.startAsSystemdWould() == 1, "auditd did not start")
        // A rule of another tool: xferwatch must leave it alone.
        #expect(try runCommand("/usr/sbin/auditctl", ["-a", "always,exit", "-F", "arch=b64", "-S", "unlink", "-k", "othertool"]).status == 0)
        let auditdState = try Self.kernelState()

        let agent = try Child(Repo.xferwatchd, ["run", "--config", try configFile(in: directory, source: "auto"), "--events"])
        defer { agent.stop() }
        try #require(agent.waitForStderr(containing: "ready: watching", seconds: 20), "agent did not start: \(agent.stderr)")
        #expect(agent.stderr.contains("audit source multicast"))
        #expect(try Self.kernelState().pid == String(auditd.child?.pid ?? -1))

        let (truePid, curlPid) = try runClients()
        // auditd logged the same commands: both readers got the stream.
        var deadline = Date().addingTimeInterval(10)
        while !auditd.logged(pid: truePid) && Date() < deadline { usleep(100_000) }
        #expect(auditd.logged(pid: truePid))
        // auditd stops while the agent runs: the multicast stream goes on without it.
        auditd.stop()
        deadline = Date().addingTimeInterval(10)
        while try Self.kernelState().pid != "0", Date() < deadline { usleep(50_000) }
        #expect(try Self.kernelState().pid == "0", "auditd gave up the audit pid")
        let (laterTrue, laterCurl) = try runClients()
        try waitForConnect(of: laterCurl, in: agent)
        #expect(agent.stop() == 0)
        try expectClientEvents(in: agent.stdout, truePid: truePid, curlPid: curlPid)
        try expectClientEvents(in: agent.stdout, truePid: laterTrue, curlPid: laterCurl)

        // auditd's rule is there, ours are gone.
        let after = try Self.kernelState()
        #expect(after.rules.contains("othertool"))
        #expect(!after.rules.contains("xferwatch"))
        #expect(after.enabled == auditdState.enabled)
    }

    /// Runs /bin/true and a curl to a closed loopback port; returns their pids.
    func runClients() throws -> (Int32, Int32) {
        let trueRun = try Child("/bin/true", [])
        trueRun.waitUntilExit()
        let curl = try Child("/usr/bin/curl", ["-s", "-m", "2", "http://127.0.0.1:9/"])
        curl.waitUntilExit()
        return (trueRun.pid, curl.pid)
    }

    /// Until the agent has printed curl's connect (the clients' last event).
    func waitForConnect(of curlPid: Int32, in agent: Child) throws {
        let deadline = Date().addingTimeInterval(15)
        func printed() -> Bool {
            agent.stdout.split(separator: "\n").contains { $0.contains(#""pid":"\#(curlPid)""#) && $0.contains(#""syscall":"42""#) }
        }
        while !printed() && Date() < deadline { usleep(20_000) }
        try #require(printed(), "no connect event of curl (pid \(curlPid))")
    }

    func expectClientEvents(in output: String, truePid: Int32, curlPid: Int32) throws {
        let events = try jsonLines(output)
        func syscall(_ event: [String: Any]) -> [String: String]? {
            (event["records"] as? [[String: Any]])?.first { $0["type"] as? String == "SYSCALL" }?["fields"] as? [String: String]
        }
        // The pid first execs the signal wrapper, then the client itself.
        let exec = events.first { syscall($0)?["pid"] == String(truePid) && syscall($0)?["syscall"] == "59" && syscall($0)?["exe"] == "/usr/bin/true" }
        let execEvent = try #require(exec, "no execve event for /bin/true (pid \(truePid)) among \(events.count) events")
        #expect(execEvent["argv"] as? [String] == ["/bin/true"])
        #expect(execEvent["completion"] as? String == "eoe")
        #expect(execEvent["partial"] as? Bool == false)

        func sockaddr(_ event: [String: Any]) -> [String: Any]? {
            (event["records"] as? [[String: Any]])?.compactMap { $0["sockaddr"] as? [String: Any] }.first
        }
        // curl may first ask nscd over a unix socket; the TCP connect is the inet one.
        let connect = events.first {
            syscall($0)?["pid"] == String(curlPid) && syscall($0)?["syscall"] == "42" && sockaddr($0)?["family"] as? String == "inet"
        }
        let connectEvent = try #require(connect, "no inet connect event for curl (pid \(curlPid))")
        #expect(syscall(connectEvent)?["exe"] == "/usr/bin/curl")
        let sockaddr = sockaddr(connectEvent)
        #expect(sockaddr?["address"] as? String == "127.0.0.1")
        #expect(sockaddr?["port"] as? Int == 9)
    }
}

/// Tests that do not test syslog must not send their alerts to the host's /dev/log.
func noSyslogUnlessAsked(_ extra: String) -> String {
    extra.contains("[output.syslog]") ? "" : "\n[output.syslog]\nenabled = false\n"
}
