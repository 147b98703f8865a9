import ByteJSON
import Detection
import Flows
import Foundation
import HostState
import KernelAudit
import TestSupport
import Testing

@testable import Agent
@testable import AgentConfig
@testable import AuditIngest

@Suite struct MalformedInputTests {
    @Test(arguments: [
        ("", RecordParseError.empty),
        ("type=SYSCALL", .missingStamp),
        ("msg=audit(1.000:1): a=b", .missingType),
        ("type=SYSCALL msg=audit(1.000): a=b", .badStamp),
        ("type=SYSCALL msg=audit(x.000:1): a=b", .badStamp),
        ("type=SYSCALL msg=audit(1.000:99999999999): a=b", .badStamp),
        // Found by fuzz/run records: seconds that overflowed the event's milliseconds (a crash).
        ("type=SYSCALL msg=audit(17953720795960000000.596:157522): a=b", .badStamp),
        ("type=SYSCALL msg=audit(9223372036854775.807:1): a=b", .badStamp),
        ("type=syscall msg=audit(1.000:1): a=b", .unknownType),
        ("type=SYSCALL msg=audit(1.000:1): comm=\"unterminated", .unterminatedValue(offset: 5)),
    ])
    func malformedLinesGiveAReason(_ line: String, _ expected: RecordParseError) {
        #expect(throws: expected) { try parse(line) }
    }

    /// Found by fuzz/run records: an EXECVE record claiming billions of arguments made the
    /// assembler allocate them all.
    @Test func aHugeArgumentCountIsCapped() throws {
        let execve = try parse("type=EXECVE msg=audit(1.000:1): argc=99999999999 a0=\"ls\" a70000=\"x\"")
        let arguments = FieldDecoding.argv([execve])
        #expect(arguments.count == FieldDecoding.maximumArguments && arguments.first.map(Array.init) == Array("ls".utf8))
    }

    @Test func badHexStaysRaw() throws {
        // Not hex: the value is kept as written rather than guessed at.
        #expect(try parse("type=EXECVE msg=audit(1.000:1): argc=1 a0=4G4").string("a0") == "4G4")
        #expect(try parse("type=EXECVE msg=audit(1.000:1): argc=1 a0=414").string("a0") == "414")
        #expect(SocketAddress(hex: Array("02ZZ".utf8)[...]) == nil)
    }

    @Test func overlongLinesAreCutAndCountedWithTheirPosition() {
        var splitter = LineSplitter()
        var seen: [String] = []
        let big = [UInt8](repeating: UInt8(ascii: "A"), count: 1 << 20)
        let input = Array("type=EOE msg=audit(1.000:1): \n".utf8) + big + [0x0A] + Array("next\n".utf8)
        // Feed in odd chunk sizes to cross every boundary.
        var offset = 0
        while offset < input.count {
            let end = min(input.count, offset + 65_521)
            input[offset..<end].withUnsafeBytes { chunk in
                splitter.feed(chunk) { line, number in
                    switch line {
                    case .text(let bytes): seen.append("\(number):\(String(decoding: bytes, as: UTF8.self))")
                    case .tooLong(let length): seen.append("\(number):too long \(length)")
                    }
                }
            }
            offset = end
        }
        #expect(seen == ["1:type=EOE msg=audit(1.000:1): ", "2:too long \(1 << 20)", "3:next"])
    }

    /// Random mutations of real records: each one either parses or is counted as malformed;
    /// the pipeline never crashes and every line is accounted for.
    @Test func randomMutationsOfRealRecords() throws {
        let originals =
            try lines(ofFile: Repo.fixture("raw.log")) + lines(ofFile: Repo.fixture("enriched.log"))
            + lines(ofFile: Repo.fixture("flows/flows.log"))
        var generator = SplitMix(seed: 20_261_122)
        // The flow model and the rules take the same mangled events; every flow's and every
        // alert's JSON must parse too.
        // Lines drawn at random from whole logs scatter an event's records over the stream: many
        // more events wait at once than a kernel's stream ever keeps waiting.
        let replayed = try Replayed(
            configuration: try AgentConfiguration.parse(
                "[detection]\nfirst_seen_learning_minutes = 0\n[host]\nmax_processes = 256\n[audit]\nmax_pending_events = 16384\n"))
        let graph = replayed.graph
        /// Whatever the bytes, every event's, flow's and alert's JSON written must parse.
        final class Checker: GraphObserver {
            var events = 0, flows = 0, alerts = 0
            func alertDelivered(_ alert: Alert) {
                alerts += 1
                var json = JSONWriter()
                AlertJSON.write(alert, origin: AlertOrigin(host: HostFacts(hostname: "h")), users: UserNames(), to: &json)
                #expect((try? JSONSerialization.jsonObject(with: Data(json.bytes))) != nil)
            }
            func flowEnded(_ flow: Flow) {
                flows += 1
                var json = JSONWriter()
                FlowJSON.write(flow, to: &json)
                #expect((try? JSONSerialization.jsonObject(with: Data(json.bytes))) != nil)
            }
            func eventRead(_ event: AuditEvent) {
                events += 1
                var json = JSONWriter()
                EventJSON.write(event, to: &json)
                #expect((try? JSONSerialization.jsonObject(with: Data(json.bytes))) != nil)
            }
        }
        let checker = Checker()
        replayed.collected.also = checker
        let pipeline = graph.pipeline
        var fed = 0
        for _ in 0..<20_000 {
            var bytes = Array(originals[Int(generator.next() % UInt64(originals.count))].utf8)
            for _ in 0...(generator.next() % 4) {
                guard !bytes.isEmpty else { break }
                let at = Int(generator.next() % UInt64(bytes.count))
                switch generator.next() % 5 {
                case 0: bytes[at] = UInt8(truncatingIfNeeded: generator.next())
                case 1: bytes.removeSubrange(at...)
                case 2: bytes.insert(contentsOf: [0x22, 0x27, 0x1D, 0x00, 0xFF].shuffled(using: &generator), at: at)
                case 3: bytes.remove(at: at)
                default: bytes.insert(contentsOf: bytes[at...].prefix(40), at: at)
                }
            }
            bytes.removeAll { $0 == 0x0A }
            bytes.withUnsafeBytes { pipeline.ingest(line: $0, position: "mutation") }
            fed += 1
        }
        graph.finish(log: Logger(level: .error))
        #expect(checker.flows > 0)
        #expect(checker.alerts > 0)
        let counters = pipeline.assembler.counters
        #expect(counters.records + pipeline.ingest.malformed + emptyLines(pipeline) == fed)
        #expect(pipeline.ingest.malformed > 100)
        #expect(checker.events > 500)
    }

    /// Lines that ended up empty after mutation are skipped silently (blank lines).
    private func emptyLines(_ pipeline: Pipeline) -> Int { pipeline.ingest.blank }

    @Test func binaryJunkThroughReplay() throws {
        var generator = SplitMix(seed: 7)
        let junk = (0..<300_000).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
        let path = NSTemporaryDirectory() + "xferwatch-junk-\(getpid()).log"
        // Two different good logs, so that the second's events cannot merge with the first's.
        let before = try String(contentsOfFile: Repo.fixture("raw.log"), encoding: .utf8)
        let after = try String(contentsOfFile: Repo.fixture("flows/flows.log"), encoding: .utf8)
        try (Data(before.utf8) + Data(junk) + Data("\n".utf8) + Data(after.utf8)).write(to: URL(fileURLWithPath: path))
        defer { unlink(path) }
        func events(_ file: String) throws -> (result: (status: Int32, stdout: String, stderr: String), lines: [Substring]) {
            let result = try runCommand(Repo.xferwatchd, ["replay", "--config", Repo.path("agent.conf"), "--events", file])
            return (result, result.stdout.split(separator: "\n"))
        }
        let first = try events(Repo.fixture("raw.log")), second = try events(Repo.fixture("flows/flows.log"))
        let mixed = try events(path)
        #expect(mixed.result.status == 0)
        #expect(mixed.result.stderr.contains("dropped malformed record"))
        #expect(mixed.result.stderr.contains("\(path):"))
        // Every event of both good logs comes out, junk between them or not. Only how the
        // first log's events completed may differ: the second log's later times end them.
        func withoutCompletion(_ lines: [Substring]) -> [String] {
            lines.map { $0.replacingOccurrences(of: #""completion":"[a-z]+","#, with: "", options: .regularExpression) }.sorted()
        }
        #expect(first.lines.count > 40 && second.lines.count > 40)
        #expect(mixed.lines.count == first.lines.count + second.lines.count)
        #expect(withoutCompletion(mixed.lines) == withoutCompletion(first.lines + second.lines))
    }
}

/// A small seeded generator so that failures reproduce.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
