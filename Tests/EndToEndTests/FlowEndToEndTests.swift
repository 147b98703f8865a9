import Foundation
import TestSupport
import Testing

/// Real servers (vsftpd, tftpd-hpa, sshd) in a network namespace, real clients on the host and
/// in a second namespace, and the agent on the real audit stream: every flow must name the
/// process that made it, its parent, protocol and direction, with TCP bytes from the kernel.
/// Nested in the serialized kernel suite: it takes the audit socket.
extension KernelAuditTests {
    /// A class: deinit takes the lab down after each test, even a failed one.
    @Suite final class FlowEndToEnd {
        let lab: String
        let work: String
        let sshOptions: [String]

        init() throws {
            try #require(getuid() == 0, "the flow end-to-end tests need root (CI runs as root)")
            try #require(FileManager.default.isExecutableFile(atPath: Repo.xferwatchdRelease), "the release build is missing: run make test")
            try KernelAuditTests.removeLeftovers()
            for tool in ["/usr/sbin/vsftpd", "/usr/sbin/in.tftpd", "/usr/sbin/sshd", "/usr/bin/tnftp", "/usr/bin/lftp", "/usr/bin/tftp", "/usr/bin/busybox"] {
                try #require(FileManager.default.isExecutableFile(atPath: tool), "\(tool) is missing: run make test")
            }
            let base = NSTemporaryDirectory() + "xferwatch-flows-\(UUID().uuidString)"
            lab = base + "/lab"
            work = base + "/work"
            try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
            let up = try runCommand(Repo.path("Tests/support/transfer-lab"), ["up", lab])
            try #require(up.status == 0, "transfer-lab up failed: \(up.stderr)")
            sshOptions = [
                "-i", lab + "/client_key", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "BatchMode=yes", "-o", "LogLevel=ERROR",
            ]
        }

        deinit {
            _ = try? runCommand(Repo.path("Tests/support/transfer-lab"), ["down", lab])
            try? FileManager.default.removeItem(atPath: (lab as NSString).deletingLastPathComponent)
        }

        // MARK: tests

        @Test func ftpClientsAreTiedToTheirProcessesWithExactBytes() throws {
            let small = try randomFile("small.bin", bytes: 3_000_000)
            let large = try randomFile("large.bin", bytes: 20_000_000)
            let put = try commandsFile("put.ftp", ["user anonymous x", "binary", "put \(small) upload/passive.bin", "quit"])
            let get = try commandsFile("get.ftp", ["user anonymous x", "binary", "get upload/passive.bin \(work)/back.bin", "quit"])
            let agent = try startAgent()
            // tnftp with commands in a file on stdin, passive mode, upload.
            let passive = try client("/usr/bin/ftp", ["-n", "-p", "203.0.113.10"], stdin: FileHandle(forReadingAtPath: put))
            // tnftp, active mode: the server connects back and the client accepts; download.
            let pipe = Pipe()
            pipe.fileHandleForWriting.write(try Data(contentsOf: URL(fileURLWithPath: get)))
            try pipe.fileHandleForWriting.close()
            let active = try client("/usr/bin/ftp", ["-n", "-A", "203.0.113.10"], stdin: pipe.fileHandleForReading)
            let lftp = try client("/usr/bin/lftp", ["-u", "anonymous,x", "-e", "put \(small) -o upload/lftp.bin; quit", "203.0.113.10"])
            // 20 MB in well under a second: gone before any poll, counted from the destroy notification.
            let curl = try client("/usr/bin/curl", ["-s", "-T", large, "ftp://203.0.113.10/upload/large.bin"])
            let flows = try stop(agent, expecting: 4)

            let me = Int(getpid())
            let p = try #require(flow(of: passive, in: flows), "no flow for tnftp (pid \(passive)): \(flows)")
            #expect(p.executable == "/usr/bin/tnftp")
            #expect(p.parentPid == me)
            #expect(p.networkProtocol == "ftp")
            #expect(p.transport == "tcp")
            #expect(p.destinationIP == "203.0.113.10" && p.destinationPort == 21)
            #expect(p.transferDirection == "upload")
            #expect(p.dataModes == ["passive"])
            #expect(p.dataConnections.count == 1 && p.data(0, "source") == 3_000_000, "data bytes are exact")
            #expect(roughly(p.bytesOut, 3_000_000))
            #expect(p.bytesExact == true)
            #expect(p.state == "closed")
            #expect(p.interactive == false && p.reasons.contains("no tty"))
            #expect(p.stdinRead(as: "file"), "stdin \(p.stdin ?? "?"): \(p.reasons)")

            let a = try #require(flow(of: active, in: flows), "no flow for active tnftp (pid \(active))")
            #expect(a.executable == "/usr/bin/tnftp" && a.parentPid == me)
            #expect(a.dataModes == ["active"])
            #expect(a.transferDirection == "download")
            #expect(a.dataConnections.count == 1 && a.data(0, "destination") == 3_000_000)
            #expect(roughly(a.bytesIn, 3_000_000))
            #expect(a.stdinRead(as: "pipe"), "stdin \(a.stdin ?? "?"): \(a.reasons)")

            let l = try #require(flow(of: lftp, in: flows), "no flow for lftp (pid \(lftp))")
            #expect(l.executable == "/usr/bin/lftp" && l.parentPid == me && l.networkProtocol == "ftp")
            #expect(l.transferDirection == "upload")
            #expect(roughly(l.bytesOut, 3_000_000))

            let c = try #require(flow(of: curl, in: flows), "no flow for curl (pid \(curl))")
            #expect(c.executable == "/usr/bin/curl" && c.parentPid == me && c.networkProtocol == "ftp")
            #expect(c.transferDirection == "upload")
            #expect(roughly(c.bytesOut, 20_000_000))
            #expect(c.bytesExact == true)

            expectOnly([passive, active, lftp, curl], in: flows)
        }

        @Test func scpAndSftpFlowsBelongToTheirSshChild() throws {
            let file = try randomFile("ssh.bin", bytes: 4_000_000)
            let batch = try commandsFile("batch.sftp", ["put \(file) \(lab)/sshroot/sftp.bin"])
            let agent = try startAgent()
            let scp = try client("/usr/bin/scp", sshOptions + [file, "root@203.0.113.10:\(lab)/sshroot/scp.bin"])
            let legacy = try client("/usr/bin/scp", ["-O"] + sshOptions + [file, "root@203.0.113.10:\(lab)/sshroot/legacy.bin"])
            let download = try client("/usr/bin/scp", sshOptions + ["root@203.0.113.10:\(lab)/sshroot/scp.bin", work + "/back.bin"])
            let sftp = try client("/usr/bin/sftp", sshOptions + ["-b", batch, "root@203.0.113.10"])
            let flows = try stop(agent, expecting: 4)

            for (pid, proto, direction) in [(scp, "scp", "upload"), (legacy, "scp", "upload"), (download, "scp", "download"), (sftp, "sftp", "upload")] {
                let f = try #require(flow(withParent: pid, in: flows), "no flow whose parent is \(proto) pid \(pid): \(flows)")
                #expect(f.executable == "/usr/bin/ssh", "the ssh child owns the connection")
                #expect(f.parentExecutable == (proto == "scp" ? "/usr/bin/scp" : "/usr/bin/sftp"))
                #expect(f.networkProtocol == proto)
                #expect(f.destinationPort == 22)
                #expect(f.transferDirection == direction, "\(proto) pid \(pid)")
                #expect(
                    roughly(direction == "upload" ? f.bytesOut : f.bytesIn, 4_000_000),
                    "\(proto) pid \(pid): \(String(describing: f.bytesOut)) out, \(String(describing: f.bytesIn)) in")
                #expect(f.bytesExact == true)
            }
            let sshChildren = flows.map(FlowView.init).compactMap(\.pid).map(Int32.init)
            #expect(flows.map(FlowView.init).allSatisfy { [scp, legacy, download, sftp].map(Int.init).contains($0.parentPid ?? -1) })
            #expect(sshChildren.count == 4)
        }

        @Test func tftpSessionsOfTftpHpaAndBusybox() throws {
            let file = try randomFile("tftp.bin", bytes: 200_000)
            let agent = try startAgent()
            let put = try client("/usr/bin/tftp", ["203.0.113.10", "-c", "put", file, "hpa.bin"])
            let get = try client("/usr/bin/tftp", ["203.0.113.10", "-c", "get", "hpa.bin", work + "/hpa-back.bin"])
            let busybox = try client("/usr/bin/busybox", ["tftp", "-p", "-l", file, "-r", "busybox.bin", "203.0.113.10"])
            let flows = try stop(agent, expecting: 3)

            let p = try #require(flow(of: put, in: flows), "no flow for tftp put (pid \(put)): \(flows)")
            #expect(p.executable == "/usr/bin/tftp" && p.parentPid == Int(getpid()))
            #expect(p.networkProtocol == "tftp" && p.transport == "udp" && p.destinationPort == 69)
            #expect(p.transferDirection == "upload")
            // Every datagram is audited: data plus 4-byte headers plus the request.
            #expect((p.bytesOut ?? 0) >= 200_000 && Double(p.bytesOut ?? 0) < 200_000 * 1.02)
            let g = try #require(flow(of: get, in: flows), "no flow for tftp get (pid \(get))")
            #expect(g.networkProtocol == "tftp" && g.transferDirection == "download")
            let b = try #require(flow(of: busybox, in: flows), "no flow for busybox tftp (pid \(busybox))")
            #expect(b.executable == "/usr/bin/busybox" && b.networkProtocol == "tftp" && b.transferDirection == "upload")
            expectOnly([put, get, busybox], in: flows)
        }

        @Test func aClientInAnotherNetworkNamespace() throws {
            let file = try randomFile("ns.bin", bytes: 5_000_000)
            let agent = try startAgent()
            let host = try client("/usr/bin/curl", ["-s", "-T", file, "ftp://203.0.113.10/upload/host.bin"])
            let contained = try client("/usr/sbin/ip", ["netns", "exec", "xwcli", "/usr/bin/curl", "-s", "-T", file, "ftp://203.0.113.10/upload/ns.bin"])
            let flows = try stop(agent, expecting: 2)

            let h = try #require(flow(of: host, in: flows), "no flow for the host's curl: \(flows)")
            let c = try #require(flow(of: contained, in: flows), "no flow for the contained curl (pid \(contained)): \(flows)")
            #expect(c.executable == "/usr/bin/curl" && c.parentPid == Int(getpid()))
            #expect(c.namespace != nil && c.namespace != h.namespace, "the contained client's own network namespace")
            #expect(c.networkProtocol == "ftp" && c.transferDirection == "upload")
            #expect(c.dataConnections.count == 1 && c.data(0, "source") == 5_000_000)
            #expect(c.bytesExact == true)
            expectOnly([host, contained], in: flows)
        }

        @Test func interactiveOnlyWithATerminalALoginAndNoScript() throws {
            let file = try randomFile("tty.bin", bytes: 100_000)
            // `!sleep`: the client outlives the agent's read of its /proc by a margin, also when
            // the agent runs slower (under AddressSanitizer, make test-asan).
            let commands = try commandsFile("tty.ftp", ["user anonymous x", "put \(file) upload/tty.bin", "!sleep 0.3", "quit"])
            let script = try commandsFile("job.sh", ["ftp -n -p 203.0.113.10 < \(commands) > /dev/null"])
            let agent = try startAgent()
            // On a pseudo-terminal, with a login uid, ftp reading the terminal: interactive.
            let typed = try client(
                "/usr/bin/script", ["-qefc", "sh -c 'echo 0 > /proc/self/loginuid; exec ftp -n -p 203.0.113.10'", "/dev/null"],
                stdin: FileHandle(forReadingAtPath: commands))
            // The same commands from a shell script: not interactive, and why.
            _ = try client("/bin/bash", [script])
            let flows = try stop(agent, expecting: 2).map(FlowView.init)
            #expect(flows.count == 2)
            let interactive = try #require(flows.first { $0.parentPid != Int(getpid()) && $0.reasons.isEmpty }, "\(flows.map(\.reasons))")
            #expect(interactive.interactive == true && interactive.executable == "/usr/bin/tnftp")
            _ = typed
            let scripted = try #require(flows.first { $0.reasons.contains("shell running a script file") }, "\(flows.map(\.reasons))")
            #expect(scripted.interactive == false)
            #expect(scripted.reasons.contains("no tty") && scripted.stdinRead(as: "file"), "stdin \(scripted.stdin ?? "?"): \(scripted.reasons)")

            // The person is no automation; the script is, and scripted ftp too.
            let alerts = try readAlerts()
            let personAlerts = alerts.filter { $0.pid == interactive.pid }
            #expect(!personAlerts.contains { $0.rule == "an1170.noninteractive_transfer" || $0.rule == "ftp.scripted" }, "\(personAlerts.map(\.rule))")
            #expect(personAlerts.contains { $0.rule == "ftp.internet" }, "FTP to the Internet is still FTP to the Internet")
            #expect(personAlerts.allSatisfy { $0.json["process.interactive"] as? Bool == true })
            let automated = Set(alerts.filter { $0.pid == scripted.pid }.map(\.rule))
            #expect(automated.isSuperset(of: ["an1170.noninteractive_transfer", "ftp.scripted", "ftp.internet"]))
        }

        /// No flow may belong to anything but the clients: servers are not clients.
        func expectOnly(_ pids: [Int32], in flows: [[String: Any]]) {
            for f in flows.map(FlowView.init) {
                #expect(pids.map(Int.init).contains(f.pid ?? -1), "unexpected flow of \(f.executable ?? "?") pid \(f.pid ?? -1)")
                #expect(!["/usr/sbin/vsftpd", "/usr/sbin/in.tftpd", "/usr/sbin/sshd"].contains(f.executable ?? ""))
            }
        }

        // MARK: harness

        /// Starts the agent on the live stream (unicast) with flows on stdout, its state and
        /// alerts (`alertFile`) under the test's directory; `extra` adds configuration. It drops
        /// to `user`, by default the package's `_xferwatch` (tests run the agent as shipped), and
        /// makes those directories itself, so they are that user's. Returns once start-up is
        /// over (the packet tap, the YARA worker, the processes read from /proc): what a test
        /// measures or does next meets the running agent.
        func startAgent(
            _ extra: String = "", user: String = "_xferwatch", flows: String = "", source: String = "unicast", audit: String = "",
            environment: [String: String] = [:]
        ) throws -> Child {
            let config = try writeConfig(extra, user: user, flows: flows, source: source, audit: audit)
            let agent = try Child(Repo.xferwatchdRelease, ["run", "--config", config, "--flows"], environment: environment)
            try #require(agent.waitForStderr(containing: "ready: watching", seconds: 20), "agent did not start: \(agent.stderr)")
            return agent
        }

        /// The test agent's configuration, in work/agent.conf; its path.
        /// `source`: unicast unless a test says otherwise (this machine has auditd installed and
        /// enabled but stopped, where `auto` would leave the socket free for it).
        /// `audit` and `flows` add keys to those sections.
        func writeConfig(_ extra: String = "", user: String = "_xferwatch", flows: String = "", source: String = "unicast", audit: String = "") throws -> String
        {
            let config = work + "/agent.conf"
            try """
            [agent]
            log_level = "debug"
            state_dir = "\(work)/state"
            control_socket = "\(controlSocket)"
            user = "\(user)"
            [audit]
            source = "\(source)"
            event_timeout_ms = 500
            \(audit)
            [flows]
            poll_interval_ms = 200
            \(flows)
            [output.file]
            path = "\(alertFile)"

            """.appending(extra).appending(noSyslogUnlessAsked(extra)).write(toFile: config, atomically: true, encoding: .utf8)
            return config
        }

        /// Waits until the agent has reported `count` flows (or 30 s, for a slow, busy machine),
        /// stops it, returns them all.
        func stop(_ agent: Child, expecting count: Int) throws -> [[String: Any]] {
            let deadline = Date().addingTimeInterval(30)
            while Date() < deadline, agent.stdout.split(separator: "\n").count < count { usleep(50_000) }
            #expect(agent.stop() == 0, "agent: \(agent.stderr.suffix(6000))")
            return try documents(agent.stdout)
        }

        /// Runs a client to completion; its pid is the flow owner (or the ssh child's parent).
        @discardableResult
        func client(_ executable: String, _ arguments: [String], stdin: FileHandle? = nil) throws -> Int32 {
            let child = try Child(executable, arguments, stdin: stdin ?? FileHandle(forReadingAtPath: "/dev/null"))
            child.waitUntilExit()
            let status = child.stop(signal: SIGKILL)
            try #require(status == 0, "\(executable) \(arguments) failed (\(status)): \(child.stderr)")
            return child.pid
        }

        var alertFile: String { work + "/log/alerts.jsonl" }
        var controlSocket: String { work + "/run/agent.sock" }

        func randomFile(_ name: String, bytes: Int) throws -> String {
            let path = work + "/" + name
            let dd = try runCommand("/bin/dd", ["if=/dev/urandom", "of=\(path)", "bs=\(bytes)", "count=1", "iflag=fullblock", "status=none"])
            try #require(dd.status == 0)
            return path
        }

        func commandsFile(_ name: String, _ lines: [String]) throws -> String {
            let path = work + "/" + name
            try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }
    }
}

/// Reading a flow's JSON; every field is one the documents' model describes.
struct FlowView {
    let json: [String: Any]

    init(json: [String: Any]) {
        expectDescribed(json)
        self.json = json
    }

    private func object(_ path: String...) -> [String: Any]? {
        var current: Any? = json
        for key in path { current = (current as? [String: Any])?[key] }
        return current as? [String: Any]
    }

    var pid: Int? { object("process")?["pid"] as? Int }
    var executable: String? { object("process")?["executable"] as? String }
    var parentPid: Int? { object("process", "parent")?["pid"] as? Int }
    var parentExecutable: String? { object("process", "parent")?["executable"] as? String }
    var networkProtocol: String? { object("network")?["protocol"] as? String }
    var transport: String? { object("network")?["transport"] as? String }
    var transferDirection: String? { object("xferwatch", "transfer")?["direction"] as? String }
    var bytesOut: Int? { object("source")?["bytes"] as? Int }
    var bytesIn: Int? { object("destination")?["bytes"] as? Int }
    var destinationIP: String? { object("destination")?["ip"] as? String }
    var destinationPort: Int? { object("destination")?["port"] as? Int }
    var bytesExact: Bool? { object("xferwatch")?["bytes_exact"] as? Bool }
    var state: String? { object("xferwatch")?["state"] as? String }
    var namespace: Int? { object("xferwatch")?["network_namespace"] as? Int }
    var interactive: Bool? { object("xferwatch")?["interactive"] as? Bool }
    var reasons: [String] { object("xferwatch")?["interactive_reasons"] as? [String] ?? [] }
    /// What the agent found on the client's stdin: its kind, or "unknown" when the client was
    /// gone before the agent's read.
    var stdin: String? { object("xferwatch", "process")?["stdin"] as? String }
    /// The agent races a short-lived client for its stdin and reports either outcome: read as
    /// `kind` (and a reason says so), or unknown (and no reason claims it).
    func stdinRead(as kind: String) -> Bool {
        stdin == kind ? reasons.contains("stdin is a \(kind)") : stdin == "unknown" && !reasons.contains { $0.hasPrefix("stdin is") }
    }
    var dataConnections: [[String: Any]] { object("xferwatch")?["data_connections"] as? [[String: Any]] ?? [] }
    func data(_ i: Int, _ side: String) -> Int? { (dataConnections[i][side] as? [String: Any])?["bytes"] as? Int }
    var dataModes: [String] { dataConnections.compactMap { $0["mode"] as? String } }
}

func flow(of pid: Int32, in flows: [[String: Any]]) -> FlowView? {
    flows.map(FlowView.init).first { $0.pid == Int(pid) }
}

func flow(withParent pid: Int32, in flows: [[String: Any]]) -> FlowView? {
    flows.map(FlowView.init).first { $0.parentPid == Int(pid) }
}

/// Within 1% (or `within`) of the file size: the control channel and protocol headers (TLS's
/// records, SMB's messages) add a little.
func roughly(_ value: Int?, _ expected: Int, within share: Double = 0.01) -> Bool {
    guard let value else { return false }
    return value >= expected && Double(value) <= Double(expected) * (1 + share)
}
