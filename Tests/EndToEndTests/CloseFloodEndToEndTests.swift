import Foundation
import TestSupport
import Testing

/// A flood of socket closes, end to end: past `close_flood_rate` the agent as the package runs
/// it stops hearing the host namespace's closes (its destroy notifications cost every close),
/// says so in its log and status, still ties a transfer made meanwhile to its process (without
/// exact bytes), and hears closes again after the pause, exact bytes with them.
extension KernelAuditTests.FlowEndToEnd {
    @Test func socketClosesPastTheFloodRateGoUnheardForAPauseThenAreHeardAgain() throws {
        let file = try randomFile("flood-upload.bin", bytes: 3_000_000)
        // 4,000 loopback connections opened and closed as fast as python can: two closes each.
        let script = try commandsFile(
            "closes.py",
            [
                "import socket, struct",
                "listener = socket.socket()",
                "listener.bind(('127.0.0.1', 0))",
                "listener.listen(4096)",
                "for _ in range(4000):",
                "    client = socket.create_connection(listener.getsockname())",
                "    accepted, _ = listener.accept()",
                "    accepted.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))",
                "    accepted.close()",
                "    client.close()",
            ])
        // A pause long enough for a transfer on a slow machine to start and end inside it.
        let agent = try startAgent(flows: "close_flood_rate = 1000\nclose_flood_pause_ms = 15000\n")
        var host = stat()
        try #require(stat("/proc/self/ns/net", &host) == 0)
        func status() throws -> String { try runCommand(Repo.agentctlRelease, ["status", "--socket", controlSocket]).stdout }
        func waitUntil(_ what: String, seconds: Double, _ condition: () throws -> Bool) throws {
            let deadline = Date().addingTimeInterval(seconds)
            while try !condition() {
                try #require(Date() < deadline, "\(what) within \(Int(seconds)) s; agent: \(agent.stderr.suffix(3000))")
                usleep(50_000)
            }
        }
        let unheard = "socket closes not heard in network namespace \(host.st_ino) (a flood)"

        try client("/usr/bin/python3", [script])
        try waitUntil("the flood noticed", seconds: 10) { try status().contains(unheard) }
        #expect(agent.stderr.contains("sockets close in network namespace \(host.st_ino) faster than 1000 a second"), "\(agent.stderr.suffix(3000))")
        let during = try client("/usr/bin/curl", ["-s", "-T", file, "ftp://203.0.113.10/upload/during-flood.bin"])
        let stillUnheard = try status().contains(unheard)

        try waitUntil("closes heard again after the pause", seconds: 40) { try !status().contains(unheard) }
        let after = try client("/usr/bin/curl", ["-s", "-T", file, "ftp://203.0.113.10/upload/after-flood.bin"])
        let metrics = try runCommand(Repo.agentctlRelease, ["metrics", "--socket", controlSocket]).stdout
        let flows = try stop(agent, expecting: 2)

        try #require(stillUnheard, "the pause ended before the transfer did: the machine is slower than the test allows")
        let d = try #require(flow(of: during, in: flows), "no flow for the upload during the flood: \(flows)")
        #expect(d.executable == "/usr/bin/curl" && d.networkProtocol == "ftp" && d.transferDirection == "upload")
        #expect(d.bytesExact == false)
        #expect((d.bytesOut ?? 0) <= 3_100_000)
        let a = try #require(flow(of: after, in: flows), "no flow for the upload after the flood: \(flows)")
        #expect(a.executable == "/usr/bin/curl" && a.transferDirection == "upload")
        #expect(a.bytesExact == true)
        #expect(a.dataConnections.count == 1 && a.data(0, "source") == 3_000_000, "data bytes are exact again")
        #expect(metrics.contains("xferwatch_close_floods_total 1\n"), "\(metrics)")
        expectOnly([during, after], in: flows)
    }
}
