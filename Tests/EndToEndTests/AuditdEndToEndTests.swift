import Foundation
import TestSupport
import Testing

/// The host's own auditd beside the agent, in every order of start-up: Debian's auditd with a
/// private configuration (its log in the test's directory), started as systemd's unit starts
/// it, the agent on the live stream, transfers to the lab's "Internet" server alerted after it.
/// auditd's log must never stop because of the agent, and the agent must not lose its stream.
extension KernelAuditTests.FlowEndToEnd {
    /// Runs `body` with the kernel as the test found it afterwards, whatever happens: no
    /// auditd, no rules with the test's keys, the enabled flag and backlog settings restored.
    func withKernelRestored(_ body: () throws -> Void) throws {
        let before = try KernelAuditTests.kernelState()
        try #require(before.pid == "0", "another process holds the audit socket")
        try #require(!before.rules.contains("msgtype=PROCTITLE"), "a PROCTITLE exclusion is loaded: auditd's log would lack them (\(before.rules))")
        let settings = try runCommand("/usr/sbin/auditctl", ["-s"]).stdout
        func value(_ key: String) -> String {
            settings.split(separator: "\n").first { $0.hasPrefix(key + " ") }.map { String($0.dropFirst(key.count + 1)) } ?? "0"
        }
        defer {
            _ = try? runCommand("/usr/sbin/auditctl", ["-D", "-k", "othertool"])
            _ = try? runCommand("/usr/sbin/auditctl", ["-D", "-k", "xferwatch"])
            _ = try? runCommand(
                "/usr/sbin/auditctl", ["-b", value("backlog_limit"), "--backlog_wait_time", value("backlog_wait_time"), "-f", value("failure")])
            _ = try? runCommand("/usr/sbin/auditctl", ["-e", before.enabled])
        }
        try body()
    }

    func ftpUpload(_ file: String, as name: String) throws -> Int32 {
        try client("/usr/bin/curl", ["-s", "-T", file, "ftp://203.0.113.10/upload/\(name)"])
    }

    func agentHealth(containing text: String) throws -> [AlertView] {
        try readAlerts().filter { $0.rule == "agent.health" && $0.reasons.contains { $0.contains(text) } }
    }

    /// The agent first, on a host where auditd does not start at boot (it holds the socket):
    /// auditd's first registration is refused by the kernel, the agent hands the socket over at
    /// once, and auditd's restart gets it. Both then see the same transfer.
    @Test func auditdStartedAfterTheAgentGetsTheSocket() throws {
        try withKernelRestored {
            let file = try randomFile("after.bin", bytes: 200_000)
            let auditd = try PrivateAuditd(directory: work + "/auditd")
            let agent = try startAgent(source: "auto", environment: ["XFERWATCH_AUDITD_AT_BOOT": "no"])
            #expect(agent.stderr.contains("audit source unicast"))
            let exclusion = "-a always,exclude -F msgtype=PROCTITLE -F uid>=0"
            #expect(try KernelAuditTests.kernelState().rules.contains(exclusion), "alone, the agent has the kernel make no PROCTITLE")
            let lostBefore = try KernelAuditTests.lostRecords()

            // An exec load runs through the hand-over: a record lost or read twice would leave a partial event.
            let load = try Child("/bin/sh", ["-c", "i=0; while [ $i -lt 2000 ]; do /bin/true; i=$((i+1)); done"])
            let starts = try #require(try auditd.startAsSystemdWould(), "auditd never got the audit socket: \(agent.stderr.suffix(3000))")
            load.waitUntilExit()
            #expect(starts == 2, "the first start is refused while the agent holds the socket; the restart succeeds")
            #expect(agent.waitForStderr(containing: "asked for the audit socket: xferwatch gave it up", seconds: 10))

            let curl = try ftpUpload(file, as: "after.bin")
            let flows = try stop(agent, expecting: 1)
            #expect(flow(of: curl, in: flows).map { $0.data(0, "source") } == 200_000, "the data connection's bytes are exact")
            #expect(agent.stderr.contains(", partial 0,"), "\(agent.stderr.suffix(2000))")
            let alerts = try readAlerts()
            #expect(alerts.contains { $0.rule == "ftp.internet" && $0.pid == Int(curl) }, "\(alerts.map(\.rule))")
            let handOver = try agentHealth(containing: "asked for the audit socket")
            // The refused daemon exits at once: the agent names its program when it reads it in time, and says when it could not.
            let asker = "pid \(auditd.starts.first ?? -1) "
            let named = handOver.first?.reasons.first.map {
                $0.hasPrefix(asker + "(/usr/sbin/auditd)") || $0.hasPrefix(asker + "(auditd)")
                    || $0.hasPrefix(asker + "(exited before its program could be read)")
            }
            #expect(handOver.count == 1 && named == true, "\(handOver.map(\.reasons))")
            #expect(auditd.logged(pid: curl), "auditd's log has the transfer")
            #expect(auditd.logged(type: "PROCTITLE", pid: curl), "beside auditd the agent excludes nothing: its log is whole")
            #expect(try !KernelAuditTests.kernelState().rules.contains(exclusion))
            #expect(try KernelAuditTests.kernelState().pid == String(auditd.child?.pid ?? -1), "auditd keeps the socket after the agent stops")
            #expect(try KernelAuditTests.lostRecords() == lostBefore)
            auditd.stop()
        }
    }

    /// `source = "unicast"` is the administrator's word: the agent keeps the socket, and says
    /// which process it refused.
    @Test func anExplicitUnicastAgentKeepsTheSocketAndSaysWhomItRefused() throws {
        try withKernelRestored {
            let auditd = try PrivateAuditd(directory: work + "/auditd")
            let agent = try startAgent()
            #expect(try auditd.startAsSystemdWould() == nil, "every start is refused")
            #expect(try KernelAuditTests.kernelState().pid == String(agent.pid))
            #expect(agent.waitForStderr(containing: "asked for the audit socket and was refused", seconds: 10))
            _ = try stop(agent, expecting: 0)
            let refusals = try agentHealth(containing: "asked for the audit socket and was refused")
            #expect(!refusals.isEmpty && refusals.allSatisfy { $0.reasons.first?.contains("source = \"unicast\" keeps it") == true })
            #expect(auditd.starts.contains { start in refusals.contains { $0.reasons.first?.hasPrefix("pid \(start) (") == true } })
        }
    }

    /// Where auditd starts at boot, the agent started before it leaves the socket free: auditd's
    /// one start succeeds, and the agent reads the stream beside it.
    @Test func auditdEnabledAtBootFindsTheSocketFree() throws {
        try withKernelRestored {
            let file = try randomFile("boot.bin", bytes: 100_000)
            let auditd = try PrivateAuditd(directory: work + "/auditd")
            let agent = try startAgent(source: "auto", environment: ["XFERWATCH_AUDITD_AT_BOOT": "yes"])
            #expect(agent.stderr.contains("audit source multicast"))
            #expect(try KernelAuditTests.kernelState().pid == "0")
            #expect(try auditd.startAsSystemdWould() == 1)
            let curl = try ftpUpload(file, as: "boot.bin")
            _ = try stop(agent, expecting: 1)
            #expect(try readAlerts().contains { $0.rule == "ftp.internet" && $0.pid == Int(curl) })
            #expect(try agentHealth(containing: "asked for the audit socket").isEmpty)
            #expect(auditd.logged(pid: curl))
            auditd.stop()
        }
    }

    /// auditd first, then the agent; auditd rotated, stopped and started, then killed (a crash:
    /// the kernel keeps its pid until a send fails) and started, under a transfer load:
    /// the agent keeps its stream (every upload is a flow), auditd logs every upload made while
    /// it ran, and the kernel loses nothing.
    @Test func auditdRestartedTwiceUnderATransferLoad() throws {
        try withKernelRestored {
            let file = try randomFile("load.bin", bytes: 50_000)
            let auditd = try PrivateAuditd(directory: work + "/auditd")
            #expect(try auditd.startAsSystemdWould() == 1)
            let agent = try startAgent(source: "auto", environment: ["XFERWATCH_AUDITD_AT_BOOT": "no"])
            #expect(agent.stderr.contains("audit source multicast"))
            let lostBefore = try KernelAuditTests.lostRecords()

            var whileAuditdRan: [Int32] = []
            var duringRestarts: [Int32] = []
            for round in 0..<3 {
                for i in 0..<4 { whileAuditdRan.append(try ftpUpload(file, as: "r\(round)-\(i).bin")) }
                guard round < 2 else { break }
                auditd.rotate()
                auditd.stop(signal: round == 0 ? SIGTERM : SIGKILL)
                duringRestarts.append(try ftpUpload(file, as: "down\(round).bin"))
                #expect(try auditd.startAsSystemdWould() == 1, "the restarted auditd finds the socket free")
            }
            let uploads = whileAuditdRan + duringRestarts
            let flows = try stop(agent, expecting: uploads.count)
            for pid in uploads { #expect(flow(of: pid, in: flows).map { $0.data(0, "source") } == 50_000, "upload by pid \(pid)") }
            for pid in whileAuditdRan { #expect(auditd.logged(pid: pid), "auditd logged the upload by pid \(pid)") }
            #expect(try KernelAuditTests.lostRecords() == lostBefore)
            #expect(try agentHealth(containing: "asked for the audit socket").isEmpty)
            #expect(!agent.stderr.contains("holds it now (unicast)"), "a restart is shorter than takeover_delay_ms")
            auditd.stop()
        }
    }

    /// What `augenrules --load` runs (Debian's rules.d: `-D` first, then settings and the host's
    /// rules) deletes the agent's rules too: the agent puts them back at once, says how long the
    /// host was without them, and alerts the next transfer.
    @Test func rulesLoadedWithDeleteAllAreReinstalled() throws {
        try withKernelRestored {
            try #require(try KernelAuditTests.kernelState().rules == "No rules", "the test deletes every rule: it needs a host without any")
            let file = try randomFile("rules.bin", bytes: 100_000)
            let rules = try commandsFile(
                "audit.rules",
                [
                    "-D", "-b 8192", "--backlog_wait_time 60000", "-f 1",
                    "-a always,exit -F arch=b64 -S unlink -k othertool",
                ])
            let agent = try startAgent()
            let ours = try KernelAuditTests.kernelState().rules
            #expect(try runCommand("/usr/sbin/auditctl", ["-R", rules]).status == 0)
            #expect(agent.waitForStderr(containing: "reinstalled them after", seconds: 10), "\(agent.stderr.suffix(3000))")
            let deadline = Date().addingTimeInterval(10)
            while Date() < deadline, !(try KernelAuditTests.kernelState().rules.contains("key=xferwatch")) { usleep(50_000) }
            let now = try KernelAuditTests.kernelState().rules
            #expect(now.contains("othertool"))
            for rule in ours.split(separator: "\n") { #expect(now.contains(rule), "\(rule) is back") }

            let curl = try ftpUpload(file, as: "rules.bin")
            _ = try stop(agent, expecting: 1)
            #expect(try readAlerts().contains { $0.rule == "ftp.internet" && $0.pid == Int(curl) })
            let report = try agentHealth(containing: "were removed by someone else")
            #expect(report.count == 1 && report.first?.reasons.first?.contains(" ms without them") == true, "\(report.map(\.reasons))")
        }
    }

    /// auditd owns everything: it loads the agent's rules (`check-config --print-audit-rules`)
    /// and runs the agent as its plugin, which alerts a transfer from what auditd hands it.
    @Test func theAgentAsAuditdsPlugin() throws {
        try withKernelRestored {
            let file = try randomFile("plugin.bin", bytes: 100_000)
            let config = try writeConfig()
            let printed = try runCommand(Repo.xferwatchdRelease, ["check-config", "--config", config, "--print-audit-rules"])
            try #require(printed.status == 0)
            let rules = try commandsFile("xferwatch.rules", printed.stdout.split(separator: "\n").map(String.init))
            let auditd = try PrivateAuditd(directory: work + "/auditd")
            // auditd passes a plugin at most two arguments: a wrapper names the test's configuration.
            let wrapper = auditd.directory + "/xferwatch-plugin"
            try "#!/bin/sh\nexec \(Repo.xferwatchdRelease) run --source=audisp --config \(config) --flows > \(work)/plugin-flows.jsonl 2> \(work)/plugin.log\n"
                .write(toFile: wrapper, atomically: true, encoding: .utf8)
            chmod(wrapper, 0o755)
            try """
            active = yes
            direction = out
            path = \(wrapper)
            type = always
            format = string

            """.write(toFile: auditd.directory + "/plugins/xferwatch.conf", atomically: true, encoding: .utf8)
            chmod(auditd.directory + "/plugins/xferwatch.conf", 0o640)

            #expect(try auditd.startAsSystemdWould() == 1)
            #expect(try runCommand("/usr/sbin/auditctl", ["-R", rules]).status == 0)
            var deadline = Date().addingTimeInterval(15)
            while Date() < deadline, !((try? String(contentsOfFile: work + "/plugin.log", encoding: .utf8)) ?? "").contains("reading audisp records") {
                usleep(50_000)
            }
            let curl = try ftpUpload(file, as: "plugin.bin")
            deadline = Date().addingTimeInterval(15)
            while Date() < deadline, !(try readAlerts().contains { $0.rule == "ftp.internet" && $0.pid == Int(curl) }) { usleep(100_000) }
            // auditd stops: the plugin's standard input ends, and the agent with it.
            auditd.stop()
            let alerts = try readAlerts()
            #expect(
                alerts.contains { $0.rule == "ftp.internet" && $0.pid == Int(curl) },
                "\(alerts.map(\.rule)) \((try? String(contentsOfFile: work + "/plugin.log", encoding: .utf8)) ?? "")")
            let flows = try documents((try? String(contentsOfFile: work + "/plugin-flows.jsonl", encoding: .utf8)) ?? "")
            #expect(flow(of: curl, in: flows)?.destinationPort == 21)
            #expect(auditd.logged(pid: curl))
        }
    }
}

/// Debian's auditd with a configuration of its own: RAW log under `directory`, no rules
/// loaded by it, plugins from `directory/plugins`.
final class PrivateAuditd {
    let directory: String
    var log: String { directory + "/audit.log" }
    private(set) var child: Child?
    /// The pid of every start, refused ones too.
    private(set) var starts: [Int32] = []

    init(directory: String) throws {
        self.directory = directory
        // auditd refuses a configuration a user other than root could change, and skips a
        // last line without its newline.
        try FileManager.default.createDirectory(atPath: directory + "/plugins", withIntermediateDirectories: true)
        try """
        log_file = \(directory)/audit.log
        log_format = RAW
        flush = NONE
        max_log_file_action = IGNORE
        space_left = 2
        admin_space_left = 1
        plugin_dir = \(directory)/plugins

        """.write(toFile: directory + "/auditd.conf", atomically: true, encoding: .utf8)
        chmod(directory + "/auditd.conf", 0o640)
    }

    deinit { stop() }

    /// Starts auditd until it holds the audit socket, restarting it as auditd.service does
    /// (`Restart=on-failure`, `RestartPreventExitStatus=2 4 6`, 100 ms apart, at most 5
    /// starts). Returns how many starts it took; nil if it never got the socket.
    func startAsSystemdWould() throws -> Int? {
        for start in 1...5 {
            // Standard input /dev/null, as under systemd: with it closed (CI has none), the
            // pipe auditd makes for a plugin would take descriptor 0 and break.
            let auditd = try Child("/usr/sbin/auditd", ["-n", "-c", directory], stdin: FileHandle(forReadingAtPath: "/dev/null"))
            starts.append(auditd.pid)
            let deadline = Date().addingTimeInterval(15)
            while Date() < deadline, auditd.isRunning, try KernelAuditTests.kernelState().pid != String(auditd.pid) {
                usleep(20_000)
            }
            if auditd.isRunning, try KernelAuditTests.kernelState().pid == String(auditd.pid) {
                child = auditd
                return start
            }
            let status = auditd.stop(signal: SIGTERM)
            if [2, 4, 6].contains(status) { return nil }
            usleep(100_000)
        }
        return nil
    }

    /// SIGTERM, as `systemctl stop auditd` (SIGKILL: a crash); waits for it to exit.
    func stop(signal: Int32 = SIGTERM) {
        guard let child else { return }
        child.stop(signal: signal)
        self.child = nil
    }

    /// `service auditd rotate`: SIGUSR1.
    func rotate() {
        if let child { kill(child.pid, SIGUSR1) }
    }

    /// Whether auditd's log (rotated files too) holds a record of `pid`.
    func logged(pid: Int32) -> Bool {
        logText.contains(" pid=\(pid) ")
    }

    /// A record of `type` in the event of a SYSCALL record of `pid`.
    func logged(type: String, pid: Int32) -> Bool {
        let lines = logText.split(separator: "\n")
        let events = Set(lines.filter { $0.contains(" pid=\(pid) ") }.compactMap { $0.firstMatch(of: #/msg=audit\([0-9.:]+\)/#)?.0 })
        return lines.contains { $0.hasPrefix("type=\(type) ") && $0.firstMatch(of: #/msg=audit\([0-9.:]+\)/#).map { events.contains($0.0) } == true }
    }

    private var logText: String {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.filter { $0.hasPrefix("audit.log") }.map { (try? String(contentsOfFile: directory + "/" + $0, encoding: .utf8)) ?? "" }.joined()
    }
}
