import Control
import Foundation
import TestSupport
import Testing

@testable import Agent

/// The control protocol and agentctl without an agent: rates, bounded history, the request
/// format both sides share, and the exit codes when nobody answers.
@Suite struct ControlTests {
    @Test func ratesCoverTheLastMinuteAndTheLastFiveMinutes() {
        var history = ThroughputHistory()
        // 100 records/s for 4 minutes, then 1,000 records/s for 1 minute; one event in ten.
        var records = 0
        for second in stride(from: 0, through: 300, by: 1) {
            history.record(now: Int64(second) * 1000, records: records, events: records / 10)
            records += second < 240 ? 100 : 1000
        }
        let now: Int64 = 300_000
        let lastMinute = history.rates(now: now, records: records, events: records / 10, window: 60_000)
        let fiveMinutes = history.rates(now: now, records: records, events: records / 10, window: 300_000)
        #expect(abs(lastMinute.records - 1000) < 20, "\(lastMinute)")
        #expect(abs(fiveMinutes.records - (240.0 * 100 + 61 * 1000) / 300) < 20, "\(fiveMinutes)")
        #expect(abs(lastMinute.events - lastMinute.records / 10) < 1)
        // Younger than the window: since start.
        var young = ThroughputHistory()
        young.record(now: 0, records: 0, events: 0)
        #expect(young.rates(now: 10_000, records: 500, events: 50, window: 60_000).records == 50)
    }

    @Test func recentLinesKeepTheNewestWithinBothBounds() {
        let lines = RecentLines(capacity: 3, byteLimit: 10)
        for text in ["a", "bb", "ccc", "dddd"] { lines.append(Array(text.utf8)) }
        #expect(lines.all.map { String(decoding: $0, as: UTF8.self) } == ["bb", "ccc", "dddd"])
        lines.append(Array("eeeeeeee".utf8))
        #expect(lines.all.map { String(decoding: $0, as: UTF8.self) } == ["eeeeeeee"], "10 bytes at most, the newest kept")
        #expect(lines.last(5).count == 1 && lines.last(0).isEmpty)
    }

    @Test func requestsAndResponsesAreVersionedJSONLines() throws {
        let line = ControlProtocol.line(ControlRequest(command: .alerts, last: 5, follow: true))
        #expect(String(decoding: line, as: UTF8.self) == #"{"command":"alerts","follow":true,"last":5,"protocol":1}"# + "\n")
        let refused = ControlProtocol.line(ControlResponse.refused(.invalidConfiguration, "/etc/x: bad"))
        let decoded = try ControlProtocol.decode(ControlResponse.self, from: Array(refused.dropLast()))
        #expect(!decoded.ok && decoded.failure == .invalidConfiguration && decoded.error == "/etc/x: bad")
    }

    /// No socket, or a socket nobody listens on (an agent that crashed): exit 3; usage: 64.
    @Test func agentctlSaysWhenTheAgentIsNotRunning() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let missing = try runCommand(Repo.agentctl, ["status", "--socket", directory + "/none.sock"])
        #expect(missing.status == 3 && missing.stderr.contains("xferwatchd is not running"), "\(missing)")

        let stale = directory + "/stale.sock"
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        let address = try #require(UnixSocketAddress(path: stale))
        #expect(address.withSockaddr { bind(fd, $0, $1) } == 0)
        close(fd)
        let refused = try runCommand(Repo.agentctl, ["alerts", "--socket", stale])
        #expect(refused.status == 3 && refused.stderr.contains("Connection refused"), "\(refused)")

        let usage = try runCommand(Repo.agentctl, ["status", "--no-such-option"])
        #expect(usage.status == 64, "\(usage)")
        let badLast = try runCommand(Repo.agentctl, ["alerts", "--last", "100000"])
        #expect(badLast.status == 64 && badLast.stderr.contains("--last"), "\(badLast)")
    }

    /// Options before the subcommand, as people type them (`systemctl`, `git -C`): the same
    /// answer as after it.
    @Test func connectionOptionsBeforeTheSubcommand() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        for arguments in [["--socket", directory + "/none.sock", "status"], ["--timeout=2", "--socket=\(directory)/none.sock", "alerts", "--last", "3"]] {
            let result = try runCommand(Repo.agentctl, arguments)
            #expect(result.status == 3 && result.stderr.contains("xferwatchd is not running (\(directory)/none.sock"), "\(arguments): \(result)")
        }
        // Given in both places, the one after the subcommand wins.
        let both = try runCommand(Repo.agentctl, ["--socket", directory + "/before.sock", "flows", "--socket", directory + "/after.sock"])
        #expect(both.status == 3 && both.stderr.contains("\(directory)/after.sock"), "\(both)")
        let bogus = try runCommand(Repo.agentctl, ["--bogus", "status"])
        #expect(bogus.status == 64, "\(bogus)")
        let help = try runCommand(Repo.agentctl, ["--help"])
        #expect(help.stdout.contains("USAGE: agentctl [--socket <socket>] [--timeout <timeout>] <subcommand>"), "\(help)")
    }

    /// A socket that accepts and never answers: exit 4, the state is unknown.
    @Test func agentctlGivesUpOnASilentAgent() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/silent.sock"
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        let address = try #require(UnixSocketAddress(path: path))
        #expect(address.withSockaddr { bind(fd, $0, $1) } == 0 && listen(fd, 4) == 0)
        let silent = try runCommand(Repo.agentctl, ["status", "--socket", path, "--timeout", "1"])
        #expect(silent.status == 4 && silent.stderr.contains("no answer"), "\(silent)")
    }
}

/// The Prometheus text: names, types, escaped labels, from a status document.
@Suite struct MetricsTextTests {
    @Test func escapingAndCounters() throws {
        let text = MetricsText.lines(ServingTests.sampleStatus(alerts: ["ftp.scripted": 2, "odd\"rule\\\n": 1])).joined()
        #expect(text.contains("# TYPE xferwatch_alerts_total counter\n"))
        #expect(text.contains("xferwatch_alerts_total{rule=\"ftp.scripted\"} 2\n"))
        #expect(text.contains("xferwatch_alerts_total{rule=\"odd\\\"rule\\\\\\n\"} 1\n"), "\(text)")
        #expect(text.contains("xferwatch_up 1\n") && text.contains("xferwatch_healthy 1\n"))
        // Every sample line follows its TYPE line, every name has the prefix.
        for line in text.split(separator: "\n") where !line.hasPrefix("#") { #expect(line.hasPrefix("xferwatch_"), "\(line)") }
    }

    /// Each stage's errors and drops add up in one family, with a sample for every stage, zero or not.
    @Test func stageErrorsAddUpEachStagesFailures() {
        var status = ServingTests.sampleStatus(alerts: [:])
        status.audit.parseErrors = 2
        status.audit.userspaceDrops = ["events_completed_early": 3, "queue_full": 4]
        status.host.sockDiagErrors = 5
        status.host.destroyNotificationsLost = 6
        status.inspection.malformed = 7
        status.outputs.syslog = .init(
            address: "relp://127.0.0.1:2514", connected: false, problem: nil, delivered: 1, connections: 2, spoolRecords: 0, spoolBytes: 0,
            spoolLimitBytes: 1 << 20, dropped: 8, truncated: 0, resent: 0)
        let text = MetricsText.lines(status).joined()
        for (stage, errors) in [("audit", 9), ("sockets", 11), ("inspection", 7), ("first_seen", 0), ("yara", 0), ("syslog", 8)] {
            #expect(text.contains("xferwatch_stage_errors_total{stage=\"\(stage)\"} \(errors)\n"), "\(stage): \(text)")
        }
        #expect(!text.contains("stage=\"alert_file\""), "no alert file configured, no sample for it")
        #expect(text.contains("xferwatch_sock_diag_errors_total 5\n") && text.contains("xferwatch_syslog_connections_total 2\n"))
    }
}
