import Foundation
import TestSupport
import Testing

/// agentctl against the live agent on the real audit stream: numbers that move as commands
/// run, a status document that matches its schema, alerts and flows as the agent wrote them,
/// peers refused by their kernel credentials, reload with good and bad configurations.
extension KernelAuditTests.FlowEndToEnd {
    @Test func statusAlertsAndFlowsFollowWhatTheHostDoes() throws {
        let agent = try startAgent()
        let before = try status()
        #expect(before.exit == 0, "healthy: \(before.text)")
        try validateAgainstSchema(before.json)
        #expect(before.json["pid"] as? Int == Int(agent.pid) && before.json["schema_version"] as? Int == 1)
        #expect(value(before.json, "audit", "source") as? String == "unicast" && (value(before.json, "audit", "rules_installed") as? Int ?? 0) > 0)

        let follower = try Child(Repo.agentctlRelease, ["alerts", "--socket", controlSocket, "--follow", "--json", "--last", "500"])
        for job in 1...3 { _ = try client("/bin/true", ["ftp", "-s:control-\(job).txt"]) }
        let upload = try randomFile("control.tar.gz", bytes: 50_000)
        let curl = try client("/usr/bin/curl", ["-s", "-T", upload, "ftp://203.0.113.10/upload/control.tar.gz"])
        let alerts = try waitForAlerts(atLeast: 3, of: "/usr/bin/true")
        // Until curl's flow has ended and raised its alert, and the rates have a sample.
        var after = try status()
        let settled = Date().addingTimeInterval(20)
        while Date() < settled {
            let byRule = value(after.json, "detection", "alerts_by_rule") as? [String: Int] ?? [:]
            if byRule["ftp.internet"] == 1 && (value(after.json, "audit", "records_per_second", "one_minute") as? Double ?? 0) > 0 { break }
            usleep(100_000)
            after = try status()
        }
        try validateAgainstSchema(after.json)
        for counter in ["records", "events"] {
            #expect((value(after.json, "audit", counter) as? Int ?? 0) > (value(before.json, "audit", counter) as? Int ?? 0), "\(counter) moved")
        }
        #expect((value(after.json, "audit", "records_per_second", "one_minute") as? Double ?? 0) > 0)
        #expect((value(after.json, "detection", "execs_checked") as? Int ?? 0) >= 4)
        let byRule = value(after.json, "detection", "alerts_by_rule") as? [String: Int] ?? [:]
        #expect((byRule["ftp.scripted"] ?? 0) >= 3 && byRule["ftp.internet"] == 1, "\(byRule)")
        let fileAlerts = try readAlerts()
        #expect(value(after.json, "detection", "alerts") as? Int == fileAlerts.count)
        #expect(value(after.json, "outputs", "file", "written") as? Int == fileAlerts.count)
        #expect(value(after.json, "yara", "enabled") as? Bool == false || (value(after.json, "yara", "scans") as? Int ?? 0) > 0)
        #expect(after.text.contains("health") && after.text.contains("healthy"))
        let human = try runCommand(Repo.agentctlRelease, ["status", "--socket", controlSocket])
        #expect(human.status == 0 && human.stdout.contains("ftp.scripted") && human.stdout.contains("xferwatchd 0."), "\(human.stdout)")

        // The recent alerts are the alert file's lines, byte for byte; the follower got them as raised.
        let recent = try runCommand(Repo.agentctlRelease, ["alerts", "--socket", controlSocket, "--json", "--last", "500"])
        let fileLines = try String(contentsOfFile: alertFile, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(recent.status == 0 && recent.stdout.split(separator: "\n").map(String.init) == fileLines)
        let deadline = Date().addingTimeInterval(5)
        while follower.stdout.split(separator: "\n").count < fileLines.count && Date() < deadline { usleep(50_000) }
        follower.stop()
        #expect(follower.stdout.split(separator: "\n").map(String.init) == fileLines, "followed: \(follower.stderr)")
        let lastOne = try runCommand(Repo.agentctlRelease, ["alerts", "--socket", controlSocket, "--last", "1"])
        let newest = try #require(fileAlerts.last)
        #expect(lastOne.stdout.split(separator: "\n").count == 1 && lastOne.stdout.contains("  \(newest.rule)  "), "\(lastOne.stdout)")
        #expect(alerts.contains { $0.rule == "ftp.scripted" })

        let flows = try runCommand(Repo.agentctlRelease, ["flows", "--socket", controlSocket, "--json"])
        let curlFlow = try documents(flows.stdout).map(FlowView.init).first { $0.pid == Int(curl) }
        #expect(curlFlow?.destinationIP == "203.0.113.10" && curlFlow?.networkProtocol == "ftp", "\(flows.stdout)")
        let table = try runCommand(Repo.agentctlRelease, ["flows", "--socket", controlSocket])
        #expect(table.stdout.contains("203.0.113.10:21") && table.stdout.contains("curl"), "\(table.stdout)")

        let rules = try runCommand(Repo.agentctlRelease, ["rules", "--socket", controlSocket, "--json"])
        let report = try #require(try JSONSerialization.jsonObject(with: Data(rules.stdout.utf8)) as? [String: Any])
        let scripted = (report["rules"] as? [[String: Any]])?.first { $0["id"] as? String == "ftp.scripted" }
        #expect(scripted?["alerts"] as? Int == byRule["ftp.scripted"] && scripted?["enabled"] as? Bool == true)
        _ = try stop(agent, expecting: 1)
    }

    /// The socket is 0660 root:adm; behind it, the agent checks the peer's credentials itself.
    @Test func onlyRootAndTheControlGroupMayAsk() throws {
        let agent = try startAgent()
        let agentctl = work + "/agentctl"
        try FileManager.default.copyItem(atPath: Repo.agentctlRelease, toPath: agentctl)
        let mode = try FileManager.default.attributesOfItem(atPath: controlSocket)[.posixPermissions] as? Int
        #expect(mode == 0o660)

        let nobody = try runCommand("/usr/sbin/runuser", ["-u", "nobody", "--", agentctl, "status", "--socket", controlSocket])
        #expect(nobody.status == 4 && nobody.stderr.contains("permission denied"), "\(nobody)")
        // With the file opened to everyone, the agent still refuses.
        chmod(controlSocket, 0o666)
        let opened = try runCommand("/usr/sbin/runuser", ["-u", "nobody", "--", agentctl, "status", "--socket", controlSocket])
        #expect(opened.status == 4 && opened.stderr.contains("neither root nor in group adm"), "\(opened)")
        #expect(agent.waitForStderr(containing: "control: refused uid 65534", seconds: 5))
        chmod(controlSocket, 0o660)
        // adm as the primary group, then as a supplementary one.
        let primary = try runCommand("/usr/sbin/runuser", ["-u", "nobody", "-g", "adm", "--", agentctl, "status", "--socket", controlSocket])
        #expect(primary.status == 0 && primary.stdout.contains("healthy"), "\(primary)")
        let supplementary = try runCommand("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--groups=4", agentctl, "status", "--socket", controlSocket])
        #expect(supplementary.status == 0, "\(supplementary)")
        _ = try stop(agent, expecting: 0)
    }

    /// Hundreds of connections that never speak, and clients that ask and never read, while a
    /// transfer is alerted: the agent (as shipped, `_xferwatch`) keeps attributing and
    /// alerting, agentctl still gets its answer (taking a silent peer's place), and the agent's descriptors stay bounded (32
    /// served, 16 refused, the rest closed at once) and come back once the flood is over.
    @Test func silentAndNonReadingClientsNeitherStallTheAgentNorExhaustItsDescriptors() throws {
        let agent = try startAgent()
        func descriptors() -> Int { (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(agent.pid)/fd").count) ?? -1 }
        func links() -> [String] {
            (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(agent.pid)/fd"))?.compactMap {
                try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(agent.pid)/fd/\($0)")
            } ?? []
        }
        // The agent's accepted control connections: /proc/net/unix lists each socket by inode
        // with the path it was accepted on (the listener's flags are 00010000).
        func acceptedControlConnections() -> Int {
            let held = Set(links().compactMap { $0.hasPrefix("socket:[") ? String($0.dropFirst(8).dropLast()) : nil })
            let unix = ((try? String(contentsOfFile: "/proc/net/unix", encoding: .utf8)) ?? "").split(separator: "\n").map { $0.split(separator: " ") }
            return unix.filter { $0.count >= 8 && $0[7] == controlSocket && $0[3] != "00010000" && held.contains(String($0[6])) }.count
        }
        let baseline = descriptors()
        let baselineLinks = links()
        var flood: [Int32] = []
        defer { for fd in flood { close(fd) } }
        var peak = baseline
        for n in 0..<500 {
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(controlSocket.utf8)) }
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            guard connected == 0 else {
                close(fd)
                usleep(2_000)
                continue
            }
            flood.append(fd)
            // One in five asks for the flows and never reads the answer; one in five starts a
            // request and never ends it; the rest never speak.
            let said = n % 5 == 0 ? #"{"protocol":1,"command":"flows"}"# + "\n" : n % 5 == 1 ? #"{"protocol":1,"# : ""
            if !said.isEmpty { _ = send(fd, said, said.utf8.count, Int32(MSG_NOSIGNAL)) }
            if n % 50 == 0 { peak = max(peak, descriptors()) }
        }
        // Watched for up to 4 s (the loop accepts in its own time, later on a busy machine): the
        // last peers connected just before, and silent peers are closed 5 s after they connect.
        let watching = Date().addingTimeInterval(4)
        var held = acceptedControlConnections()
        while held == 0 && Date() < watching {
            usleep(20_000)
            held = acceptedControlConnections()
        }
        #expect(held > 0, "the flood holds control connections")
        let upload = try randomFile("flood.tar.gz", bytes: 40_000)
        let curl = try client("/usr/bin/curl", ["-s", "-T", upload, "ftp://203.0.113.10/upload/flood.tar.gz"])
        peak = max(peak, descriptors())
        let started = Date()
        let answered = try runCommand(Repo.agentctlRelease, ["status", "--socket", controlSocket], seconds: 20)
        let took = Date().timeIntervalSince(started)
        peak = max(peak, descriptors())
        #expect(flood.count >= 300, "\(flood.count) connections made")
        #expect(answered.status == 0 && answered.stdout.contains("healthy"), "agentctl during the flood: \(answered)")
        #expect(took < 3, "agentctl answered in \(took) s")
        #expect(peak <= baseline + 32 + 16 + 4, "descriptors: \(baseline) before, \(peak) at the peak")
        let alerts = try waitForAlerts(atLeast: 1, of: "/usr/bin/curl")
        #expect(alerts.contains { $0.pid == Int(curl) && $0.rule == "ftp.internet" }, "\(alerts.map(\.rule))")
        #expect(agent.waitForStderr(containing: "control: connection flood", seconds: 5), "\(agent.stderr.suffix(1500))")
        // Silent peers time out (5 s after they connected); nothing stays behind. Waited for,
        // with room for a slow machine.
        for fd in flood { close(fd) }
        flood.removeAll()
        let closing = Date().addingTimeInterval(30)
        while acceptedControlConnections() > 0 && Date() < closing { usleep(100_000) }
        #expect(acceptedControlConnections() == 0, "control connections left behind")
        // Besides: the alert file, opened for curl's alert; a namespace socket may still be idling.
        #expect(descriptors() <= baseline + 3, "descriptors: \(baseline) before (\(baselineLinks)), \(descriptors()) after: \(links())")
        _ = try stop(agent, expecting: 1)
    }

    /// A good configuration is applied at once; a bad one (a pattern, a YARA file) is refused
    /// with its reason and the running one stays; SIGHUP reloads too.
    @Test func reloadAppliesAGoodConfigurationAndRefusesABadOne() throws {
        let agent = try startAgent()
        let config = work + "/agent.conf"
        let original = try String(contentsOfFile: config, encoding: .utf8)
        _ = try client("/bin/true", ["ftp", "-s:before.txt"])
        _ = try waitForAlerts(atLeast: 1, of: "/usr/bin/true")

        try (original + "\n[[exclusions]]\nname = \"nightly-upload\"\nrules = [\"ftp.scripted\"]\nprocess_executable = [\"/usr/bin/true\"]\n")
            .write(toFile: config, atomically: true, encoding: .utf8)
        let good = try runCommand(Repo.agentctlRelease, ["reload", "--socket", controlSocket])
        #expect(good.status == 0 && good.stdout.contains("applied detection, network, exclusions"), "\(good)")
        _ = try client("/bin/true", ["ftp", "-s:after.txt"])
        #expect(try hits("nightly-upload", reaching: 1) == 1, "the new exclusion silences the next scripted ftp")

        let withExclusion = try String(contentsOfFile: config, encoding: .utf8)
        try (withExclusion + "\n[detection]\nscripted_ftp_patterns = [\"(unclosed\"]\n").write(toFile: config, atomically: true, encoding: .utf8)
        let badPattern = try runCommand(Repo.agentctlRelease, ["reload", "--socket", controlSocket])
        #expect(badPattern.status == 1 && badPattern.stderr.contains("detection.scripted_ftp_patterns"), "\(badPattern)")
        let brokenRule = try commandsFile("broken.yar", ["rule broken { condition: }"])
        try (withExclusion.replacingOccurrences(of: "[output.file]", with: "[rules.yara]\npaths = [\"\(brokenRule)\"]\n[output.file]"))
            .write(toFile: config, atomically: true, encoding: .utf8)
        let badYara = try runCommand(Repo.agentctlRelease, ["reload", "--socket", controlSocket])
        #expect(badYara.status == 1 && badYara.stderr.contains("broken.yar"), "\(badYara)")
        _ = try client("/bin/true", ["ftp", "-s:still.txt"])
        #expect(try hits("nightly-upload", reaching: 2) == 2, "the running configuration stayed")

        // SIGHUP: the exclusion goes, scripted ftp alerts again; a restart-only change is named.
        try (original + "\n[host]\nmax_processes = 5000\n").write(toFile: config, atomically: true, encoding: .utf8)
        kill(agent.pid, SIGHUP)
        #expect(agent.waitForStderr(containing: "a restart is needed for host", seconds: 5), "\(agent.stderr.suffix(2000))")
        _ = try client("/bin/true", ["ftp", "-s:again.txt"])
        #expect(try waitForAlerts(atLeast: 2, of: "/usr/bin/true").contains { $0.json["process.command_line"] as? String == "/bin/true ftp -s:again.txt" })
        let status = try self.status()
        #expect(status.exit == 0, "\(status.text)")
        _ = try stop(agent, expecting: 0)
    }

    /// `agentctl metrics` and `[output.metrics]`'s file: the Prometheus text exposition format,
    /// as Prometheus's own Python parser reads it, with counters that moved.
    @Test func metricsInThePrometheusTextFormat() throws {
        let file = work + "/metrics/xferwatch.prom"
        let config = "[detection]\nhold_execve_alerts_ms = 0\n[output.metrics]\nenabled = true\npath = \"\(file)\"\ninterval_seconds = 1\n"
        // A directory the agent's user cannot write: it says so at start.
        try FileManager.default.createDirectory(atPath: work + "/metrics", withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        let warned = try startAgent(config)
        #expect(
            warned.waitForStderr(containing: "_xferwatch cannot make files in \(work)/metrics (Permission denied): \(file) will not be written", seconds: 10),
            "\(warned.stderr.suffix(2000))")
        _ = try stop(warned, expecting: 0)
        // Given to it, as the administrator would.
        _ = try runCommand("/bin/chown", ["_xferwatch:", work + "/metrics"])
        let agent = try startAgent(config)
        _ = try client("/bin/true", ["ftp", "-s:metrics.txt"])
        _ = try waitForAlerts(atLeast: 1, of: "/usr/bin/true")
        // Until the file's next write carries the alert.
        let rewritten = Date().addingTimeInterval(20)
        while Date() < rewritten, !(((try? String(contentsOfFile: file, encoding: .utf8)) ?? "").contains("rule=\"ftp.scripted\"")) { usleep(100_000) }
        let printed = try runCommand(Repo.agentctlRelease, ["metrics", "--socket", controlSocket])
        #expect(printed.status == 0, "\(printed)")
        let written = try String(contentsOfFile: file, encoding: .utf8)
        for (name, text) in [("agentctl metrics", printed.stdout), ("the metrics file", written)] {
            let parsed = try runCommand(
                "/usr/bin/python3",
                [
                    "-c",
                    """
                    import sys
                    from prometheus_client.parser import text_string_to_metric_families
                    for family in text_string_to_metric_families(sys.stdin.read()):
                        for sample in family.samples:
                            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                            print(f"{family.type} {sample.name}{{{labels}}} {sample.value}")
                    """,
                ], stdin: try pipe(text))
            #expect(parsed.status == 0, "\(name) does not parse: \(parsed.stderr)")
            let samples = parsed.stdout.split(separator: "\n").map(String.init)
            #expect(samples.contains("gauge xferwatch_up{} 1.0"), "\(name): \(samples.prefix(5))")
            #expect(samples.contains { $0.hasPrefix("counter xferwatch_alerts_total{rule=ftp.scripted} ") && !$0.hasSuffix(" 0.0") }, "\(name): \(samples)")
            #expect(samples.contains { $0.hasPrefix("counter xferwatch_audit_records_total{} ") && !$0.hasSuffix(" 0.0") })
            #expect(samples.contains { $0.hasPrefix("counter xferwatch_kernel_lost_total{} ") })
            for stage in ["audit", "sockets", "inspection", "first_seen", "yara", "alert_file"] {
                #expect(samples.contains { $0.hasPrefix("counter xferwatch_stage_errors_total{stage=\(stage)} ") }, "\(name): \(stage) \(samples)")
            }
            #expect(samples.contains("gauge xferwatch_yara_queue{} 0.0") && samples.contains { $0.hasPrefix("gauge xferwatch_rules_enabled{} ") })
        }
        _ = try stop(agent, expecting: 0)
    }

    /// A file handle on `text`, for a child's stdin.
    func pipe(_ text: String) throws -> FileHandle {
        let path = work + "/stdin-\(UUID().uuidString)"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return try #require(FileHandle(forReadingAtPath: path))
    }

    /// A receiver that refuses connections makes the agent degraded (exit 1) and says why.
    @Test func anUnreachableReceiverMakesTheAgentDegraded() throws {
        let agent = try startAgent("[output.syslog]\naddress = \"tcp://127.0.0.1:9\"\nretry_initial_ms = 100\n")
        #expect(agent.waitForStderr(containing: "Connection refused", seconds: 10))
        let degraded = try status()
        #expect(degraded.exit == 1)
        try validateAgainstSchema(degraded.json)
        let reasons = value(degraded.json, "health", "reasons") as? [String] ?? []
        #expect(value(degraded.json, "health", "verdict") as? String == "degraded" && reasons.contains { $0.contains("tcp://127.0.0.1:9") }, "\(reasons)")
        #expect(value(degraded.json, "outputs", "syslog", "connected") as? Bool == false)
        _ = try stop(agent, expecting: 0)
        let down = try runCommand(Repo.agentctlRelease, ["status", "--socket", controlSocket])
        #expect(down.status == 3 && down.stderr.contains("xferwatchd is not running"), "\(down)")
    }

    // MARK: harness

    /// `agentctl status --json`: exit status, the document, the raw text.
    func status() throws -> (exit: Int32, json: [String: Any], text: String) {
        let result = try runCommand(Repo.agentctlRelease, ["status", "--socket", controlSocket, "--json"])
        let json = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], "\(result)")
        return (result.status, json, result.stdout)
    }

    func value(_ json: [String: Any], _ path: String...) -> Any? {
        var current: Any? = json
        for key in path { current = (current as? [String: Any])?[key] }
        return current
    }

    /// Checks the document against docs/agentctl-status.schema.json with python3-jsonschema.
    func validateAgainstSchema(_ json: [String: Any]) throws {
        let document = work + "/status.json"
        try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: document))
        let check = try runCommand(
            "/usr/bin/python3",
            [
                "-c",
                """
                import json, sys, jsonschema
                schema = json.load(open(sys.argv[1]))
                jsonschema.Draft202012Validator.check_schema(schema)
                jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(json.load(open(sys.argv[2])))
                """, Repo.path("docs/agentctl-status.schema.json"), document,
            ])
        #expect(check.status == 0, "status --json does not match its schema: \(check.stderr)")
    }

    /// An exclusion's hit count once it reaches `expected` (or after 5 s).
    func hits(_ exclusion: String, reaching expected: Int) throws -> Int? {
        let deadline = Date().addingTimeInterval(5)
        var last: Int?
        repeat {
            let rules = try runCommand(Repo.agentctlRelease, ["rules", "--socket", controlSocket, "--json"])
            let report = try JSONSerialization.jsonObject(with: Data(rules.stdout.utf8)) as? [String: Any]
            last = (report?["exclusions"] as? [[String: Any]])?.first { $0["name"] as? String == exclusion }?["hits"] as? Int
            if let last, last >= expected { return last }
            usleep(100_000)
        } while Date() < deadline
        return last
    }
}
