import Foundation
import TestSupport
import Testing

/// Faults around the agent as the package runs it (`_xferwatch`): places it cannot write, a
/// disk that fills up under the alert file and the syslog spool. Alerts are kept while they can
/// be, and what cannot be kept is counted, in the last log line and the exit status.
extension KernelAuditTests.FlowEndToEnd {
    /// state_dir made by root beforehand (0755, with a file of an earlier run as root): the
    /// agent, once dropped, cannot write it, so it does not start, and says which path and how
    /// to fix it.
    @Test func refusesToStartWhereItCannotWrite() throws {
        let state = work + "/state"
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        let agent = try Child(Repo.xferwatchdRelease, ["run", "--config", try writeConfig()])
        let status = agent.stop(signal: 0, seconds: 20)
        #expect(status == 1, "\(agent.stderr.suffix(2000))")
        #expect(agent.stderr.contains("cannot write \(state) (Permission denied) as _xferwatch: give it to _xferwatch (chown -R _xferwatch: on the directory)"))
        #expect(agent.stderr.contains("not starting: alerts would have nowhere durable to go"))
        let rules = try runCommand("/sbin/auditctl", ["-l"])
        #expect(!rules.stdout.contains("key=xferwatch"), "the rules go with the agent: \(rules.stdout)")

        // Given to the agent's user, the same directory works.
        _ = try runCommand("/bin/chown", ["-R", "_xferwatch:", state])
        let started = try startAgent()
        _ = try stop(started, expecting: 0)
    }

    /// The alert file in a directory the agent cannot write (root's, 0755), the file itself
    /// given to _xferwatch: with the agent's own rotation it cannot rename the file, so it does
    /// not start; without it (max_size = 0, logrotate's job) it starts, says who must make the
    /// file after a move, and writes its alerts.
    @Test func anAlertFileInADirectoryItCannotWriteNeedsRotationOff() throws {
        let directory = work + "/log"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        #expect(FileManager.default.createFile(atPath: alertFile, contents: nil))
        _ = try runCommand("/bin/chown", ["_xferwatch:", alertFile])

        let rotating = try Child(Repo.xferwatchdRelease, ["run", "--config", try writeConfig()])
        #expect(rotating.stop(signal: 0, seconds: 20) == 1, "\(rotating.stderr.suffix(2000))")
        #expect(rotating.stderr.contains("cannot write \(directory) (Permission denied) as _xferwatch"), "\(rotating.stderr.suffix(2000))")

        let agent = try startAgent("max_size = 0\n[detection]\nhold_execve_alerts_ms = 0\n")
        #expect(
            agent.waitForStderr(
                containing: "_xferwatch cannot make files in \(directory): after logrotate moves \(alertFile), its create directive", seconds: 10),
            "\(agent.stderr.suffix(2000))")
        _ = try client("/bin/true", ["ftp", "-s:rotation-off.txt"])
        let written = try waitForAlerts(atLeast: 1, of: "/usr/bin/true")
        #expect(written.contains { $0.rule == "ftp.scripted" }, "\(written.map(\.rule))")
        _ = try stop(agent, expecting: 0)
    }

    /// The alert file and the syslog spool share a 1 MiB tmpfs that fills up: alerts wait in
    /// memory (status says why), are written once there is room again, and when the agent
    /// stops while the disk is full, those still waiting are counted as lost: last log line,
    /// exit status 3.
    @Test func aFullDiskKeepsAlertsWaitingAndCountsWhatAStopLoses() throws {
        let small = work + "/small"
        try FileManager.default.createDirectory(atPath: small, withIntermediateDirectories: true)
        let user = try #require(getpwnam("_xferwatch")?.pointee)
        let mounted = try runCommand("/bin/mount", ["-t", "tmpfs", "-o", "size=1m,mode=0750,uid=\(user.pw_uid),gid=\(user.pw_gid)", "tmpfs", small])
        try #require(mounted.status == 0, "\(mounted)")
        defer { _ = try? runCommand("/bin/umount", ["-l", small]) }
        let alerts = small + "/alerts.jsonl"
        let extra = "[output.syslog]\naddress = \"tcp://127.0.0.1:9\"\nretry_initial_ms = 100\nretry_max_ms = 200\n"
        let config = try writeConfig(extra)
        try String(contentsOfFile: config, encoding: .utf8).replacingOccurrences(of: alertFile, with: alerts)
            .replacingOccurrences(of: "\(work)/state", with: "\(small)/state").write(toFile: config, atomically: true, encoding: .utf8)
        let agent = try Child(Repo.xferwatchdRelease, ["run", "--config", config])
        defer { _ = agent.stop(signal: SIGKILL) }
        try #require(agent.waitForStderr(containing: "ready: watching", seconds: 20), "\(agent.stderr)")

        func fill() throws {
            let filled = try runCommand("/bin/dd", ["if=/dev/zero", "of=\(small)/filler", "bs=4k"])
            try #require(filled.stderr.contains("No space left"), "\(filled)")
        }
        func alertLines() -> Int { ((try? String(contentsOfFile: alerts, encoding: .utf8)) ?? "").split(separator: "\n").count }
        func waiting() throws -> Int {
            let json = try status().json
            return value(json, "outputs", "file", "waiting") as? Int ?? -1
        }
        try fill()
        let before = alertLines()
        for n in 1...5 { _ = try client("/bin/true", ["ftp", "-s:full-\(n).txt"]) }
        let deadline = Date().addingTimeInterval(10)
        while try waiting() < 5 && Date() < deadline { usleep(100_000) }
        let full = try status().json
        #expect(value(full, "outputs", "file", "waiting") as? Int ?? 0 >= 5, "\(full)")
        #expect((value(full, "outputs", "file", "problem") as? String ?? "").contains("No space left"), "\(full)")
        #expect(alertLines() == before)

        // Room again: what waited is written, in order, once.
        try FileManager.default.removeItem(atPath: small + "/filler")
        let drained = Date().addingTimeInterval(10)
        while try waiting() > 0 && Date() < drained { usleep(100_000) }
        let written = try readAlerts(from: alerts).filter { $0.executable == "/usr/bin/true" }
        #expect(written.count == 5 && Set(written.map(\.id)).count == 5, "\(written.map(\.args))")

        // Full again at the stop: those still waiting are lost, and the agent says so.
        try fill()
        for n in 6...8 { _ = try client("/bin/true", ["ftp", "-s:full-\(n).txt"]) }
        let stuck = Date().addingTimeInterval(10)
        while try waiting() < 3 && Date() < stuck { usleep(100_000) }
        #expect(agent.stop() == 3, "\(agent.stderr.suffix(3000))")
        let last = agent.stderr.split(separator: "\n").last.map(String.init) ?? ""
        #expect(last.contains("stopped with alerts lost: ") && last.contains("not written to \(alerts) (\(alerts): No space left on device)"), "\(last)")
        #expect(last.contains("not spooled for syslog"), "the spool shares the full disk: \(last)")
    }

    /// Others' rules that blind the agent without touching its own (T1562.012): `never` ahead
    /// of ours on the exit list, `never` on the task list, an exclude rule on a record type the
    /// agent reads. Each is named in an agent.health alert within seconds, once; each is scoped
    /// to a uid nobody uses, so the host's auditing is not harmed while the test runs.
    @Test func rulesThatHideEventsFromTheAgentAreReported() throws {
        // The rules are checked every 300 ms here, so several checks pass in a second.
        let agent = try startAgent(audit: "rule_check_interval_ms = 300")
        let hiding = [
            ["exit,never", "-F", "arch=b64", "-S", "connect", "-F", "uid=4242"],
            ["task,never", "-F", "uid=4243"],
            ["exclude,always", "-F", "msgtype=EXECVE", "-F", "uid=4244"],
        ]
        defer { for rule in hiding { _ = try? runCommand("/sbin/auditctl", ["-d"] + rule) } }
        for (index, rule) in hiding.enumerated() {
            let added = try runCommand("/sbin/auditctl", [index == 0 ? "-A" : "-a"] + rule)
            try #require(added.status == 0, "auditctl \(rule): \(added.stderr)")
        }
        func reasons() throws -> [String] { try readAlerts().filter { $0.rule == "agent.health" }.flatMap(\.reasons) }
        let deadline = Date().addingTimeInterval(10)
        while try reasons().filter({ $0.contains("keeps events from xferwatch") }).count < 3 && Date() < deadline { usleep(100_000) }
        let found = try reasons().filter { $0.contains("keeps events from xferwatch") }
        #expect(
            found.contains { $0.contains("\"never,exit arch=b64 uid=4242 syscalls connect\"") && $0.contains("placed before ours, it hides connect") },
            "\(found)")
        #expect(found.contains { $0.contains("\"never,task uid=4243\"") && $0.contains("no syscall of the tasks it matches is audited") }, "\(found)")
        #expect(found.contains { $0.contains("always,exclude msgtype=EXECVE uid=4244") && $0.contains("drops records of types EXECVE") }, "\(found)")
        #expect(found.allSatisfy { $0.hasSuffix("(ATT&CK T1562.012)") })
        // Checked again and again: still there, not reported again.
        func checks() -> Int { agent.stderr.components(separatedBy: "audit rules checked:").count - 1 }
        let checked = checks()
        let later = Date().addingTimeInterval(20)
        while checks() < checked + 3 && Date() < later { usleep(50_000) }
        #expect(checks() >= checked + 3, "\(agent.stderr.suffix(2000))")
        #expect(try reasons().filter { $0.contains("keeps events from xferwatch") }.count == 3)
        let rules = try runCommand("/sbin/auditctl", ["-l"])
        #expect(rules.stdout.contains("key=xferwatch"), "the agent's own rules stay: \(rules.stdout)")
        _ = try stop(agent, expecting: 0)
    }

    /// The exclusion of PROCTITLE records as `auditctl -l` lists it: no key (the kernel's
    /// exclude filter would then exclude nothing), `uid>=0` its mark.
    static let ourExclusion = "-a always,exclude -F msgtype=PROCTITLE -F uid>=0"

    func auditRules() throws -> [String] { try runCommand("/sbin/auditctl", ["-l"]).stdout.split(separator: "\n").map(String.init) }

    /// An exclusion of ours a killed run left is recognised by its mark and removed by the next
    /// run, whatever its state directory; an administrator's own exclusion of the same records
    /// is theirs, and stays through the agent's start and stop.
    @Test func anExclusionOfOursLeftBehindGoesAndAnAdministratorsStays() throws {
        let theirs = "-a always,exclude -F msgtype=PROCTITLE"
        let rules = [Self.ourExclusion, theirs]
        defer {
            for rule in rules {
                _ = try? runCommand("/sbin/auditctl", rule.replacingOccurrences(of: "-a ", with: "-d ").split(separator: " ").map(String.init))
            }
        }
        for rule in rules { try #require(try runCommand("/sbin/auditctl", rule.split(separator: " ").map(String.init)).status == 0) }
        let agent = try startAgent()
        #expect(agent.stderr.contains("removed the exclusion of PROCTITLE records left by an earlier run"), "\(agent.stderr.suffix(2000))")
        let loaded = try auditRules()
        #expect(loaded.filter { $0 == Self.ourExclusion }.count == 1 && loaded.filter { $0 == theirs }.count == 1, "\(loaded)")
        _ = try stop(agent, expecting: 0)
        #expect(try auditRules() == [theirs], "the agent took only its own along")
    }

    /// `xferwatchd cleanup` as the package's unit runs it after every stop (ExecStopPost: as
    /// _xferwatch with the unit's ambient capabilities). Beside a running agent it removes
    /// nothing; after a SIGKILL it removes the dead run's rules and exclusion (auditd's log is
    /// whole again at once) and gives the enabled flag back as that run found it. It leaves the
    /// run's marker: the next start still says the host was not watched.
    @Test func cleanupAfterAKillGivesTheKernelBack() throws {
        let enabledBefore = try KernelAuditTests.kernelState().enabled
        var agent = try startAgent()
        let installed = try auditRules()
        #expect(installed.contains(Self.ourExclusion) && installed.count > 1, "\(installed)")
        let capabilities = "+audit_control,+audit_read,+sys_ptrace,+dac_read_search,+net_raw,+sys_admin"
        func cleanup() throws -> (status: Int32, stdout: String, stderr: String) {
            try runCommand(
                "/usr/bin/setpriv",
                [
                    "--reuid=_xferwatch", "--regid=_xferwatch", "--init-groups", "--inh-caps=\(capabilities)", "--ambient-caps=\(capabilities)", "--",
                    Repo.xferwatchdRelease, "cleanup", "--config", work + "/agent.conf",
                ])
        }
        let beside = try cleanup()
        #expect(beside.status == 0 && beside.stderr.contains("no audit rule of an unfinished run is left"), "\(beside)")
        #expect(try auditRules() == installed, "a running agent's rules stay")

        #expect(agent.stop(signal: SIGKILL) == SIGKILL)
        #expect(try auditRules() == installed, "a killed agent cannot remove its rules")
        let after = try cleanup()
        let removed = after.stderr.components(separatedBy: "removed an audit rule left by a run that did not stop: ").count - 1
        #expect(after.status == 0 && removed == installed.count, "\(after)")
        #expect(try auditRules() == ["No rules"])
        #expect(try KernelAuditTests.kernelState().enabled == enabledBefore, "\(after.stderr)")

        agent = try startAgent()
        #expect(!agent.stderr.contains("removed a stale audit rule"), "nothing was left for the start to remove")
        #expect(agent.stderr.contains("ended without stopping"), "\(agent.stderr)")
        _ = try stop(agent, expecting: 0)
        #expect(try auditRules() == ["No rules"])
    }

    /// SIGKILL with alerts in the syslog spool, then a restart: the kernel kept the dead run's
    /// rules, which the new run replaces (never two sets); the spool resumes where it was; no
    /// alert arrives twice; the new run says the previous one ended without stopping; and the
    /// audit enabled flag ends as the killed run found it.
    @Test func aKilledAgentIsNoticedAndResumesWithoutDuplicates() throws {
        let receiver = try SyslogReceiver(directory: work + "/rsyslog")
        receiver.stop()
        let config = receiver.config("tcp", "retry_initial_ms = 100\nretry_max_ms = 200\n")
        let enabledBefore = try KernelAuditTests.kernelState().enabled
        var agent = try startAgent(config)
        func ourRules() throws -> Int { try runCommand("/sbin/auditctl", ["-l"]).stdout.split(separator: "\n").filter { $0.contains("key=xferwatch") }.count }
        func exclusions() throws -> Int { try auditRules().filter { $0 == Self.ourExclusion }.count }
        let installed = try ourRules()
        #expect(try exclusions() == 1)
        _ = try client("/bin/sh", ["-c", "for i in $(seq 50); do /bin/true ftp -s:killed-$i.txt; done"])
        _ = try waitForAlerts(atLeast: 50, of: "/usr/bin/true")
        #expect(agent.stop(signal: SIGKILL) == SIGKILL)
        #expect(try ourRules() == installed && exclusions() == 1, "a killed agent cannot remove its rules")

        try receiver.start()
        agent = try startAgent(config)
        #expect(agent.stderr.contains("removed a stale audit rule with key xferwatch left by an earlier run"))
        #expect(try ourRules() == installed, "replaced, not doubled")
        #expect(agent.stderr.contains("removed the exclusion of PROCTITLE records left by an earlier run"))
        #expect(try exclusions() == 1)
        let alerts = try waitForAlerts(atLeast: 51)
        let health = alerts.filter { $0.rule == "agent.health" }.flatMap(\.reasons)
        #expect(health.contains { $0.contains("ended without stopping (killed, crashed or the host went down)") }, "\(health)")
        let received = receiver.waitForMessages(carrying: alerts, seconds: 30)
        _ = try stop(agent, expecting: 0)
        let ids = try received.map { try #require(RFC5424Message($0)).eventID }
        #expect(ids.count == Set(ids).count, "\(ids.count - Set(ids).count) duplicates")
        #expect(Set(ids) == Set(alerts.map(\.id)), "\(Set(alerts.map(\.id)).subtracting(ids).count) of \(alerts.count) missing")
        #expect(alerts.count == Set(alerts.map(\.id)).count, "each alert once in the alert file")
        // A clean stop leaves no marker: the next start says nothing.
        agent = try startAgent(config)
        _ = try stop(agent, expecting: 0)
        #expect(!agent.stderr.contains("ended without stopping"))
        #expect(agent.stderr.contains("signal 2 from pid \(getpid()) ("), "who stopped it is logged")
        // The killed run turned auditing on and could not turn it off; its marker said how it
        // found the flag, and the run after it gave that back.
        #expect(try KernelAuditTests.kernelState().enabled == enabledBefore)
        #expect(try exclusions() == 0, "the last run stopped and took its exclusion along")
    }
}
