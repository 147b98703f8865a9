/// A CEF record: header fields and extensions with CEF's escaping undone.
public struct CEFRecord {
    public let signature, name, severity: String
    public let extensions: [String: String]

    public init?(_ text: String) {
        var header: [String] = []
        var field = ""
        var index = text.startIndex
        while header.count < 7, index < text.endIndex {
            let character = text[index]
            if character == "\\", text.index(after: index) < text.endIndex {
                index = text.index(after: index)
                field.append(text[index])
            } else if character == "|" {
                header.append(field)
                field = ""
            } else {
                field.append(character)
            }
            index = text.index(after: index)
        }
        guard header.count == 7, header[0] == "CEF:0", header[1] == "xferwatch" else { return nil }
        (signature, name, severity) = (header[4], header[5], header[6])
        var extensions: [String: String] = [:]
        let rest = String(text[index...])
        for match in rest.matches(of: #/([A-Za-z0-9]+)=((?:[^\\=]|\\.)*?)(?= [A-Za-z0-9]+=|$)/#) {
            var value = ""
            var escaped = false
            for character in match.2 {
                if escaped {
                    value.append(character == "n" ? "\n" : character == "r" ? "\r" : character)
                    escaped = false
                } else if character == "\\" {
                    escaped = true
                } else {
                    value.append(character)
                }
            }
            extensions[String(match.1)] = value
        }
        self.extensions = extensions
    }
}
