import Foundation

/// The ECS fields xferwatch may write, from `Tests/Fixtures/ecs/fields.tsv`, and a check of a
/// document's fields outside `xferwatch.*` against them, by name and by type.
public enum ECSReference {
    public static let types: [String: String] = {
        let text = (try? String(contentsOfFile: Repo.fixture("ecs/fields.tsv"), encoding: .utf8)) ?? ""
        var types: [String: String] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let columns = line.split(separator: "\t")
            if columns.count == 2 { types[String(columns[0])] = String(columns[1]) }
        }
        return types
    }()

    /// One line per field that ECS does not define or whose value is not of its ECS type.
    /// `flat`: the document with dotted keys (as `AlertView` makes it).
    public static func violations(_ flat: [String: Any]) -> [String] {
        flat.keys.sorted().filter { !$0.hasPrefix("xferwatch.") }.compactMap { field in
            guard let type = types[field] else { return "\(field) is not an ECS field" }
            let values = (flat[field] as? [Any]) ?? [flat[field]!]
            let bad = values.first { !conforms($0, to: type) }
            return bad.map { "\(field) = \($0) is not an ECS \(type)" }
        }
    }

    public static func conforms(_ value: Any, to type: String) -> Bool {
        // JSONSerialization gives booleans as NSNumbers of type "c".
        let number = (value as? NSNumber).map { String(cString: $0.objCType) }
        switch type {
        case "long": return number != nil && number != "c" && number != "d" && number != "f"
        case "boolean": return number == "c"
        case "keyword", "wildcard": return value is String
        case "ip":
            guard let text = value as? String else { return false }
            var buffer = in6_addr()
            return inet_pton(AF_INET, text, &buffer) == 1 || inet_pton(AF_INET6, text, &buffer) == 1
        case "date":
            guard let text = value as? String else { return false }
            return (try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text)) != nil
        default: return false
        }
    }
}
