import TestSupport
import Testing

/// The alerts or flows the agent wrote, one JSON document a line, each read through the
/// documents' one description (`Control`'s model): a field it does not name fails the test.
func documents(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> [[String: Any]] {
    let objects = try jsonLines(text)
    for object in objects { expectDescribed(object, sourceLocation: sourceLocation) }
    return objects
}

func expectDescribed(_ object: [String: Any], sourceLocation: SourceLocation = #_sourceLocation) {
    do {
        let undescribed = try Documents.undescribedFields(of: object)
        #expect(undescribed.isEmpty, "fields the document model does not describe: \(undescribed)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("the document model cannot read it: \(error)", sourceLocation: sourceLocation)
    }
}
