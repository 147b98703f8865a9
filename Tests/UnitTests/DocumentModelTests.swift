import Control
import Foundation
import TestSupport
import Testing

/// The one description of the alert and flow documents (`AlertDocument`, `FlowDocument`)
/// against what the writer wrote: every golden document, the replayed ones and a live alert
/// with a container, hashes, host and agent (`context.alert.json`), decodes and names every
/// field. A field the writer gains and the model lacks fails here.
@Suite struct DocumentModelTests {
    @Test func theModelDescribesEveryGoldenDocument() throws {
        var documents = 0
        for kind in ["alerts", "flows"] {
            for fixture in GoldenReplayTests.fixtures {
                let name = (fixture as NSString).lastPathComponent.replacingOccurrences(of: ".log", with: "")
                let text = try String(contentsOfFile: Repo.fixture("golden/\(name).\(kind).jsonl"), encoding: .utf8)
                for (line, object) in try jsonLines(text).enumerated() {
                    #expect(try Documents.undescribedFields(of: object).isEmpty, "\(name).\(kind) line \(line + 1)")
                    documents += 1
                }
            }
        }
        let context = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Repo.fixture("golden/context.alert.json")))) as? [String: Any])
        #expect(try Documents.undescribedFields(of: context) == [])
        let alert = try #require(try Documents.decode(context).alert)
        #expect(alert.process?.hash?.sha256?.count == 64 && alert.container?.id != nil && alert.agent?.ephemeralID != nil)
        #expect(documents > 50)
    }

    /// The check fails on what the model does not name.
    @Test func aFieldTheModelLacksIsFound() throws {
        let flow: [String: Any] = ["event": ["kind": "event"], "xferwatch": ["flow_id": 1, "new_field": ["x": 1]], "destination": ["port": 21]]
        #expect(try Documents.undescribedFields(of: flow) == ["xferwatch.new_field.x"])
    }
}
