import Control
import Foundation

/// Alert and flow documents read through the one description of them (`Control`'s
/// `AlertDocument` and `FlowDocument`), and checked against it.
public enum Documents {
    /// A document's JSON object as the model reads it: an alert (`event.kind` "alert") or a flow.
    public static func decode(_ object: [String: Any]) throws -> (alert: AlertDocument?, flow: FlowDocument?) {
        let data = try JSONSerialization.data(withJSONObject: object)
        if (object["event"] as? [String: Any])?["kind"] as? String == "alert" {
            return (try JSONDecoder().decode(AlertDocument.self, from: data), nil)
        }
        return (nil, try JSONDecoder().decode(FlowDocument.self, from: data))
    }

    /// The fields of `object` the model does not describe (dotted paths, `[]` for array
    /// elements): empty when the model names every field the writer wrote.
    public static func undescribedFields(of object: [String: Any]) throws -> [String] {
        let decoded = try decode(object)
        let encoder = JSONEncoder()
        let again = try decoded.alert.map { try encoder.encode($0) } ?? encoder.encode(decoded.flow)
        let described = paths(of: try JSONSerialization.jsonObject(with: again))
        return paths(of: object).subtracting(described).sorted()
    }

    /// Every leaf's path; nulls are absent.
    static func paths(of value: Any, at path: String = "") -> Set<String> {
        switch value {
        case let object as [String: Any]:
            return object.reduce(into: Set<String>()) { $0.formUnion(paths(of: $1.value, at: path.isEmpty ? $1.key : "\(path).\($1.key)")) }
        case let array as [Any]:
            return array.isEmpty ? [path + "[]"] : array.reduce(into: Set<String>()) { $0.formUnion(paths(of: $1, at: path + "[]")) }
        case is NSNull:
            return []
        default:
            return [path]
        }
    }
}
