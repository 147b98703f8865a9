import Foundation
import TestSupport
import Testing

/// Syslog end to end: the agent on the live audit stream raises real alerts (scripted ftp
/// command lines, curl uploads to the lab's FTP server) and forwards them to Debian's rsyslogd
/// over UDP, TCP and TLS; what rsyslogd received, byte for byte, is checked against the alert
/// file. Then the receiver goes away, the agent restarts, the spool fills: nothing is lost
/// that is not counted.
extension KernelAuditTests.FlowEndToEnd {
    @Test func everyAlertArrivesOnceOverUDPTCPTLSAndRELP() throws {
        let receiver = try SyslogReceiver(directory: work + "/rsyslog")
        let upload = try randomFile("report.tar.gz", bytes: 20_000)
        for transport in ["udp", "tcp", "tls", "relp", "relp+tls"] {
            receiver.clear()
            try? FileManager.default.removeItem(atPath: alertFile)
            // A longer alert is shortened to max_message_size (HostileOutputTests); here the
            // payload must arrive whole whatever the ancestry of the test run, and the test's
            // receiver takes 64 KiB.
            let agent = try startAgent(receiver.config(transport, "max_message_size = 65000\n"))
            #expect(
                agent.waitForStderr(containing: "syslog \(transport)://127.0.0.1:\(receiver.port(transport)): connected", seconds: 10),
                "\(agent.stderr.suffix(2000))")
            for job in 1...3 { _ = try client("/bin/true", ["ftp", "-s:\(transport)-job\(job).txt"]) }
            _ = try client("/usr/bin/curl", ["-s", "-T", upload, "ftp://203.0.113.10/upload/\(transport).tar.gz"])
            let alerts = try waitForAlerts(atLeast: 6)
            let received = receiver.waitForMessages(carrying: alerts, seconds: 15)
            _ = try stop(agent, expecting: 1)

            // An alert raised after the wait (at a flow's end) may be on its way or spooled for
            // the next run: every message is one of the file's alerts, once, and every alert
            // waited for arrived.
            let parsed = try received.map { try #require(RFC5424Message($0), "\(transport): not RFC 5424: \($0.prefix(300))") }
            #expect(Set(parsed.map(\.eventID)).count == parsed.count, "\(transport): each alert once")
            let arrived = Set(parsed.map(\.eventID))
            #expect(alerts.allSatisfy { arrived.contains($0.id) }, "\(transport): \(received.count) received, \(alerts.count) raised")
            let byID = Dictionary(uniqueKeysWithValues: try readAlerts().map { ($0.id, $0) })
            let alertLines = Set(try String(contentsOfFile: alertFile, encoding: .utf8).split(separator: "\n").map(String.init))
            for message in parsed {
                let alert = try #require(byID[message.eventID], "\(transport): \(message.eventID) is not in the alert file")
                let severity = try #require(alert.json["event.severity"] as? Int)
                #expect(message.priority == 10 * 8 + (severity >= 70 ? 3 : severity >= 40 ? 4 : 5), "authpriv, severity from event.severity")
                #expect(message.appName == "xferwatch" && message.procID == String(agent.pid) && message.msgID == alert.rule)
                #expect(message.structuredData == "[xferwatch@32473 rule=\"\(alert.rule)\" event=\"\(alert.id)\" severity=\"\(severity)\"]")
                #expect(message.timestamp == alert.json["@timestamp"] as? String)
                #expect(alertLines.contains(message.body), "\(transport): the payload is the alert file's line, byte for byte")
            }
            #expect(Set(alerts.map(\.rule)).isSuperset(of: ["ftp.scripted", "an1169.lolbin_transfer", "ftp.internet"]))
        }
    }

    @Test func rfc3164WithACEFPayloadOverLineFramedTCP() throws {
        let receiver = try SyslogReceiver(directory: work + "/rsyslog")
        let upload = try randomFile("cef.bin", bytes: 30_000)
        let agent = try startAgent(receiver.config("tcp", "format = \"rfc3164\"\npayload = \"cef\"\nframing = \"lf\"\nfacility = \"local4\"\n"))
        let scripted = try client("/bin/true", ["ftp", "-s:cef.txt", "key=v|x\\y"])
        let curl = try client("/usr/bin/curl", ["-s", "-T", upload, "ftp://203.0.113.10/upload/cef.bin"])
        let alerts = try waitForAlerts(atLeast: 4)
        let received = receiver.waitForMessages(alerts.count)
        _ = try stop(agent, expecting: 1)
        #expect(received.count == alerts.count)

        let hostname = try runCommand("/bin/hostname", ["-s"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let header = #/^<(\d+)>(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ 123]\d \d\d:\d\d:\d\d (\S+) xferwatch\[(\d+)\]: (CEF:.*)$/#
        var events: [[String: String]] = []
        for line in received {
            let match = try #require(line.wholeMatch(of: header), "not RFC 3164: \(line.prefix(200))")
            #expect(match.2 == hostname && Int(match.3) == Int(agent.pid))
            let cef = try #require(CEFRecord(String(match.4)), "not CEF: \(match.4)")
            // local4 (20) * 8 + the syslog severity.
            #expect(Int(match.1).map { $0 / 8 } == 20)
            events.append(cef.extensions.merging(["_signature": cef.signature, "_name": cef.name, "_severity": cef.severity]) { a, _ in a })
        }
        // The test's own wrappers (python, sh) name "ftp -s:" too: the alert of /bin/true is the one.
        let script = try #require(events.first { $0["_signature"] == "ftp.scripted" && $0["sproc"] == "true" }, "\(events)")
        #expect(script["_name"] == "Scripted FTP client" && script["_severity"] == "5")
        #expect(script["cs1Label"] == "ruleId" && script["cs1"] == "ftp.scripted")
        #expect(script["spid"] == String(scripted) && script["sproc"] == "true" && script["suser"] == "root" && script["suid"] == "0")
        #expect(script["cs3Label"] == "commandLine" && script["cs3"] == "/bin/true ftp -s:cef.txt key=v|x\\y", "unescaped by the parser")
        #expect(script["cs2Label"] == "mitreTechnique" && script["cs2"] == "T1071.002")
        let internet = try #require(events.first { $0["_signature"] == "ftp.internet" }, "\(events.map { $0["_signature"] })")
        #expect(internet["spid"] == String(curl) && internet["sproc"] == "curl")
        #expect(internet["dst"] == "203.0.113.10" && internet["dpt"] == "21" && internet["src"] == "10.203.0.1" && internet["spt"] != nil)
        #expect(internet["proto"] == "TCP" && internet["app"] == "ftp")
        #expect(Int(internet["out"] ?? "").map { $0 >= 30_000 } == true, "bytes out with the data connection")
        let fromFile = try #require(alerts.first { $0.rule == "ftp.internet" })
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let time = try #require(formatter.date(from: fromFile.json["@timestamp"] as? String ?? ""))
        #expect(internet["externalId"] == fromFile.id && internet["rt"] == String(Int64((time.timeIntervalSince1970 * 1000).rounded())))
        #expect(internet["msg"] == fromFile.reasons.joined(separator: "; "))
    }

    /// The receiver goes away and 1,000 alerts are raised; then the agent stops with 300 more
    /// still spooled and a new agent delivers them. Over TLS, whose acknowledgement is the
    /// hardest to get right: every alert arrives.
    @Test func noAlertIsLostWhileTheReceiverIsDownOrTheAgentRestarts() throws {
        let receiver = try SyslogReceiver(directory: work + "/rsyslog")
        let config = receiver.config("tls", "retry_initial_ms = 100\nretry_max_ms = 400\n")
        var agent = try startAgent(config)
        #expect(agent.waitForStderr(containing: "connected", seconds: 10))
        receiver.stop()
        _ = try client("/bin/sh", ["-c", "for i in $(seq 1000); do /bin/true ftp -s:outage-$i.txt; done"])
        var alerts = try waitForAlerts(atLeast: 1000, of: "/usr/bin/true")
        #expect(alerts.filter { $0.executable == "/usr/bin/true" }.count == 1000)
        #expect(agent.waitForStderr(containing: "the receiver closed", seconds: 5) || agent.stderr.contains("Connection refused"))
        try receiver.start()
        var received = receiver.waitForMessages(carrying: alerts, seconds: 60)
        var ids = try received.map { try #require(RFC5424Message($0)).eventID }
        #expect(Set(ids) == Set(alerts.map(\.id)), "\(Set(alerts.map(\.id)).subtracting(ids).count) of \(alerts.count) missing")

        receiver.stop()
        _ = try client("/bin/sh", ["-c", "for i in $(seq 300); do /bin/true ftp -s:restart-$i.txt; done"])
        alerts = try waitForAlerts(atLeast: 1300, of: "/usr/bin/true")
        _ = try stop(agent, expecting: 0)
        let summary = try #require(agent.stderr.firstMatch(of: #/syslog tls://\S+: (\d+) delivered, (\d+) spooled/#), "\(agent.stderr.suffix(1500))")
        #expect(Int(summary.2)! >= 300, "the 300 alerts raised while the receiver was down wait in the spool")
        try receiver.start()
        agent = try startAgent(config)
        #expect(agent.waitForStderr(containing: "\(summary.2) alerts from an earlier run to deliver", seconds: 10), "\(agent.stderr.suffix(1500))")
        received = receiver.waitForMessages(carrying: alerts, seconds: 60)
        _ = try stop(agent, expecting: 0)
        ids = try received.map { try #require(RFC5424Message($0)).eventID }
        #expect(Set(ids) == Set(alerts.map(\.id)), "\(Set(alerts.map(\.id)).subtracting(ids).count) of \(alerts.count) missing")
        // At least once: a duplicate is allowed only where a connection broke mid-flight.
        #expect(ids.count - Set(ids).count < 50, "\(ids.count - Set(ids).count) duplicates")
    }

    /// RELP: rsyslogd is killed (SIGKILL) while alerts flow, then started again. Every alert
    /// arrives: one leaves the spool only when imrelp answered it, and imrelp answers once the
    /// message is written (a TCP acknowledgement would have let go of what rsyslogd had only
    /// received). Duplicates are what was sent again after the break, and counted.
    @Test func relpLosesNothingWhenTheReceiverIsKilledMidStream() throws {
        let receiver = try SyslogReceiver(directory: work + "/rsyslog")
        let agent = try startAgent(receiver.config("relp", "retry_initial_ms = 100\nretry_max_ms = 400\n"))
        #expect(agent.waitForStderr(containing: "RELP session open", seconds: 10), "\(agent.stderr.suffix(1500))")
        let (beforeKill, alerts) = try alertStorm("relp", arrived: { receiver.messages.count }, killing: receiver.rsyslogd)
        let received = receiver.waitForMessages(carrying: alerts, seconds: 60)
        _ = try stop(agent, expecting: 0)
        #expect(beforeKill >= 300 && beforeKill < 1500, "killed mid-stream: \(beforeKill) had arrived")
        let ids = try received.map { try #require(RFC5424Message($0)).eventID }
        #expect(Set(ids) == Set(alerts.map(\.id)), "\(Set(alerts.map(\.id)).subtracting(ids).count) of \(alerts.count) missing")
        let summary = try #require(
            agent.stderr.firstMatch(of: #/syslog relp://\S+: (\d+) delivered, (\d+) spooled .* (\d+) resent, (\d+) connections/#),
            "\(agent.stderr.suffix(1500))")
        let duplicates = ids.count - Set(ids).count
        #expect(duplicates <= Int(summary.3)!, "\(duplicates) duplicates, \(summary.3) resent")
        #expect(Int(summary.2)! == 0 && Int(summary.4)! >= 2, "spool empty; a second connection after the kill")
        #expect(agent.stderr.contains("relp://") && (agent.stderr.contains("the receiver closed") || agent.stderr.contains("Connection reset")))
    }

    /// A receiver that takes about 5 KB a second: the backpressure stops at the spool. 300 alerts
    /// raised at once are all in the alert file within seconds, a transfer made meanwhile is
    /// attributed and alerted, the kernel loses nothing, and the spool holds what the receiver
    /// has not taken yet (the agent, as shipped, stops cleanly with it spooled).
    @Test func aSlowReceiverFillsTheSpoolNotTheAuditReader() throws {
        let port = 40_000 + Int.random(in: 0..<5_000)
        let receiver = try Child(
            "/usr/bin/python3",
            [
                "-c",
                """
                import socket, sys, time
                s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1); print("listening", flush=True)
                c, _ = s.accept()
                while c.recv(256): time.sleep(0.05)
                """, String(port),
            ])
        defer { _ = receiver.stop(signal: SIGKILL) }
        try #require(receiver.waitForStdout(containing: "listening", seconds: 10), "\(receiver.stderr)")
        let agent = try startAgent("[output.syslog]\naddress = \"tcp://127.0.0.1:\(port)\"\n")
        #expect(agent.waitForStderr(containing: "syslog tcp://127.0.0.1:\(port): connected", seconds: 10))
        let lost = try KernelAuditTests.lostRecords()
        _ = try client("/bin/sh", ["-c", "for i in $(seq 300); do /bin/true ftp -s:slow-$i.txt; done"])
        let upload = try randomFile("slow.tar.gz", bytes: 30_000)
        let curl = try client("/usr/bin/curl", ["-s", "-T", upload, "ftp://203.0.113.10/upload/slow.tar.gz"])
        let started = Date()
        _ = try waitForAlerts(atLeast: 300, of: "/usr/bin/true")
        let alerts = try waitForAlerts(atLeast: 1, of: "/usr/bin/curl")
        #expect(Date().timeIntervalSince(started) < 10, "the alerts were written while the receiver lagged")
        #expect(alerts.contains { $0.pid == Int(curl) && $0.rule == "ftp.internet" })
        let json = try status().json
        #expect(value(json, "outputs", "syslog", "connected") as? Bool == true)
        #expect((value(json, "outputs", "syslog", "spool_records") as? Int ?? 0) > 100, "the spool holds the backlog: \(json)")
        #expect(try KernelAuditTests.lostRecords() == lost, "the kernel lost nothing")
        _ = try stop(agent, expecting: 0)
    }

    /// A spool of 16 KiB cannot hold 100 alerts: the oldest go, the count is exact, the newest arrive.
    @Test func aFullSpoolDropsTheOldestAndSaysHowMany() throws {
        let receiver = try SyslogReceiver(directory: work + "/rsyslog")
        receiver.stop()
        let config = receiver.config("tcp", "spool_max_bytes = 16384\nretry_initial_ms = 100\nretry_max_ms = 200\n")
        var agent = try startAgent(config)
        _ = try client("/bin/sh", ["-c", "for i in $(seq 100); do /bin/true ftp -s:full-$i.txt; done"])
        _ = try waitForAlerts(atLeast: 100, of: "/usr/bin/true")
        // The event loop sees the spool filling and the drops within a turn and raises agent.health.
        let deadline = Date().addingTimeInterval(10)
        var health = try readAlerts().filter { $0.rule == "agent.health" }
        while !health.contains(where: { $0.reasons.contains { $0.hasPrefix("syslog output dropped") } }) && Date() < deadline {
            usleep(100_000)
            health = try readAlerts().filter { $0.rule == "agent.health" }
        }
        _ = try stop(agent, expecting: 0)
        let summary = try #require(agent.stderr.firstMatch(of: #/syslog tcp://\S+: (\d+) delivered, (\d+) spooled \(\d+ bytes\), (\d+) dropped/#))
        let (delivered, spooled, dropped) = (Int(summary.1)!, Int(summary.2)!, Int(summary.3)!)
        #expect(delivered == 0 && dropped > 0 && spooled > 0)
        // Whether an "80% full" alert came first depends on whether a check fell between filling
        // and overflowing (after a drop the spool may sit below 80%): only the drop is certain.
        let reasons = health.flatMap(\.reasons)
        #expect(reasons.contains { $0.hasPrefix("syslog output dropped") }, "\(reasons)")
        let alerts = try readAlerts()
        #expect(spooled + dropped == alerts.count, "every alert is spooled or counted as dropped")

        try receiver.start()
        agent = try startAgent(config)
        let received = receiver.waitForMessages(spooled)
        _ = try stop(agent, expecting: 0)
        let ids = try received.map { try #require(RFC5424Message($0)).eventID }
        #expect(ids.count == spooled && ids == alerts.suffix(spooled).map(\.id), "the newest alerts, in order")
    }

    /// A receiver whose certificate does not chain to the CA, or does not carry the name asked
    /// for, gets nothing: the alerts wait in the spool. Turning the name check off lets them go.
    @Test func tlsSendsNothingToAReceiverItCannotVerify() throws {
        let receiver = try SyslogReceiver(directory: work + "/rsyslog")
        for (extra, caFile, refusal) in [
            ("", "other-ca.pem", "unable to get local issuer certificate"),
            ("tls_server_name = \"siem.example.com\"\n", "ca.pem", "hostname mismatch"),
        ] {
            try? FileManager.default.removeItem(atPath: work + "/state")
            let agent = try startAgent(receiver.config("tls", extra + "retry_initial_ms = 100\nretry_max_ms = 200\n", caFile: caFile))
            #expect(agent.waitForStderr(containing: "certificate rejected: \(refusal)", seconds: 10), "\(agent.stderr.suffix(1500))")
            let earlier = try readAlerts().filter { $0.executable == "/usr/bin/true" }.count
            _ = try client("/bin/true", ["ftp", "-s:refused.txt"])
            _ = try waitForAlerts(atLeast: earlier + 1, of: "/usr/bin/true")
            _ = try stop(agent, expecting: 0)
            #expect(receiver.messages.isEmpty)
            // The spawn wrapper's image and the program's raise one alert, the program's; it waits.
            #expect(agent.stderr.contains(": 0 delivered, 1 spooled"), "the alert waits: \(agent.stderr.suffix(800))")
        }
        let agent = try startAgent(receiver.config("tls", "tls_server_name = \"siem.example.com\"\ntls_verify_hostname = false\n"))
        #expect(agent.waitForStderr(containing: "1 alerts from an earlier run to deliver", seconds: 10))
        #expect(receiver.waitForMessages(1).count == 1, "the chain is still checked, the name no longer")
        _ = try stop(agent, expecting: 0)
    }

    // MARK: harness

    /// 1,500 scripted-ftp alerts (`/bin/true ftp -s:TAG-N.txt`, 2 ms apart); once 300 of them
    /// have `arrived` at the far end, `daemon` is killed (SIGKILL) and, after a deliberate
    /// half-second outage in which the agent spools, started again. Returns how many had arrived
    /// before the kill, and the alerts once all 1,500 are in the alert file.
    func alertStorm(_ tag: String, arrived: () -> Int, killing daemon: Rsyslogd) throws -> (beforeKill: Int, alerts: [AlertView]) {
        let storm = try Child("/bin/sh", ["-c", "for i in $(seq 1500); do /bin/true ftp -s:\(tag)-$i.txt; sleep 0.002; done"])
        let deadline = Date().addingTimeInterval(30)
        while arrived() < 300 && Date() < deadline { usleep(5_000) }
        let before = arrived()
        daemon.kill()
        usleep(500_000)
        try daemon.start()
        #expect(storm.stop(signal: 0, seconds: 90) == 0, "signal 0: waits for the loop to end")
        return (before, try waitForAlerts(atLeast: 1500, of: "/usr/bin/true"))
    }

    /// Until `count` alerts (of `executable`) are in the alert file; the deadline is only an
    /// upper bound, generous for a slow, busy machine.
    func waitForAlerts(atLeast count: Int, of executable: String? = nil) throws -> [AlertView] {
        let deadline = Date().addingTimeInterval(60)
        func matching(_ alerts: [AlertView]) -> Int {
            alerts.filter { executable == nil || $0.executable == executable }.count
        }
        var alerts = try readAlerts()
        while matching(alerts) < count && Date() < deadline {
            usleep(100_000)
            alerts = try readAlerts()
        }
        try #require(matching(alerts) >= count, "\(matching(alerts)) alerts of \(count)")
        return alerts
    }
}

/// Debian's rsyslogd on loopback ports (Tests/support/syslog-receiver), with a CA, server and
/// client certificates of its own; stopped when the test ends, even a failed one.
final class SyslogReceiver {
    let directory: String
    private let ports: [String: Int]
    let rsyslogd: Rsyslogd

    init(directory: String) throws {
        self.directory = directory
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let base = 20_000 + Int.random(in: 0..<2_000) * 5
        let ports = ["udp": base, "tcp": base + 1, "tls": base + 2, "relp": base + 3, "relp+tls": base + 4]
        self.ports = ports
        let listening = ["udp", "tcp", "tls", "relp", "relp+tls"].map { String(ports[$0]!) }
        for step in [["certs", directory], ["config", directory] + listening] {
            let done = try runCommand(Repo.path("Tests/support/syslog-receiver"), step)
            try #require(done.status == 0, "syslog-receiver \(step[0]): \(done.stderr)")
        }
        rsyslogd = Rsyslogd(directory: directory, streamPorts: [base + 1, base + 2, base + 3, base + 4])
        try start()
    }

    func port(_ transport: String) -> Int { ports[transport]! }
    func start() throws { try rsyslogd.start() }
    func stop() { rsyslogd.stop() }

    /// The agent's [output.syslog] for this receiver; TLS with the test CA and a client certificate.
    func config(_ transport: String, _ extra: String = "", caFile: String = "ca.pem") -> String {
        var text = "[output.syslog]\naddress = \"\(transport)://127.0.0.1:\(ports[transport]!)\"\n"
        if transport.hasSuffix("tls") {
            text +=
                "tls_ca_file = \"\(directory)/tls/\(caFile)\"\ntls_cert_file = \"\(directory)/tls/client.pem\"\ntls_key_file = \"\(directory)/tls/client.key\"\n"
        }
        return text + extra
    }

    /// Empties the file in place: rsyslogd keeps writing to the same inode.
    func clear() { truncate(directory + "/received.log", 0) }

    /// The whole lines: one rsyslogd is writing may be read half-way.
    var messages: [String] {
        let text = (try? String(contentsOfFile: directory + "/received.log", encoding: .utf8)) ?? ""
        return text[..<(text.lastIndex(of: "\n") ?? text.startIndex)].split(separator: "\n").map(String.init)
    }

    /// What arrived once `count` messages did, or after `seconds`; then a moment more, so a
    /// duplicate would show.
    func waitForMessages(_ count: Int, seconds: Double = 15) -> [String] {
        let deadline = Date().addingTimeInterval(seconds)
        while messages.count < count && Date() < deadline { usleep(50_000) }
        usleep(300_000)
        return messages
    }

    /// What arrived once every one of `alerts` did, told by event.id (RFC 5424 messages): after
    /// a break, a message sent twice must not stand in for one still on its way. Or after
    /// `seconds`; then a moment more, so a duplicate would show.
    func waitForMessages(carrying alerts: [AlertView], seconds: Double) -> [String] {
        let wanted = Set(alerts.map(\.id))
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline && !wanted.isSubset(of: messages.compactMap { RFC5424Message($0)?.eventID }) { usleep(100_000) }
        usleep(300_000)
        return messages
    }
}

/// Debian's rsyslogd in the foreground on a test's DIR/rsyslog.conf, running once the loopback
/// TCP ports it listens on accept connections; stopped when the test ends, even a failed one.
final class Rsyslogd {
    let directory: String
    private let streamPorts: [Int]
    private var daemon: Child?

    init(directory: String, streamPorts: [Int]) {
        self.directory = directory
        self.streamPorts = streamPorts
    }

    deinit { stop() }

    func start() throws {
        let daemon = try Child("/usr/sbin/rsyslogd", ["-n", "-f", directory + "/rsyslog.conf", "-i", directory + "/rsyslogd.pid"])
        self.daemon = daemon
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if streamPorts.allSatisfy(Self.accepts) { return }
            usleep(50_000)
        }
        Issue.record("rsyslogd (\(directory)) did not start: \(daemon.stderr)")
    }

    func stop() {
        _ = daemon?.stop(signal: SIGTERM)
        daemon = nil
    }

    /// As a crash would: no time to flush, save or close anything.
    func kill() {
        _ = daemon?.stop(signal: SIGKILL)
        daemon = nil
    }

    static func accepts(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = in_addr_t(0x7F00_0001).bigEndian
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }
}
