import Control
import Foundation
import Outputs
import TestSupport
import Testing

@testable import Agent
@testable import AgentConfig

/// The control server and the syslog forwarder on their own: no audit, no root, no transfer
/// lab. The server answers through a fake handler; the forwarder sends to a TCP receiver the
/// test runs on loopback.
@Suite struct ServingTests {
    /// Canned answers, counting what was asked.
    final class FakeHandler: ControlHandler {
        var reloads = 0
        func status() -> AgentStatus { fatalError("not asked in these tests") }
        func flowLines() -> [[UInt8]] { [Array(#"{"flow":1}"#.utf8), Array(#"{"flow":2}"#.utf8)] }
        func reload() -> ControlResponse {
            reloads += 1
            return ControlResponse(reload: ReloadResult(applied: ["output"], restartNeeded: [], warnings: []))
        }
        func metricsLines() -> [[UInt8]] { [Array("# TYPE xferwatch_up gauge\n".utf8), Array("xferwatch_up 1\n".utf8)] }
        func rulesReport() -> RulesReport {
            RulesReport(rules: [.init(id: "ftp.scripted", name: "Scripted FTP", enabled: true, alerts: 3)], exclusions: [], yaraRuleFiles: [], yaraRules: 0)
        }
    }

    /// A status document as an agent would answer it.
    static func sampleStatus(alerts: [String: Int]) -> AgentStatus {
        AgentStatus(
            version: "0", pid: 1, started: "2026-11-27T00:00:00.000Z", uptimeSeconds: 5, configFile: "/etc/xferwatch/agent.conf",
            privileges: .init(user: "_xferwatch", uid: 1, gid: 1, capabilities: [], boundingCapabilities: [], noNewPrivileges: true),
            health: .init(verdict: .healthy, reasons: []),
            audit: .init(
                source: "unicast", ruleKey: "xferwatch", rulesInstalled: 6, kernel: nil, records: 10, events: 4,
                recordsPerSecond: .init(oneMinute: 0, fiveMinutes: 0), eventsPerSecond: .init(oneMinute: 0, fiveMinutes: 0),
                userspaceDrops: ["events_completed_early": 0], parseErrors: 0, sequenceGaps: 0),
            host: .init(
                processes: 3, flowsActive: 0, flowsReported: 1, networkNamespaces: 1, namespaceHelper: true, sockDiagErrors: 0,
                destroyNotificationsLost: 0),
            detection: .init(
                rulesEnabled: 13, alerts: alerts.values.reduce(0, +), alertsByRule: alerts, exclusionsHit: [:], execsChecked: 4, flowsChecked: 1,
                firstSeen: .init(known: 0, writeErrors: 0, overCapacity: 0), heldAlerts: 0),
            yara: .init(enabled: false, rules: 0, ruleFiles: 0, queued: 0, scans: 0, cacheHits: 0, filesMatched: 0, dropped: 0),
            inspection: .init(
                enabled: true, interfaces: ["any"], packets: 0, kernelDropped: 0, malformed: 0, unidentified: 0, identified: 0, matchedToFlows: 0,
                promoted: 0),
            outputs: .init(file: nil, syslog: nil))
    }

    /// Serves `server` on a thread of its own (as the event loop would) until `stop`.
    final class Serving: @unchecked Sendable {
        let server: ControlServer
        private let lock = NSLock()
        private var stopped = false
        private var thread: Thread?

        init(_ server: ControlServer) {
            self.server = server
            let thread = Thread { [unowned self] in
                let server = self.server
                while true {
                    lock.lock()
                    var fds: [pollfd] = []
                    if !stopped { server.descriptors(into: &fds) }
                    lock.unlock()
                    _ = poll(&fds, nfds_t(fds.count), 20)
                    // Served under the lock that `stop` closes the server under: never after.
                    lock.lock()
                    defer { lock.unlock() }
                    if stopped { break }
                    _ = server.service(fds[...], time: LoopTime(monotonic: monotonicNow(), realtime: 0))
                }
            }
            self.thread = thread
            thread.start()
        }

        /// Runs `body` on the server between two turns of its loop.
        func withServer(_ body: (ControlServer) -> Void) {
            lock.lock()
            body(server)
            lock.unlock()
        }

        func stop() {
            lock.lock()
            stopped = true
            server.close()
            lock.unlock()
            while thread?.isFinished == false { usleep(5000) }
        }
    }

    static func monotonicNow() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
    }

    func ask(_ path: String, _ request: ControlRequest) throws -> (ControlResponse, [String]) {
        let connection = try ControlConnection.open(path: path).get()
        defer { connection.close() }
        connection.setTimeout(seconds: 5)
        try connection.send(request)
        let first = try #require(try connection.readLine())
        let response = try ControlProtocol.decode(ControlResponse.self, from: first)
        var lines: [String] = []
        for _ in 0..<(response.count ?? 0) { lines.append(String(decoding: try #require(try connection.readLine()), as: UTF8.self)) }
        return (response, lines)
    }

    @Test func controlServerAnswersThroughItsHandlerWhilePeersStaySilent() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/agent.sock"
        // The runner's own group: the test's peers are let in as members of the control group, root or not.
        let group = try #require(getgrgid(getgid()).map { String(cString: $0.pointee.gr_name) })
        let server = try #require(ControlServer.open(path: path, group: group, log: Logger(level: .error)))
        let handler = FakeHandler()
        server.handler = handler
        let serving = Serving(server)
        defer { serving.stop() }

        // Peers that connect and never speak do not hold up the others.
        var silent: [Int32] = []
        for _ in 0..<8 {
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            let address = try #require(UnixSocketAddress(path: path))
            #expect(address.withSockaddr { connect(fd, $0, $1) } == 0)
            silent.append(fd)
        }
        defer { for fd in silent { close(fd) } }

        let (rules, _) = try ask(path, ControlRequest(command: .rules))
        #expect(rules.ok && rules.rules?.rules.first?.id == "ftp.scripted" && rules.rules?.rules.first?.alerts == 3)
        let (flows, lines) = try ask(path, ControlRequest(command: .flows))
        #expect(flows.ok && flows.count == 2 && lines == [#"{"flow":1}"#, #"{"flow":2}"#])
        let (reload, _) = try ask(path, ControlRequest(command: .reload))
        #expect(reload.reload?.applied == ["output"] && handler.reloads == 1)

        // Recent alerts and followers get the lines the agent publishes.
        serving.withServer { server in for n in 1...3 { server.published(alertLine: Array("{\"alert\":\(n)}\n".utf8)) } }
        let (recent, recentLines) = try ask(path, ControlRequest(command: .alerts, last: 2))
        #expect(recent.ok && recentLines == [#"{"alert":2}"#, #"{"alert":3}"#])
        let follower = try ControlConnection.open(path: path).get()
        defer { follower.close() }
        follower.setTimeout(seconds: 5)
        try follower.send(ControlRequest(command: .alerts, last: 0, follow: true))
        let header = try ControlProtocol.decode(ControlResponse.self, from: try #require(try follower.readLine()))
        #expect(header.ok)
        serving.withServer { $0.published(alertLine: Array("{\"alert\":4}\n".utf8)) }
        #expect(try follower.readLine().map { String(decoding: $0, as: UTF8.self) } == #"{"alert":4}"#)
    }

    /// A TCP receiver on loopback: accepts one connection at a time and reads octet-counted
    /// frames.
    final class Receiver {
        let listener: Int32
        let port: UInt16
        private var connection: Int32 = -1
        private var buffer: [UInt8] = []

        init(port wanted: UInt16 = 0) throws {
            let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            self.listener = listener
            var yes: Int32 = 1
            setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = wanted.bigEndian
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            try #require(bound == 0 && listen(listener, 4) == 0)
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) } }
            port = UInt16(bigEndian: address.sin_port)
        }

        deinit {
            if connection >= 0 { close(connection) }
            close(listener)
        }

        /// The messages that arrive within `seconds`, until `count` of them.
        func messages(_ count: Int, seconds: Double) -> [String] {
            var messages: [String] = []
            let deadline = Date().addingTimeInterval(seconds)
            while messages.count < count && Date() < deadline {
                if connection < 0 {
                    var fd = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
                    guard poll(&fd, 1, 50) > 0 else { continue }
                    connection = accept(listener, nil, nil)
                    continue
                }
                var fd = pollfd(fd: connection, events: Int16(POLLIN), revents: 0)
                guard poll(&fd, 1, 50) > 0 else { continue }
                var chunk = [UInt8](repeating: 0, count: 65_536)
                let n = read(connection, &chunk, chunk.count)
                if n <= 0 {
                    close(connection)
                    connection = -1
                    continue
                }
                buffer += chunk[..<n]
                // Octet counting: LENGTH SP MESSAGE.
                while let space = buffer.firstIndex(of: 0x20), let length = Int(String(decoding: buffer[..<space], as: UTF8.self)),
                    buffer.count >= space + 1 + length
                {
                    messages.append(String(decoding: buffer[(space + 1)..<(space + 1 + length)], as: UTF8.self))
                    buffer.removeFirst(space + 1 + length)
                }
            }
            return messages
        }
    }

    static func forwarder(to port: UInt16, spool: String) throws -> SyslogForwarder {
        var settings = AgentConfiguration.SyslogOutput()
        settings.address = try SyslogAddress.parse("tcp://127.0.0.1:\(port)").get()
        settings.retryInitialMilliseconds = 100
        settings.retryMaximumMilliseconds = 200
        let forwarder = SyslogForwarder.start(settings: settings, spoolDirectory: spool, log: { _, _ in })
        return try #require(forwarder)
    }

    static func waitUntil(seconds: Double, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            usleep(20_000)
        }
        return condition()
    }

    /// Every message reaches the receiver once, and leaves the spool once acknowledged.
    @Test func forwarderDeliversEveryMessageOnceAndEmptiesItsSpool() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let receiver = try Receiver()
        let forwarder = try Self.forwarder(to: receiver.port, spool: directory + "/spool")
        for n in 1...200 { forwarder.submit(Array("<86>1 - h xferwatch - rule - alert \(n)".utf8)) }
        let got = receiver.messages(200, seconds: 10)
        #expect(got.count == 200 && got.last?.hasSuffix("alert 200") == true && Set(got).count == 200)
        #expect(Self.waitUntil(seconds: 5) { forwarder.currentStatus.delivered == 200 && forwarder.currentStatus.spool.records == 0 })
        forwarder.stop()
        #expect(forwarder.currentStatus.dropped == 0)
    }

    /// With the receiver down, messages wait in the spool (and say why); once it listens,
    /// every one of them arrives, none twice.
    @Test func forwarderKeepsWhatTheReceiverCouldNotTakeAndSendsItLater() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let port = try Receiver().port  // a port nobody listens on once the probe is gone
        let forwarder = try Self.forwarder(to: port, spool: directory + "/spool")
        for n in 1...20 { forwarder.submit(Array("<86>1 - h xferwatch - rule - waiting \(n)".utf8)) }
        #expect(Self.waitUntil(seconds: 5) { forwarder.currentStatus.spool.records == 20 && forwarder.currentStatus.problem != nil })
        #expect(!forwarder.currentStatus.connected)
        let receiver = try Receiver(port: port)
        let got = receiver.messages(20, seconds: 10)
        #expect(got.count == 20 && Set(got).count == 20, "\(got)")
        #expect(Self.waitUntil(seconds: 5) { forwarder.currentStatus.spool.records == 0 && forwarder.currentStatus.problem == nil })
        forwarder.stop()
        #expect(receiver.messages(1, seconds: 0.5).isEmpty, "nothing twice")
    }
}
