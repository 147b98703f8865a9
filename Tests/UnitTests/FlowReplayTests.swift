import ByteJSON
import Foundation
import KernelAudit
import Runtime
import TestSupport
import Testing

@testable import AuditIngest
@testable import Flows
@testable import HostState

/// Flows from a log the kernel recorded while real clients ran against Tests/support/transfer-lab
/// (Tests/Fixtures/flows/commands.sh; manifest.txt names each client's pid). Replay has no
/// /proc and no sockets: process, parent, protocol and the command line's direction only.
@Suite struct FlowReplayTests {
    static func replay() throws -> (flows: [Flow], pids: [String: Int32], tracker: FlowTracker) {
        let replayed = try replayFixture("flows/flows.log")
        return (replayed.flows, try manifest("flows/manifest.txt"), replayed.graph.tracker)
    }

    @Test func everyClientHasItsFlowAndNothingElseDoes() throws {
        let (flows, pids, tracker) = try Self.replay()
        func owned(_ name: String) throws -> Flow {
            let pid = try #require(pids[name])
            return try #require(flows.first { $0.process.pid == pid || $0.transferProcess?.pid == pid }, "no flow for \(name)")
        }
        let passive = try owned("ftp-passive-put")
        #expect(passive.process.executable == "/usr/bin/tnftp" && passive.networkProtocol == .ftp && passive.remotePort == 21)
        #expect(passive.dataConnections.count == 1 && passive.dataConnections[0].accepted == false)
        let active = try owned("ftp-active-get")
        #expect(active.dataConnections.count == 1 && active.dataConnections[0].accepted == true, "the client accepted the server's data connection")
        let curl = try owned("curl-put")
        #expect(curl.process.executable == "/usr/bin/curl" && curl.transferDirection == .upload && curl.dataConnections.count == 1)

        let scp = try owned("scp-put")
        #expect(scp.process.executable == "/usr/bin/ssh" && scp.process.parent?.pid == pids["scp-put"])
        #expect(scp.networkProtocol == .scp && scp.transferDirection == .upload)
        let legacy = try owned("scp-legacy-get")
        #expect(legacy.networkProtocol == .scp && legacy.transferDirection == .download)
        let sftp = try owned("sftp-batch-put")
        #expect(sftp.networkProtocol == .sftp && sftp.transferProcess?.executable == "/usr/bin/sftp")

        let tftp = try owned("tftp-put")
        #expect(tftp.networkProtocol == .tftp && tftp.transport == .udp && tftp.transferDirection == .upload)
        // Every block went through an audited sendto: 300,000 bytes plus 4-byte headers, the
        // request and the odd retransmission.
        #expect((tftp.bytesOut ?? 0) >= 302_344 && Double(tftp.bytesOut ?? 0) < 300_000 * 1.02 && tftp.bytesExact)
        #expect(tftp.transferPort != nil && tftp.transferPort != 69)
        let busybox = try owned("busybox-tftp-get")
        #expect(busybox.networkProtocol == .tftp && busybox.transferDirection == .download)

        // vsftpd's active-mode connect back, sshd, in.tftpd: server side, never a flow.
        let clientPids = Set(pids.values)
        for flow in flows {
            #expect(
                clientPids.contains(flow.process.pid) || clientPids.contains(flow.transferProcess?.pid ?? -1),
                "flow of \(flow.process.executable) pid \(flow.process.pid) belongs to no client")
        }
        #expect(tracker.counters.serverSide > 0)
        // Every client in the manifest has its flow (curl-http talked HTTP to port 21: ftp by port).
        #expect(flows.count == pids.count)
    }

    @Test func ancestryFollowsTheParentsInTheLog() throws {
        let (flows, pids, _) = try Self.replay()
        let scp = try #require(flows.first { $0.transferProcess?.pid == pids["scp-put"] })
        let chain = scp.process.ancestors().map(\.executable)
        #expect(chain.first == "/usr/bin/scp")
        #expect(chain.dropFirst().first == "/usr/bin/bash", "scp was exec'd by the workload's shell: \(chain)")
    }

    /// A parent like `bash -c '<long script>'` shows its head, not its 40 KB: the alert still
    /// fits a syslog message. The process's own arguments stay whole; cuts fall between characters.
    @Test func longAncestorArgumentsAreCutAndCounted() throws {
        func record(_ pid: Int32, _ args: [String], parent: ProcessRecord?) -> ProcessRecord {
            ProcessRecord(
                pid: pid, ppid: parent?.pid ?? 0, startTicks: nil, startTime: 0, executable: "/usr/bin/" + args[0], arguments: args,
                workingDirectory: "/", uid: 0, euid: 0, suid: 0, gid: 0, egid: 0, sgid: 0, auid: 0, sessionID: 1, terminalSession: nil, tty: nil,
                stdin: .unknown, networkNamespace: nil, source: .execve, parent: parent)
        }
        let script = String(repeating: "é", count: 20_000)  // two bytes each
        let shell = record(2, ["bash", "-c", script, "tail"], parent: record(1, ["init"], parent: nil))
        let child = record(3, ["scp", String(repeating: "x", count: 5000)], parent: shell)
        var json = JSONWriter()
        json.beginObject()
        json.key("ancestry")
        FlowJSON.ancestry(of: child, to: &json)
        json.endObject()
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.bytes)) as? [String: [[String: Any]]])
        let chain = try #require(object["ancestry"])
        let args = try #require(chain.first?["args"] as? [String])
        #expect(args.count == 3 && args[0] == "bash" && args[1] == "-c")
        // 1024 bytes: "bash" and "-c" take 6, so 1018 of the script's bytes, which is 509 characters.
        #expect(args[2] == String(repeating: "é", count: 509))
        #expect(chain.first?["args_truncated"] as? Int == 40_000 - 1018 + 4)
        #expect(chain.last?["args"] as? [String] == ["init"] && chain.last?["args_truncated"] == nil)

        json = JSONWriter()
        FlowJSON.process(child, to: &json, withParent: true)
        let process = try #require(try JSONSerialization.jsonObject(with: Data(json.bytes)) as? [String: Any])
        #expect((process["args"] as? [String])?.last?.utf8.count == 5000, "the process's own arguments are whole")
        let parent = try #require(process["parent"] as? [String: Any])
        // ECS has no args_truncated: the count of what the parent's args leave out is ours.
        #expect(parent["args"] as? [String] == args && parent["args_truncated"] == nil)
        json = JSONWriter()
        FlowJSON.processDetails(child, program: child, to: &json)
        let details = try #require(try JSONSerialization.jsonObject(with: Data(json.bytes)) as? [String: Any])
        #expect(details["parent_args_truncated"] as? Int == 40_000 - 1018 + 4)
        #expect(parent["command_line"] as? String == "bash -c " + String(repeating: "é", count: 508), "1024 bytes, not inside a character")
    }
}

@Suite struct TransferToolsTests {
    func process(_ args: [String], cwd: String = "/tmp") -> ProcessRecord {
        ProcessRecord(
            pid: 10, ppid: 1, startTicks: nil, startTime: 0, executable: "/usr/bin/" + baseName(args[0]), arguments: args,
            workingDirectory: cwd, uid: 0, euid: 0, suid: 0, gid: 0, egid: 0, sgid: 0, auid: 0, sessionID: 1, terminalSession: nil, tty: nil,
            stdin: .unknown, networkNamespace: nil, source: .execve)
    }

    @Test func scpDirectionFromOperands() {
        #expect(TransferTools.scpDirection(process(["scp", "-r", "/var/log", "user@host:/tmp"]), ssh: nil) == .upload)
        #expect(TransferTools.scpDirection(process(["scp", "-P", "2222", "host:/etc/passwd", "."]), ssh: nil) == .download)
        #expect(TransferTools.scpDirection(process(["scp", "-P2222", "./a:b", "/tmp/x"]), ssh: nil) == .unknown)
        #expect(TransferTools.scpDirection(process(["scp", "a", "scp://host/x"]), ssh: nil) == .upload)
        // Legacy protocol: the remote command the ssh child carries.
        let ssh = process(["ssh", "-x", "-oPermitLocalCommand=no", "--", "host", "scp -v -f -- /etc/shadow"])
        #expect(TransferTools.scpDirection(process(["scp", "-O", "x", "y"]), ssh: ssh) == .download)
    }

    @Test func clientCommandLines() {
        #expect(TransferTools.ftpDirection(process(["curl", "-T", "a.zip", "ftp://h/"]), readFile: { _ in nil }) == .upload)
        #expect(TransferTools.ftpDirection(process(["curl", "ftp://h/a.zip"]), readFile: { _ in nil }) == .download)
        #expect(TransferTools.ftpDirection(process(["lftp", "-e", "mirror -R /var/log /up; quit", "h"]), readFile: { _ in nil }) == .upload)
        #expect(TransferTools.ftpDirection(process(["lftp", "-f", "job.lftp"]), readFile: { $0 == "/tmp/job.lftp" ? "open h\nget x\n" : nil }) == .download)
        #expect(TransferTools.ftpDirection(process(["busybox", "ftpput", "h", "a", "b"]), readFile: { _ in nil }) == .upload)
        #expect(TransferTools.ftpDirection(process(["ftp", "-n", "h"]), readFile: { _ in nil }) == .unknown)
        #expect(TransferTools.tftpDirection(process(["tftp", "h", "-c", "put", "a"])) == .upload)
        #expect(TransferTools.tftpDirection(process(["busybox", "tftp", "-g", "-r", "a", "h"])) == .download)
        #expect(TransferTools.tftpDirection(process(["atftp", "--put", "-l", "a", "h"])) == .upload)
        #expect(TransferTools.sftpDirection(process(["sftp", "-b", "b.txt", "h"]), readFile: { _ in "put /etc/passwd\n" }) == .upload)
        #expect(TransferTools.sftpDirection(process(["sftp", "host:/etc/hosts"]), readFile: { _ in nil }) == .download)
        #expect(TransferTools.smbDirection(process(["smbclient", "//h/s", "-c", "put secrets.7z"])) == .upload)
    }

    @Test func urlsAndBytes() {
        #expect(TransferTools.url(in: process(["curl", "ftp://u:p@[2001:db8::1]:2121/x"]), schemes: ["ftp"])! == ("2001:db8::1", 2121))
        #expect(TransferTools.ftpURL(process(["wget", "ftp://203.0.113.5:2121/a"]), port: 2121) == .ftp)
        #expect(TransferTools.ftpURL(process(["wget", "ftp://203.0.113.5/a"]), port: 2121) == nil)
        #expect(TransferTools.ftpURL(process(["curl", "ftps://203.0.113.5/a"]), port: 990) == .ftps, "implicit FTPS")
        #expect(TransferTools.ftpURL(process(["curl", "ftps://203.0.113.5:2990/a"]), port: 2990) == .ftps)
        #expect(TransferTools.directionFromBytes(out: 5_000_000, in: 1200) == .upload)
        #expect(TransferTools.directionFromBytes(out: 300, in: 900) == .unknown)
    }
}

/// Classification by port and program on connect records written the way the kernel writes them.
@Suite struct FlowClassificationTests {
    /// A connect by `exe` (argv[0] `program`) to 203.0.113.10:`port`, after its execve.
    func flows(program: String, exe: String, port: UInt16, serial: Int = 10) throws -> ([Flow], FlowTracker.Counters) {
        let portHex = String(port, radix: 16, uppercase: true)
        let saddr = "0200" + String(repeating: "0", count: 4 - portHex.count) + portHex + "CB00710A" + "0000000000000000"
        let lines = [
            "type=SYSCALL msg=audit(1700000000.000:\(serial)): arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=4 items=2 ppid=1 pid=500 auid=1000 uid=1000 gid=1000 euid=1000 suid=1000 fsuid=1000 egid=1000 sgid=1000 fsgid=1000 tty=pts0 ses=3 comm=\"\(program)\" exe=\"\(exe)\" key=\"k\"",
            "type=EXECVE msg=audit(1700000000.000:\(serial)): argc=2 a0=\"\(program)\" a1=\"203.0.113.10\"",
            "type=EOE msg=audit(1700000000.000:\(serial)): ",
            "type=SYSCALL msg=audit(1700000000.100:\(serial + 1)): arch=c000003e syscall=42 success=no exit=-115 a0=3 a1=7f a2=10 a3=0 items=0 ppid=1 pid=500 auid=1000 uid=1000 gid=1000 euid=1000 suid=1000 fsuid=1000 egid=1000 sgid=1000 fsgid=1000 tty=pts0 ses=3 comm=\"\(program)\" exe=\"\(exe)\" key=\"k\"",
            "type=SOCKADDR msg=audit(1700000000.100:\(serial + 1)): saddr=\(saddr)",
            "type=EOE msg=audit(1700000000.100:\(serial + 1)): ",
        ]
        let replayed = try Replayed().run(lines)
        return (replayed.flows, replayed.graph.tracker.counters)
    }

    @Test func byPortAndByProgram() throws {
        #expect(try flows(program: "smbclient", exe: "/usr/bin/smbclient", port: 445).0.first?.networkProtocol == .smb)
        #expect(try flows(program: "nc", exe: "/usr/bin/nc.openbsd", port: 139).0.first?.networkProtocol == .smb)
        // Port 21 makes FTP whoever connects; an FTP client makes FTP whatever the port.
        let nc = try flows(program: "nc", exe: "/usr/bin/nc.openbsd", port: 21).0.first
        #expect(nc?.networkProtocol == .ftp && nc?.remoteAddress.description == "203.0.113.10" && nc?.remotePort == 21)
        #expect(try flows(program: "lftp", exe: "/usr/bin/lftp", port: 2121).0.first?.networkProtocol == .ftp)
        // Non-blocking connects (EINPROGRESS) are flows; HTTPS by curl is not a transfer flow.
        let https = try flows(program: "curl", exe: "/usr/bin/curl", port: 443)
        #expect(https.0.isEmpty && https.1.notTransfers == 1)
        // DNS over TCP from an FTP client is not FTP.
        #expect(try flows(program: "ftp", exe: "/usr/bin/tnftp", port: 53).0.isEmpty)
    }
}
