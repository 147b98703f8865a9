import Foundation
import TestSupport
import Testing

/// Datagram floods, end to end: the agent as the package runs it stops auditing the sendto and
/// sendmsg of a process that floods datagrams which are no transfer (never rules for its pid,
/// in the real kernel), audits them again when it exits, and a flood does not hide a TFTP
/// upload the same process makes afterwards.
extension KernelAuditTests.FlowEndToEnd {
    @Test func aDatagramFloodIsQuietedUntilItsSenderExitsOrSpeaksTFTP() throws {
        let file = try randomFile("after-flood.bin", bytes: 300_000)
        // Floods port 9, says so, then waits for a word on stdin: "exit", or "tftp" to upload
        // the file with a TFTP client of its own (the request, then each block on "go").
        let script = try commandsFile(
            "flood.py",
            [
                "import socket, sys",
                "junk = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)",
                "for _ in range(30000): junk.sendto(b'x' * 32, ('127.0.0.1', 9))",
                "print('flooded', flush=True)",
                "if sys.stdin.readline().strip() == 'exit': sys.exit(0)",
                "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)",
                "s.settimeout(10)",
                "s.sendto(b'\\x00\\x02after-flood.bin\\x00octet\\x00', ('203.0.113.10', 69))",
                "ack, server = s.recvfrom(516)",
                "print('requested', flush=True)",
                "sys.stdin.readline()",
                "data = open(sys.argv[1], 'rb').read()",
                "for block, start in enumerate(range(0, len(data) + 1, 512), 1):",
                "    chunk = data[start:start + 512]",
                "    s.sendto(b'\\x00\\x03' + (block % 65536).to_bytes(2, 'big') + chunk, server)",
                "    while s.recvfrom(516)[0][:4] != b'\\x00\\x04' + (block % 65536).to_bytes(2, 'big'): pass",
                "print('sent', flush=True)",
            ])
        let agent = try startAgent()
        func quieted(_ pid: Int32) throws -> Bool {
            try runCommand("/usr/sbin/auditctl", ["-l"]).stdout.split(separator: "\n").contains {
                $0.hasPrefix("-a never,exit") && $0.contains("-F pid=\(pid) ")
            }
        }
        func waitUntil(_ what: String, seconds: Double = 20, _ condition: () throws -> Bool) throws {
            let deadline = Date().addingTimeInterval(seconds)
            while try !condition() {
                try #require(Date() < deadline, "\(what) within \(Int(seconds)) s; agent: \(agent.stderr.suffix(3000))")
                usleep(50_000)
            }
        }

        // A flood that ends with its process: quieted, then audited again.
        let quitting = Pipe()
        let flooder = try Child("/usr/bin/python3", [script, file], stdin: quitting.fileHandleForReading)
        try #require(flooder.waitForStdout(containing: "flooded", seconds: 30), "\(flooder.stderr)")
        try waitUntil("a never rule for the flooding pid \(flooder.pid)") { try quieted(flooder.pid) }
        let python = URL(fileURLWithPath: "/usr/bin/python3").resolvingSymlinksInPath().path
        #expect(agent.stderr.contains("pid \(flooder.pid) (\(python)) sends over 1000 datagrams a second, none a transfer"))
        let status = try runCommand(Repo.agentctlRelease, ["status", "--socket", controlSocket]).stdout
        #expect(status.contains("datagrams of pid \(flooder.pid) not audited (a flood)"), "\(status)")
        quitting.fileHandleForWriting.write(Data("exit\n".utf8))
        flooder.waitUntilExit()
        try waitUntil("the never rule of pid \(flooder.pid) gone after its exit") { try !quieted(flooder.pid) }

        // A flood, then a TFTP upload from the same process: the request is read by the tap,
        // no send explains it, so the process is audited again and its blocks make the flow.
        let steps = Pipe()
        let uploader = try Child("/usr/bin/python3", [script, file], stdin: steps.fileHandleForReading)
        try #require(uploader.waitForStdout(containing: "flooded", seconds: 30), "\(uploader.stderr)")
        try waitUntil("a never rule for the flooding pid \(uploader.pid)") { try quieted(uploader.pid) }
        steps.fileHandleForWriting.write(Data("tftp\n".utf8))
        try #require(uploader.waitForStdout(containing: "requested", seconds: 30), "\(uploader.stderr)")
        try waitUntil("pid \(uploader.pid) audited again after its TFTP request") { try !quieted(uploader.pid) }
        steps.fileHandleForWriting.write(Data("go\n".utf8))
        try #require(uploader.waitForStdout(containing: "sent", seconds: 60), "\(uploader.stderr)")
        uploader.waitUntilExit()
        let flows = try stop(agent, expecting: 1)

        #expect(agent.stderr.contains("a TFTP request no flow explains: the datagrams of 1 quieted processes (\(uploader.pid)) are audited again"))
        let upload = try #require(flow(of: uploader.pid, in: flows), "no flow for the upload after the flood: \(flows)")
        #expect(upload.networkProtocol == "tftp" && upload.transport == "udp" && upload.destinationPort == 69)
        #expect(upload.transferDirection == "upload")
        // Every block was sent after "go": audited; the request was not.
        #expect((upload.bytesOut ?? 0) >= 300_000 && Double(upload.bytesOut ?? 0) < 300_000 * 1.02, "\(String(describing: upload.bytesOut))")
        #expect(upload.bytesExact == false)
        expectOnly([uploader.pid], in: flows)
        #expect(try runCommand("/usr/sbin/auditctl", ["-l"]).stdout.contains("never") == false)
    }
}
