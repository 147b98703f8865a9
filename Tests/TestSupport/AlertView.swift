/// An alert's (or a flow's) JSON, flattened to dotted keys (`destination.port`).
public struct AlertView {
    public let json: [String: Any]

    public init(_ object: [String: Any]) {
        var flat: [String: Any] = [:]
        func walk(_ value: Any, _ path: String) {
            if let object = value as? [String: Any] {
                for (key, inner) in object { walk(inner, path.isEmpty ? key : "\(path).\(key)") }
            } else {
                flat[path] = value
            }
        }
        walk(object, "")
        json = flat
    }

    public var id: String { json["event.id"] as? String ?? "" }
    public var rule: String { json["rule.id"] as? String ?? "" }
    public var pid: Int? { json["process.pid"] as? Int }
    public var parentPid: Int? { json["process.parent.pid"] as? Int }
    public var executable: String? { json["process.executable"] as? String }
    public var parentExecutable: String? { json["process.parent.executable"] as? String }
    public var args: [String] { json["process.args"] as? [String] ?? [] }
    public var reasons: [String] { json["xferwatch.reasons"] as? [String] ?? [] }
    public var ancestry: [String] { (json["xferwatch.ancestry"] as? [[String: Any]] ?? []).compactMap { $0["executable"] as? String } }
}
