import Foundation
import TestSupport
import Testing

/// A fleet's path for alerts: the agent sends RELP to a relay tier of Debian's rsyslog running
/// docs/fleet/rsyslog-relay.conf as shipped, which passes them on to the SIEM's receiver.
extension KernelAuditTests.FlowEndToEnd {
    /// The relay is killed (SIGKILL) in the middle of a stream and started again. Every alert
    /// reaches the final receiver; what arrives twice is the same message, byte for byte, with
    /// its event.id, so a SIEM drops it by that id; each names the host and agent that sent it.
    @Test func aRelayKilledMidStreamLosesNoAlertAndRepeatsOnlyWhatEventIDMarks() throws {
        let final = try SyslogReceiver(directory: work + "/final")
        let relay = try RsyslogRelay(directory: work + "/relay", nextPort: final.port("tcp"))
        let agent = try startAgent(
            "[output.syslog]\naddress = \"relp://127.0.0.1:\(relay.port)\"\nretry_initial_ms = 100\nretry_max_ms = 400\n")
        #expect(agent.waitForStderr(containing: "RELP session open", seconds: 10), "\(agent.stderr.suffix(1500))")
        let (beforeKill, alerts) = try alertStorm("fleet", arrived: { final.messages.count }, killing: relay.rsyslogd)
        let received = final.waitForMessages(carrying: alerts, seconds: 90)
        _ = try stop(agent, expecting: 0)
        relay.rsyslogd.stop()
        #expect(beforeKill >= 300 && beforeKill < 1500, "killed mid-stream: \(beforeKill) had arrived")

        let messages = try received.map { try #require(RFC5424Message($0), "not the agent's message: \($0.prefix(300))") }
        let ids = Set(messages.map(\.eventID))
        let missing = alerts.filter { !ids.contains($0.id) }
        #expect(
            missing.isEmpty,
            "\(missing.count) of \(alerts.count) missing: \(missing.prefix(5).map { "\($0.id) \($0.rule)" }); agent: \(agent.stderr.suffix(3000))")
        // A repeat is the very message again: dropping by event.id loses nothing.
        let byID = Dictionary(grouping: received, by: { RFC5424Message($0)!.eventID })
        let repeated = byID.values.filter { $0.count > 1 }
        let differing = repeated.first { Set($0).count > 1 }
        #expect(differing == nil, "a repeated event.id carries another message: \(differing?.map { "\($0.count) bytes: …\($0.suffix(300))" } ?? [])")
        print("relay killed after \(beforeKill) of \(alerts.count) alerts: \(received.count) messages arrived, \(repeated.count) repeated")

        // The sender, as the SIEM sees it.
        let machineID = try String(contentsOfFile: "/etc/machine-id", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let agentID = try String(contentsOfFile: work + "/state/agent-id", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let body = try #require(try JSONSerialization.jsonObject(with: Data(messages[0].body.utf8)) as? [String: Any])
        expectDescribed(body)
        let sender = AlertView(body)
        #expect(sender.json["host.id"] as? String == machineID && sender.json["agent.id"] as? String == agentID, "\(sender.json)")
    }

    /// The next hop (the SIEM's receiver) is down: the relay holds nothing and answers nothing,
    /// so the alerts wait in the agent's spool, and all of them arrive once the next hop is back.
    @Test func aNextHopThatIsDownLeavesTheAlertsInTheAgentsSpool() throws {
        let final = try SyslogReceiver(directory: work + "/final")
        let relay = try RsyslogRelay(directory: work + "/relay", nextPort: final.port("tcp"))
        defer { relay.rsyslogd.stop() }
        final.stop()
        let agent = try startAgent(
            "[output.syslog]\naddress = \"relp://127.0.0.1:\(relay.port)\"\nretry_initial_ms = 100\nretry_max_ms = 400\n")
        #expect(agent.waitForStderr(containing: "RELP session open", seconds: 10), "\(agent.stderr.suffix(1500))")
        try client("/bin/sh", ["-c", "for i in $(seq 200); do /bin/true ftp -s:down-$i.txt; done"])
        let alerts = try waitForAlerts(atLeast: 200, of: "/usr/bin/true")
        let deadline = Date().addingTimeInterval(30)
        var spooled = 0
        while spooled < alerts.count && Date() < deadline {
            let status = try runCommand(Repo.agentctlRelease, ["status", "--socket", controlSocket, "--json"])
            let json = try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any]
            let syslog = (json?["outputs"] as? [String: Any])?["syslog"] as? [String: Any]
            spooled = syslog?["spool_records"] as? Int ?? 0
            if spooled < alerts.count { usleep(200_000) }
        }
        #expect(spooled >= alerts.count, "the relay answered alerts it could not pass on: \(spooled) of \(alerts.count) spooled")

        try final.start()
        let received = final.waitForMessages(carrying: alerts, seconds: 60)
        _ = try stop(agent, expecting: 0)
        let ids = Set(try received.map { try #require(RFC5424Message($0), "not the agent's message: \($0.prefix(300))").eventID })
        let missing = alerts.filter { !ids.contains($0.id) }
        #expect(missing.isEmpty, "\(missing.count) of \(alerts.count) missing; agent: \(agent.stderr.suffix(2000))")
    }
}

/// docs/fleet/rsyslog-relay.conf as shipped, its placeholders filled with loopback ports and the
/// test's directories, run by Debian's rsyslogd.
final class RsyslogRelay {
    let port: Int
    let rsyslogd: Rsyslogd

    init(directory: String, nextPort: Int) throws {
        port = 30_000 + Int.random(in: 0..<5_000)
        try FileManager.default.createDirectory(atPath: directory + "/spool", withIntermediateDirectories: true)
        let shipped = try String(contentsOfFile: Repo.path("docs/fleet/rsyslog-relay.conf"), encoding: .utf8)
        let filled = [
            "@NEXT_HOST@": "127.0.0.1", "@NEXT_PORT@": String(nextPort), "@SPOOL_DIR@": directory + "/spool", "@LISTEN_PORT@": String(port),
        ].reduce(shipped) { $0.replacingOccurrences(of: $1.key, with: $1.value) }
        try #require(filled.firstMatch(of: #/@[A-Z_]+@/#) == nil, "a placeholder is left: \(filled)")
        // As /etc/rsyslog.conf would have it before including the relay's file.
        try ("global(workDirectory=\"\(directory)/spool\")\n" + filled).write(toFile: directory + "/rsyslog.conf", atomically: true, encoding: .utf8)
        rsyslogd = Rsyslogd(directory: directory, streamPorts: [port])
        try rsyslogd.start()
    }
}
