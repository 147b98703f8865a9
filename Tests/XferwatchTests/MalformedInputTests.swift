import Foundation
import ByteJSON
import Testing
@testable import Agent
@testable import AgentConfig
@testable import AuditIngest
import Detection
import Flows
import HostState
import KernelAudit

@Suite struct MalformedInputTests {
    @Test(arguments: [
        ("", RecordParseError.empty),
        ("type=SYSCALL", .missingStamp),
        ("msg=audit(1.000:1): a=b", .missingType),
        ("type=SYSCALL msg=audit(1.000): a=b", .badStamp),
        ("type=SYSCALL msg=audit(x.000:1): a=b", .badStamp),
        ("type=SYSCALL msg=audit(1.000:99999999999): a=b", .badStamp),
        ("type=syscall msg=audit(1.000:1): a=b", .unknownType),
        ("type=SYSCALL msg=audit(1.000:1): comm=\"unterminated", .unterminatedValue(offset: 5)),
    ])
    func malformedLinesGiveAReason(_ line: String, _ expected: RecordParseError) {
        #expect(throws: expected) { try parse(line) }
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
        let originals = try lines(ofFile: Repo.fixture("raw.log")) + lines(ofFile: Repo.fixture("enriched.log"))
            + lines(ofFile: Repo.fixture("flows/flows.log"))
        var generator = SplitMix(seed: 20261122)
        var events = 0
        var flows = 0
        // The flow model takes the same mangled events; its JSON must parse too.
        // So do the rules; every alert's JSON must parse.
        let processes = ProcessTable(procfs: nil, capacity: 256)
        var alerts = 0
        let detector = try Detector(configuration: AgentConfiguration(), processes: processes,
                                    firstSeen: FirstSeenStore(learningMinutes: 0), users: UserNames(),
                                    idPrefix: "t") { alert in
            alerts += 1
            var json = JSONWriter()
            AlertJSON.write(alert, hostname: "h", users: UserNames(), to: &json)
            #expect((try? JSONSerialization.jsonObject(with: Data(json.bytes))) != nil)
        }
        let collector = FlowCollector(forwardingTo: detector) { flow in
            flows += 1
            var json = JSONWriter()
            FlowJSON.write(flow, to: &json)
            #expect((try? JSONSerialization.jsonObject(with: Data(json.bytes))) != nil)
        }
        let tracker = FlowTracker(catalog: .fromLibaudit(), processes: processes, sockets: nil, observer: collector)
        let pipeline = Pipeline(settings: AssemblerSettings(), log: Logger(level: .error)) { event in
            events += 1
            var json = JSONWriter()
            EventJSON.write(event, to: &json)
            // Whatever the bytes, the JSON written must parse.
            #expect((try? JSONSerialization.jsonObject(with: Data(json.bytes))) != nil)
            tracker.handle(event, now: event.key.time.totalMilliseconds)
        }
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
        pipeline.flush()
        tracker.finish(now: 0)
        #expect(flows > 0)
        #expect(alerts > 0)
        let counters = pipeline.assembler.counters
        #expect(counters.records + pipeline.ingest.malformed + emptyLines(pipeline) == fed)
        #expect(pipeline.ingest.malformed > 100)
        #expect(events > 500)
    }

    /// Lines that ended up empty after mutation are skipped silently (blank lines).
    private func emptyLines(_ pipeline: Pipeline) -> Int { pipeline.ingest.blank }

    @Test func binaryJunkThroughReplay() throws {
        var generator = SplitMix(seed: 7)
        let junk = (0..<300_000).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
        let path = NSTemporaryDirectory() + "xferwatch-junk-\(getpid()).log"
        let good = try String(contentsOfFile: Repo.fixture("raw.log"), encoding: .utf8)
        try (Data(good.utf8) + Data(junk) + Data("\n".utf8) + Data(good.utf8)).write(to: URL(fileURLWithPath: path))
        defer { unlink(path) }
        let clean = try runCommand(Repo.xferwatchd, ["replay", "--config", Repo.path("agent.conf"), "--events", Repo.fixture("raw.log")])
        let result = try runCommand(Repo.xferwatchd, ["replay", "--config", Repo.path("agent.conf"), "--events", path])
        #expect(result.status == 0)
        #expect(result.stderr.contains("dropped malformed record"))
        #expect(result.stderr.contains("\(path):"))
        // Every event of the good records still comes out, junk or not.
        #expect(try jsonLines(result.stdout).count >= jsonLines(clean.stdout).count)
        #expect(try jsonLines(clean.stdout).count > 40)
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
