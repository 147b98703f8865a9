import AgentConfig
import Foundation
import TestSupport
import Testing

@testable import Agent

/// Replay of every recorded fixture as golden files (`Tests/Fixtures/golden/NAME.KIND.jsonl`):
/// the events, flows and alerts the whole graph makes of each log, byte for byte, so that a
/// change anywhere in the pipeline shows its diff. After a deliberate change, rewrite them with
/// `XFERWATCH_UPDATE_GOLDEN=1 swift test --filter GoldenReplayTests` (or `make golden`) and
/// read the diff before committing it.
@Suite struct GoldenReplayTests {
    static let fixtures = [
        "raw.log", "enriched.log", "flows/flows.log", "detection/detection.log",
        "hosts/rhel7-linux-3.10.log", "hosts/ubuntu16.10-linux-4.8.log", "hosts/ubuntu20.04-linux-5.15.log",
        "hosts/ubuntu24.04-linux-6.8-aarch64.log",
    ]
    static let kinds = ["events", "flows", "alerts"]
    static var updating: Bool { ProcessInfo.processInfo.environment["XFERWATCH_UPDATE_GOLDEN"] == "1" }

    /// What `xferwatchd replay --KIND` prints for the fixture, with first-seen learning off so
    /// that rule has something to say.
    static func replay(_ fixture: String, kind: String) throws -> Data {
        let configuration = try AgentConfiguration.parse("[detection]\nfirst_seen_learning_minutes = 0\n")
        let directory = try makeTemporaryDirectory("golden")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/out.jsonl"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        try #require(fd >= 0)
        let output = OutputOptions(events: kind == "events", flows: kind == "flows", alerts: kind == "alerts", descriptor: fd)
        let status = Replay.run(configuration: configuration, files: [Repo.fixture(fixture)], output: output, log: Logger(level: .error))
        close(fd)
        #expect(status == 0)
        return try Data(contentsOf: URL(fileURLWithPath: path))
    }

    @Test(arguments: fixtures)
    func replayMatchesItsGoldenFiles(_ fixture: String) throws {
        let name = (fixture as NSString).lastPathComponent.replacingOccurrences(of: ".log", with: "")
        for kind in Self.kinds {
            let produced = try Self.replay(fixture, kind: kind)
            // Other hosts' logs hold no transfer: their flows and alerts are empty, and stay so.
            #expect(!produced.isEmpty || (fixture.hasPrefix("hosts/") && kind != "events"), "\(fixture) gives no \(kind)")
            let golden = Repo.fixture("golden/\(name).\(kind).jsonl")
            if Self.updating {
                try FileManager.default.createDirectory(atPath: Repo.fixture("golden"), withIntermediateDirectories: true)
                try produced.write(to: URL(fileURLWithPath: golden))
                continue
            }
            let expected = try #require(FileManager.default.contents(atPath: golden), "\(golden) is missing: XFERWATCH_UPDATE_GOLDEN=1 writes it")
            guard produced != expected else { continue }
            let got = String(decoding: produced, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
            let want = String(decoding: expected, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
            let first = (0..<min(got.count, want.count)).first { got[$0] != want[$0] } ?? min(got.count, want.count)
            Issue.record(
                """
                \(name).\(kind) differs from \(golden) at line \(first + 1) (\(got.count) lines, golden \(want.count)):
                got:    \(first < got.count ? String(got[first].prefix(600)) : "<end>")
                golden: \(first < want.count ? String(want[first].prefix(600)) : "<end>")
                """)
        }
    }
}
