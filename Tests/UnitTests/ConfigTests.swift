import Foundation
import TestSupport
import Testing

@testable import AgentConfig

@Suite struct ConfigTests {
    @Test func shippedConfigIsValidAndDocumentsEveryKey() throws {
        let text = try String(contentsOfFile: Repo.path("agent.conf"), encoding: .utf8)
        let config = try AgentConfiguration.parse(text)
        #expect(config.audit.source == .auto)
        // The shipped values are the built-in defaults, written out.
        let defaults = AgentConfiguration()
        #expect(config.detection.commandLinePatterns == defaults.detection.commandLinePatterns)
        #expect(config.detection.processImageFilter == defaults.detection.processImageFilter)
        #expect(config.detection.filenamePatterns == defaults.detection.filenamePatterns)
        #expect(config.detection.scriptedFTPPatterns == defaults.detection.scriptedFTPPatterns)
        #expect(config.network.trustedNetworks == defaults.network.trustedNetworks)
        #expect(config.output.file.path == defaults.output.file.path && config.exclusions.isEmpty)
        #expect(config.output.file.maximumBytes == defaults.output.file.maximumBytes && config.output.file.generations == defaults.output.file.generations)
        let syslog = config.output.syslog, syslogDefaults = defaults.output.syslog
        #expect(syslog.enabled && syslog.address == syslogDefaults.address && syslog.format == .rfc5424 && syslog.payload == .json)
        #expect(syslog.facility == .authpriv && syslog.framing == .octetCounting && syslog.appName == "xferwatch")
        #expect(syslog.maximumMessageBytes == syslogDefaults.maximumMessageBytes && syslog.spoolMaximumBytes == syslogDefaults.spoolMaximumBytes)
        #expect(
            syslog.retryInitialMilliseconds == syslogDefaults.retryInitialMilliseconds
                && syslog.retryMaximumMilliseconds == syslogDefaults.retryMaximumMilliseconds)
        #expect(syslog.tlsVerifyHostname && syslog.tlsCAFile.isEmpty)
        #expect(config.yara.paths == defaults.yara.paths && config.yara.maximumFileSize == defaults.yara.maximumFileSize)
        #expect(config.yara.enabled == defaults.yara.enabled && config.yara.scanUploadedFiles == defaults.yara.scanUploadedFiles)
        #expect(config.yara.queueSize == defaults.yara.queueSize)
        #expect(config.agent.controlSocket == defaults.agent.controlSocket && config.agent.controlGroup == defaults.agent.controlGroup)
        #expect(config.agent.user == defaults.agent.user && !config.agent.keepsRoot)
    }

    /// Every key the reader knows (taken from the reader itself) stands in the shipped file in
    /// its own section, set or commented out, with a comment above it; exclusion keys stand in
    /// the comment that explains `[[exclusions]]`.
    @Test func shippedConfigDocumentsEveryKeyInItsSection() throws {
        let text = try String(contentsOfFile: Repo.path("agent.conf"), encoding: .utf8)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var documented: [String: Int] = [:]
        var section = ""
        for (index, line) in lines.enumerated() {
            if let header = line.wholeMatch(of: #/\[([a-z.]+)\]/#) {
                section = String(header.1)
            } else if let key = line.wholeMatch(of: #/(?:# )?([a-z][a-z0-9_]*) = .*/#) {
                documented[section + "." + key.1] = index
            }
        }
        let paths = AgentConfiguration.keyPaths
        #expect(paths.count > 60, "\(paths)")
        for path in paths {
            if path.hasPrefix("exclusions.") {
                #expect(text.contains(String(path.dropFirst("exclusions.".count))), "\(path) missing from agent.conf")
                continue
            }
            let index = try #require(documented[path], "\(path) missing from its section of agent.conf")
            #expect(lines[index - 1].hasPrefix("#"), "\(path) has no comment")
        }
    }

    /// agent.conf(5) names every key the shipped file shows (set or commented out), and the
    /// three manual pages render without a groff warning.
    @Test func manualPagesAreWellFormedAndNameEveryKey() throws {
        let text = try String(contentsOfFile: Repo.path("agent.conf"), encoding: .utf8)
        let keys = Set(
            text.split(separator: "\n").compactMap { line in
                line.wholeMatch(of: #/#? ?([a-z][a-z0-9_]*) = .*/#).map { String($0.1) }
            })
        #expect(keys.count > 50, "\(keys)")
        let page = try String(contentsOfFile: Repo.path("man/agent.conf.5"), encoding: .utf8)
        // Keys stand in bold (.B, .BR) and groff escapes their hyphens, not their underscores.
        let named = Set(
            page.split(separator: "\n").filter { $0.hasPrefix(".B") }.flatMap { $0.split(whereSeparator: { " ,\"".contains($0) }) }.map(String.init))
        #expect(keys.subtracting(named).isEmpty, "missing from agent.conf(5): \(keys.subtracting(named).sorted())")
        for name in ["xferwatchd.8", "agentctl.8", "agent.conf.5"] {
            let check = try runCommand("/usr/bin/groff", ["-t", "-man", "-ww", "-z", Repo.path("man/" + name)])
            #expect(check.status == 0 && check.stderr.isEmpty, "\(name): \(check.stderr)")
        }
    }

    @Test func missingKeysTakeDefaults() throws {
        let config = try AgentConfiguration.parse("")
        #expect(config.audit.backlogLimit == 8192)
        #expect(config.agent.logLevel == .info)
        #expect(try AgentConfiguration.parse("[audit]\nsource = \"multicast\"\n").audit.source == .multicast)
    }

    @Test func everyProblemIsReportedWithItsKeyPath() {
        let text = """
            [agent]
            state_dir = "relative/path"
            user = ""
            [audit]
            source = "udp"
            backlog_limit = "big"
            rate_limit = -1
            colour = "blue"
            [outputs]
            x = 1
            """
        do {
            _ = try AgentConfiguration.parse(text, file: "test.conf")
            Issue.record("a bad file was accepted")
        } catch {
            let byKey = Dictionary(error.problems.map { ($0.keyPath, $0.reason) }, uniquingKeysWith: { a, _ in a })
            #expect(byKey["agent.state_dir"]?.contains("absolute path") == true)
            #expect(byKey["agent.user"] == "expected 1 to 64 characters")
            #expect(byKey["audit.source"]?.contains("not one of") == true)
            #expect(byKey["audit.backlog_limit"] == "expected an integer, found string")
            #expect(byKey["audit.rate_limit"]?.contains("outside") == true)
            #expect(byKey["audit.colour"] == "unknown key")
            #expect(byKey["outputs"] == "unknown key")
            #expect(error.problems.count == 7)
            #expect(error.description.hasPrefix("test.conf: "))
        }
    }

    @Test func aPatternThatDoesNotCompileIsAProblemWithWhereItBreaks() {
        let text = """
            [detection]
            command_line_patterns = ["scp -r", "(unclosed"]
            """
        do {
            _ = try AgentConfiguration.parse(text)
            Issue.record("a pattern that does not compile was accepted")
        } catch {
            #expect(error.problems.count == 1)
            let problem = error.problems.first
            #expect(problem?.keyPath == "detection.command_line_patterns")
            #expect(problem?.reason.hasPrefix("not a valid regular expression") == true && problem?.reason.contains("(unclosed") == true, "\(error)")
        }
    }

    @Test func syntaxErrorsNameTheLine() {
        do {
            _ = try AgentConfiguration.parse("[audit]\nsource = \n")
            Issue.record("a broken file was accepted")
        } catch {
            #expect(error.problems.first?.reason.contains("line 2") == true)
        }
    }

    @Test func checkConfigCommandExitsOneOnProblems() throws {
        let path = NSTemporaryDirectory() + "xferwatch-bad-\(getpid()).conf"
        try "[audit]\nsource = \"nowhere\"\n".write(toFile: path, atomically: true, encoding: .utf8)
        defer { unlink(path) }
        let bad = try runCommand(Repo.xferwatchd, ["check-config", "--config", path])
        #expect(bad.status == 1)
        #expect(bad.stderr.contains("audit.source"))
        let good = try runCommand(Repo.xferwatchd, ["check-config", "--config", Repo.path("agent.conf")])
        #expect(good.status == 0)
        let missing = try runCommand(Repo.xferwatchd, ["check-config", "--config", "/nonexistent/agent.conf"])
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("cannot read the file"))
    }

    @Test func checkConfigCompilesTheYaraRules() throws {
        let directory = NSTemporaryDirectory() + "xferwatch-yara-\(getpid())"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try "rule broken {\n condition: nonsense\n}\n".write(toFile: directory + "/broken.yar", atomically: true, encoding: .utf8)
        let config = directory + "/agent.conf"
        try "[rules.yara]\npaths = [\"\(Repo.path("rules/yara"))/*.yar\", \"\(directory)/*.yar\"]\n".write(toFile: config, atomically: true, encoding: .utf8)
        let checked = try runCommand(Repo.xferwatchd, ["check-config", "--config", config])
        // As a reload would refuse it: the check fails and names the file, line and reason.
        #expect(checked.status == 1, "a broken rule file fails the check")
        #expect(checked.stderr.contains("yara: \(directory)/broken.yar:2: undefined identifier \"nonsense\""), "\(checked.stderr)")
        #expect(checked.stdout.contains("yara: 2 rules from 1 files") && !checked.stdout.contains(": ok"), "\(checked.stdout)")
        try "[rules.yara]\npaths = [\"rules/*.yar\"]\n".write(toFile: config, atomically: true, encoding: .utf8)
        let relative = try runCommand(Repo.xferwatchd, ["check-config", "--config", config])
        #expect(relative.status == 1 && relative.stderr.contains("rules.yara.paths[0]: expected an absolute path"), "\(relative.stderr)")
    }
}
