import AgentConfig
import Detection
import Flows
import Foundation
import HostState
import TestSupport

@testable import Agent
@testable import AuditIngest

func parse(_ line: String) throws(RecordParseError) -> AuditRecord {
    var bytes = Array(line.utf8)
    return try parse(bytes: &bytes)
}

func parse(bytes: inout [UInt8]) throws(RecordParseError) -> AuditRecord {
    let result: Result<AuditRecord, RecordParseError> = bytes.withUnsafeBytes { buffer in
        do throws(RecordParseError) { return .success(try RecordParser.parseLine(buffer)) } catch { return .failure(error) }
    }
    return try result.get()
}

/// Runs the parser and assembler over lines, returning the events in completion order.
func assemble(_ lines: [String], settings: AssemblerSettings = AssemblerSettings()) throws -> (events: [AuditEvent], counters: AssemblyCounters) {
    var events: [AuditEvent] = []
    let assembler = EventAssembler(settings: settings) { events.append($0) }
    for line in lines { assembler.add(try parse(line)) }
    assembler.flush()
    return (events, assembler.counters)
}

/// What the agent's replay graph made of some audit lines: the graph (its tracker, detector,
/// pipeline) and every flow and alert it reported, as values.
final class Replayed {
    /// The graph's observer: keeps what it hears of, and hands it on to `also`.
    final class Collector: GraphObserver {
        var flows: [Flow] = []
        var alerts: [Alert] = []
        var also: GraphObserver?
        func eventRead(_ event: AuditEvent) { also?.eventRead(event) }
        func alertDelivered(_ alert: Alert) {
            alerts.append(alert)
            also?.alertDelivered(alert)
        }
        func flowEnded(_ flow: Flow) {
            flows.append(flow)
            also?.flowEnded(flow)
        }
    }

    let graph: AgentGraph
    let collected = Collector()
    var flows: [Flow] { collected.flows }
    var alerts: [Alert] { collected.alerts }

    init(configuration: AgentConfiguration = AgentConfiguration()) throws {
        graph = try AgentGraph(configuration: configuration, mode: .replay, observer: collected, log: Logger(level: .error))
    }

    /// Feeds `lines` as a log's lines, then ends the input (open events and flows complete).
    @discardableResult
    func run(_ lines: [String]) -> Replayed {
        for line in lines {
            let bytes = Array(line.utf8)
            bytes.withUnsafeBytes { graph.pipeline.ingest(line: $0, position: "test") }
        }
        graph.finish(log: Logger(level: .error))
        return self
    }
}

/// A recorded fixture log (`Tests/Fixtures/DIR/NAME.log`) through the replay graph.
func replayFixture(_ log: String, configuration: AgentConfiguration = AgentConfiguration()) throws -> Replayed {
    try Replayed(configuration: configuration).run(try lines(ofFile: Repo.fixture(log)))
}

func manifest(_ path: String) throws -> [String: Int32] {
    var pids: [String: Int32] = [:]
    for line in try lines(ofFile: Repo.fixture(path)) {
        let parts = line.split(separator: " ")
        pids[String(parts[0])] = Int32(parts[1])
    }
    return pids
}
