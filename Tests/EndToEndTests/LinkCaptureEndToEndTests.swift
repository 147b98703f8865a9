import Foundation
import TestSupport
import Testing

/// The packet tap follows the host's links: what the host sends on a link made after the agent
/// started (a container's veth, a new namespace) is read by a capture opened for that link,
/// and the capture closes with the link. The one capture of `any` takes only what the host
/// receives, so nothing sent on a new link would be read without it.
extension KernelAuditTests.FlowEndToEnd {
    @Test func whatIsSentOnALinkMadeAfterTheStartIsRead() throws {
        let agent = try startAgent()
        try #require(agent.waitForStderr(containing: "inspection: capturing", seconds: 10), "\(agent.stderr.suffix(2000))")
        let status = { try runCommand(Repo.agentctlRelease, ["status", "--socket", self.controlSocket]).stdout }
        func waitUntil(_ what: String, _ condition: () throws -> Bool) throws {
            let deadline = Date().addingTimeInterval(20)
            while try !condition() {
                try #require(Date() < deadline, "\(what) within 20 s; agent: \(agent.stderr.suffix(3000))")
                usleep(50_000)
            }
        }
        let first = try status()
        #expect(first.contains("any (received)") && first.contains("xw0 (sent)") && !first.contains("lo (sent)"), "\(first)")

        // A second way into the server namespace, made now: a /30 of the lab's "Internet" range.
        defer { _ = try? runCommand("/sbin/ip", ["link", "del", "xw9"]) }
        for arguments in [
            ["link", "add", "xw9", "type", "veth", "peer", "name", "xw9p"], ["link", "set", "xw9p", "netns", "xwsrv"],
            ["addr", "add", "203.0.113.129/30", "dev", "xw9"], ["link", "set", "xw9", "up"],
            ["-n", "xwsrv", "addr", "add", "203.0.113.130/30", "dev", "xw9p"], ["-n", "xwsrv", "link", "set", "xw9p", "up"],
        ] {
            let result = try runCommand("/sbin/ip", arguments)
            try #require(result.status == 0, "ip \(arguments): \(result.stderr)")
        }
        try waitUntil("a capture of what is sent on xw9") { try status().contains("xw9 (sent)") }

        // A TFTP upload through it: the request is sent on xw9, the server's answers come back.
        let tftp = try commandsFile(
            "tftp-new-link.py",
            [
                "import socket",
                "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)",
                "s.settimeout(5)",
                "s.sendto(b'\\x00\\x02new-link.bin\\x00octet\\x00', ('203.0.113.130', 69))",
                "ack, server = s.recvfrom(516)",
                "s.sendto(b'\\x00\\x03\\x00\\x01' + b'x' * 100, server)",
                "s.recvfrom(516)",
            ])
        let sender = try client("/usr/bin/python3", [tftp])
        _ = try runCommand("/sbin/ip", ["link", "del", "xw9"])
        try waitUntil("the capture on xw9 closed with its link") { try !status().contains("xw9") }
        let flows = try stop(agent, expecting: 1).map { AlertView($0) }

        let request = try #require(flows.first { $0.pid == Int(sender) }, "no flow for the TFTP upload: \(flows.map(\.json))")
        #expect(request.json["xferwatch.tftp_request.file"] as? String == "new-link.bin", "\(request.json)")
        #expect(request.json["destination.ip"] as? String == "203.0.113.130")
        #expect(!agent.stderr.contains("cannot capture"), "\(agent.stderr.suffix(3000))")
    }
}
