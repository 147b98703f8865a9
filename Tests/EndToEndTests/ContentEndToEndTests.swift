import Foundation
import TestSupport
import Testing

/// Protocols known by their content, end to end: the packet tap (AF_PACKET, classic BPF
/// through libpcap) of the agent as the package runs it, real clients and servers in the lab.
extension KernelAuditTests.FlowEndToEnd {
    @Test func transferProtocolsAreKnownByTheirFirstBytesOnAnyPort() throws {
        let archive = try randomFile("names.tar", bytes: 150_000)
        let payload = try randomFile("py443.bin", bytes: 80_000)
        let password = "Secr3t-Pw-\(UUID().uuidString.prefix(8))"
        // python's ftplib to the FTP server on 443, logging in with a password.
        let script = try commandsFile(
            "ftp443.py",
            [
                "import ftplib, sys",
                "ftp = ftplib.FTP()",
                "ftp.connect('203.0.113.10', 443, timeout=10)",
                "ftp.login('anonymous', '\(password)')",
                "with open(sys.argv[1], 'rb') as f: ftp.storbinary('STOR upload/py443.bin', f)",
                "ftp.quit()",
            ])
        // tnftp whose file names are only in its command file on stdin.
        let commands = try commandsFile("names.ftp", ["user anonymous x", "binary", "put \(archive) upload/names.tar", "quit"])
        // A renamed ssh to sshd on 2222.
        let helper = work + "/.local/helper"
        try FileManager.default.createDirectory(atPath: work + "/.local", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "/usr/bin/ssh", toPath: helper)
        // TFTP from python, by sendto (a write request, then the data block).
        let tftp = try commandsFile(
            "tftp.py",
            [
                "import socket",
                "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)",
                "s.settimeout(5)",
                "s.sendto(b'\\x00\\x02py-tftp.bin\\x00octet\\x00', ('203.0.113.10', 69))",
                "ack, server = s.recvfrom(516)",
                "s.sendto(b'\\x00\\x03\\x00\\x01' + b'x' * 100, server)",
                "s.recvfrom(516)",
            ])
        let agent = try startAgent()
        try #require(agent.waitForStderr(containing: "inspection: capturing", seconds: 10), "\(agent.stderr.suffix(2000))")
        let python = try client("/usr/bin/python3", [script, payload])
        let names = try client("/usr/bin/ftp", ["-n", "-p", "203.0.113.10"], stdin: FileHandle(forReadingAtPath: commands))
        let renamed = try client(helper, ["-p", "2222"] + sshOptions + ["root@203.0.113.10", "true"])
        let udp = try client("/usr/bin/python3", [tftp])
        // Not FTP on FTP's port: an HTTP request to 21 (the server answers with FTP; curl fails).
        _ = try client("/bin/sh", ["-c", "curl -s -m 5 http://203.0.113.10:21/ > /dev/null; true"])
        let flows = try stop(agent, expecting: 5).map { AlertView($0) }
        let alerts = try readAlerts()
        func flow(_ pid: Int32) -> AlertView? { flows.first { $0.pid == Int(pid) } }

        let ftp443 = try #require(flow(python), "no flow for python's ftplib on 443: \(flows.map { $0.json["process.executable"] ?? "" })")
        #expect(ftp443.json["network.protocol"] as? String == "ftp" && ftp443.json["destination.port"] as? Int == 443)
        #expect(ftp443.json["xferwatch.protocol_evidence"] as? String == "FTP server greeting on 203.0.113.10:443", "\(ftp443.json)")
        #expect(ftp443.json["xferwatch.ftp.user"] as? String == "anonymous")
        let transfers = ftp443.json["xferwatch.ftp.transfers"] as? [[String: Any]] ?? []
        #expect(transfers.map { $0["file"] as? String } == ["upload/py443.bin"] && transfers.first?["command"] as? String == "STOR")
        #expect(ftp443.json["xferwatch.transfer.direction"] as? String == "upload")
        let port = try #require(alerts.first { $0.rule == "transfer.nonstandard_port" && $0.pid == Int(python) }, "\(alerts.map(\.rule))")
        #expect(port.reasons.contains("content: FTP server greeting on 203.0.113.10:443"), "\(port.reasons)")
        #expect((port.json["xferwatch.ftp.transfers"] as? [[String: Any]])?.isEmpty == false || port.json["xferwatch.protocol_evidence"] != nil)
        // Elastic's rule looks at ports 20 and 21 only; its sibling sees FTP on 443.
        #expect(!alerts.contains { $0.rule == "ftp.internet" && $0.pid == Int(python) })
        let other = try #require(alerts.first { $0.rule == "ftp.internet_other_path" && $0.pid == Int(python) }, "\(alerts.map(\.rule))")
        #expect(other.reasons.first == "FTP session on port 443", "\(other.reasons)")

        let stdinNames = try #require(flow(names))
        #expect((stdinNames.json["xferwatch.ftp.transfers"] as? [[String: Any]])?.first?["file"] as? String == "upload/names.tar")
        let archiveAlert = try #require(alerts.first { $0.rule == "an1169.suspicious_filename" && $0.pid == Int(names) }, "\(alerts.map(\.rule))")
        #expect(archiveAlert.reasons == ["transfer command names names.tar"])
        // tnftp's passive data connection was announced by its EPSV (or PASV) reply.
        let data = stdinNames.json["xferwatch.data_connections"] as? [[String: Any]] ?? []
        #expect(data.count == 1 && ["EPSV", "PASV"].contains(data.first?["announced_by"] as? String ?? ""), "\(data)")

        let ssh = try #require(flow(renamed), "no flow for the renamed ssh")
        #expect(ssh.json["network.protocol"] as? String == "ssh" && ssh.json["destination.port"] as? Int == 2222)
        #expect((ssh.json["xferwatch.ssh.server"] as? String)?.hasPrefix("SSH-2.0-OpenSSH") == true)
        #expect((ssh.json["xferwatch.ssh.client"] as? String)?.hasPrefix("SSH-2.0-OpenSSH") == true)
        #expect(ssh.json["xferwatch.process.identity"] as? String == "ssh")
        #expect(alerts.contains { $0.rule == "transfer.nonstandard_port" && $0.pid == Int(renamed) }, "\(alerts.map(\.rule))")

        let request = try #require(flow(udp), "no flow for python's TFTP")
        #expect(request.json["xferwatch.tftp_request.file"] as? String == "py-tftp.bin" && request.json["xferwatch.tftp_request.mode"] as? String == "octet")
        #expect(request.json["xferwatch.transfer.direction"] as? String == "upload")

        let mismatch = try #require(alerts.first { $0.rule == "transfer.protocol_mismatch" }, "\(alerts.map(\.rule))")
        #expect(mismatch.executable == "/usr/bin/curl" && mismatch.reasons.first?.hasPrefix("HTTP request on port 21") == true, "\(mismatch.reasons)")
        #expect(mismatch.json["threat.technique.id"] as? String == "T1071.002")
        #expect(!alerts.contains { $0.rule == "transfer.protocol_mismatch" && $0.pid != mismatch.pid }, "real FTP on 21 is no mismatch")

        // The password is in no output: alerts, flows, the agent's own log.
        let everything = try String(contentsOfFile: alertFile, encoding: .utf8) + agent.stdout + agent.stderr
        #expect(!everything.contains(password))
    }

    /// Active and passive data connections tied to their session by what the control channel
    /// announced: PORT or EPRT for active, PASV or EPSV for passive.
    @Test func dataConnectionsAreMatchedByTheirAnnouncement() throws {
        let file = try randomFile("announce.bin", bytes: 60_000)
        let put = try commandsFile("announce.ftp", ["user anonymous x", "binary", "put \(file) upload/announce.bin", "quit"])
        let agent = try startAgent()
        try #require(agent.waitForStderr(containing: "inspection: capturing", seconds: 10))
        let active = try client("/usr/bin/ftp", ["-n", "-A", "203.0.113.10"], stdin: FileHandle(forReadingAtPath: put))
        let curl = try client("/usr/bin/curl", ["-s", "-T", file, "ftp://203.0.113.10/upload/curl-epsv.bin"])
        let flows = try stop(agent, expecting: 2).map { AlertView($0) }
        func announced(_ pid: Int32) -> [String] {
            let data = flows.first { $0.pid == Int(pid) }?.json["xferwatch.data_connections"] as? [[String: Any]] ?? []
            return data.map { "\($0["mode"] ?? "?") \($0["announced_by"] ?? "-")" }
        }
        #expect(["active PORT", "active EPRT"].contains(announced(active).first ?? ""), "\(announced(active))")
        #expect(announced(curl) == ["passive EPSV"], "curl asks EPSV first: \(announced(curl))")
    }
}
