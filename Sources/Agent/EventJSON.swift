import AuditIngest
import ByteJSON

/// An assembled event as one JSON object: its key, how it completed, and every record with
/// its fields decoded (quotes stripped, hex decoded, ENRICHED interpretations kept apart),
/// plus the argv rebuilt from EXECVE and each SOCKADDR decoded.
public enum EventJSON {
    public static func write(_ event: AuditEvent, to json: inout JSONWriter) {
        json.beginObject()
        json.key("type"); json.string(event.type.name)
        json.key("time"); json.string(event.key.time.description)
        json.key("serial"); json.number(event.key.serial)
        if let node = event.key.node { json.key("node"); json.string(node) }
        json.key("completion"); json.string(event.completion.rawValue)
        json.key("partial"); json.bool(event.partial)
        if event.records.contains(where: { $0.type == .execve }) {
            json.key("argv")
            json.beginArray()
            for argument in FieldDecoding.argv(event.records) { json.string(argument) }
            json.endArray()
        }
        json.key("records")
        json.beginArray()
        for record in event.records { write(record, to: &json) }
        json.endArray()
        json.endObject()
    }

    static func write(_ record: AuditRecord, to json: inout JSONWriter) {
        json.beginObject()
        json.key("type"); json.string(record.type.name)
        json.key("fields")
        json.beginObject()
        for field in record.rawFields { writeField(field, of: record, to: &json) }
        json.endObject()
        if !record.interpretedFields.isEmpty {
            json.key("interpreted")
            json.beginObject()
            for field in record.interpretedFields { writeField(field, of: record, to: &json) }
            json.endObject()
        }
        if record.type == .sockaddr, let saddr = record.rawValue("saddr"), let address = SocketAddress(hex: saddr) {
            json.key("sockaddr")
            write(address, to: &json)
        }
        json.endObject()
    }

    @inline(__always)
    static func writeField(_ field: FieldSpan, of record: AuditRecord, to json: inout JSONWriter) {
        let name = record.name(field), value = record.rawValue(field)
        json.key(name)
        if let plain = FieldDecoding.plainValue(name: name, value: value, recordType: record.type) {
            json.string(plain)
        } else {
            json.string(FieldDecoding.decode(name: name, value: value, recordType: record.type))
        }
    }

    static func write(_ address: SocketAddress, to json: inout JSONWriter) {
        json.beginObject()
        json.key("family"); json.string(address.familyName)
        switch address {
        case .inet(let ip, let port):
            json.key("address"); json.string(ip.description)
            json.key("port"); json.number(port)
        case .inet6(let ip, let port, let scope):
            json.key("address"); json.string(ip.description)
            json.key("port"); json.number(port)
            if scope != 0 { json.key("scope_id"); json.number(scope) }
        case .unix(let path, let abstract):
            json.key("path"); json.string(abstract ? [UInt8(ascii: "@")] + path : path)
        case .netlink(let portID, let groups):
            json.key("port_id"); json.number(portID)
            json.key("groups"); json.number(groups)
        case .other:
            break
        }
        json.endObject()
    }
}
