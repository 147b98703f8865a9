import Foundation
import TestSupport
import Testing

/// Started as root, the agent installs its rules, then becomes another user with four
/// capabilities: it still attributes a root-owned client's transfer with exact bytes, tells
/// systemd it is ready only once the rules are in place, and can no longer write where only
/// root may.
extension KernelAuditTests.FlowEndToEnd {
    @Test func theDroppedAgentKeepsOnlyWhatItNeeds() throws {
        // systemd's notification socket, stood in for by a receiver the agent's user may write to.
        let notifySocket = work + "/notify.sock"
        let receiver = try Child(
            "/usr/bin/python3",
            [
                "-c",
                """
                import os, socket, sys
                s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                s.bind(sys.argv[1]); os.chmod(sys.argv[1], 0o666); s.settimeout(60)
                print("bound", flush=True)
                for _ in range(2): print(s.recv(4096).decode(), flush=True)
                """, notifySocket,
            ])
        let bound = Date().addingTimeInterval(10)
        while Date() < bound, !receiver.stdout.contains("bound") { usleep(20_000) }
        // With YARA on, the scan worker is a second thread that must have dropped as well.
        let agent = try startAgent(
            "[rules.yara]\npaths = [\"\(Repo.path("rules/yara"))/*.yar\"]\n", user: "nobody",
            environment: ["NOTIFY_SOCKET": notifySocket])

        // READY=1 comes once the kernel has the rules.
        let ready = Date().addingTimeInterval(10)
        while Date() < ready, !receiver.stdout.contains("READY=1") { usleep(20_000) }
        #expect(receiver.stdout.contains("READY=1"), "no readiness notification: \(receiver.stdout) \(receiver.stderr)")
        let rules = try runCommand("/sbin/auditctl", ["-l"])
        #expect(rules.stdout.contains("key=xferwatch"), "rules at READY: \(rules.stdout)")

        // Every thread: nobody, the five capabilities and nothing to regain.
        let kept = (UInt64(1) << 2) | (UInt64(1) << 13) | (UInt64(1) << 19) | (UInt64(1) << 30) | (UInt64(1) << 37)
        let tasks = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(agent.pid)/task")
        #expect(tasks.count >= 2, "the scan worker runs: \(tasks)")
        for task in tasks {
            let fields = try procStatus("/proc/\(agent.pid)/task/\(task)/status")
            #expect(fields["Uid"] == "65534 65534 65534 65534" && fields["Gid"] == "65534 65534 65534 65534", "\(fields)")
            #expect(fields["Groups"] == "65534")
            for set in ["CapEff", "CapPrm", "CapBnd"] { #expect(UInt64(fields[set] ?? "", radix: 16) == kept, "\(set) \(fields[set] ?? "?")") }
            #expect(UInt64(fields["CapInh"] ?? "", radix: 16) == 0 && UInt64(fields["CapAmb"] ?? "", radix: 16) == 0)
            #expect(fields["NoNewPrivs"] == "1")
        }
        for directory in ["state", "log", "run"] {
            let owner = try FileManager.default.attributesOfItem(atPath: work + "/" + directory)[.ownerAccountName] as? String
            #expect(owner == "nobody", "\(directory) belongs to \(owner ?? "?")")
        }
        let before = try status()
        try validateAgainstSchema(before.json)
        #expect(value(before.json, "privileges", "user") as? String == "nobody")
        #expect(
            value(before.json, "privileges", "capabilities") as? [String] == [
                "CAP_DAC_READ_SEARCH", "CAP_NET_RAW", "CAP_SYS_PTRACE", "CAP_AUDIT_CONTROL", "CAP_AUDIT_READ",
            ])
        #expect(value(before.json, "privileges", "no_new_privileges") as? Bool == true)
        let human = try runCommand(Repo.agentctlRelease, ["status", "--socket", controlSocket])
        #expect(human.stdout.contains("runs as     nobody (uid 65534, gid 65534), CAP_DAC_READ_SEARCH"), "\(human.stdout)")

        // Still does its job on root's processes: /proc/<pid>/fd, exe and the socket's counters.
        let file = try randomFile("dropped.bin", bytes: 2_000_000)
        let commands = try commandsFile("dropped.ftp", ["user anonymous x", "binary", "put \(file) upload/dropped.bin", "quit"])
        let script = try commandsFile("dropped.sh", ["ftp -n -p 203.0.113.10 < \(commands) > /dev/null"])
        _ = try client("/bin/bash", [script])
        // The flow is reported when the client's sockets are gone: its alerts are written by then,
        // so none of them meets the unwritable file below.
        #expect(agent.waitForStdout(containing: "\"executable\":\"/usr/bin/tnftp\"", seconds: 20), "\(agent.stderr.suffix(2000))")
        let alerts = try waitForAlerts(atLeast: 1, of: "/usr/bin/tnftp")
        #expect(alerts.contains { $0.rule == "ftp.scripted" || $0.rule == "an1170.noninteractive_transfer" }, "\(alerts.map(\.rule))")

        // Cannot: an alert file in a directory only root may write.
        let privateDirectory = work + "/private"
        try FileManager.default.createDirectory(atPath: privateDirectory, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        let config = work + "/agent.conf"
        let writable = try String(contentsOfFile: config, encoding: .utf8)
        try writable.replacingOccurrences(of: alertFile, with: privateDirectory + "/alerts.jsonl").write(toFile: config, atomically: true, encoding: .utf8)
        let reload = try runCommand(Repo.agentctlRelease, ["reload", "--socket", controlSocket])
        #expect(reload.status == 0, "\(reload)")
        let after = try status()
        #expect(after.exit == 1, "degraded: \(after.text)")
        let problem = value(after.json, "outputs", "file", "problem") as? String ?? ""
        #expect(problem.contains("Permission denied"), "\(problem)")
        #expect(!FileManager.default.fileExists(atPath: privateDirectory + "/alerts.jsonl"))
        // Back to a writable file: an alert that came meanwhile (agent health, say) waited in
        // memory and is written now; nothing is lost at the stop.
        try writable.write(toFile: config, atomically: true, encoding: .utf8)
        #expect(try runCommand(Repo.agentctlRelease, ["reload", "--socket", controlSocket]).status == 0)

        let flows = try stop(agent, expecting: 1).map(FlowView.init)  // exit 0: no alert was lost
        let upload = try #require(flows.first { $0.executable == "/usr/bin/tnftp" }, "\(flows.map(\.executable))")
        #expect(upload.parentExecutable == "/usr/bin/bash" && upload.bytesExact == true, "\(upload.json)")
        #expect(upload.dataConnections.count == 1 && upload.data(0, "source") == 2_000_000)
        #expect(receiver.stdout.contains("STOPPING=1"), "\(receiver.stdout)")
        let afterStop = try runCommand("/sbin/auditctl", ["-l"])
        #expect(!afterStop.stdout.contains("key=xferwatch"), "the dropped agent still removes its rules: \(afterStop.stdout)")
    }

    /// `Name:\tvalue` lines of a /proc status file, values with their tabs made spaces.
    func procStatus(_ path: String) throws -> [String: String] {
        var fields: [String: String] = [:]
        for line in try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields[String(line[..<colon])] = line[line.index(after: colon)...].split(whereSeparator: { $0 == "\t" || $0 == " " }).joined(separator: " ")
        }
        return fields
    }
}
