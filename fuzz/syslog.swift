import ByteJSON

@testable import AgentConfig

// Fuzz target: the syslog message builder on what an attacker shapes (the values of an alert:
// arguments, file names, paths) and what an administrator configures (format, bound, host
// name). The payload is JSON written by JSONWriter, shortened by the agent's own code
// (`SyslogMessageBuilder.fitting`); every message is checked, and a broken promise stops the run:
// - within max_message_size whenever the bound leaves room for the header;
// - the structured data closes exactly where the payload starts (escaping holds);
// - the payload is the JSON's head, cut on a UTF-8 boundary, with no raw control byte;
// - a message that was shortened or cut says so.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSyslog(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 3 else { return 0 }
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    var settings = AgentConfiguration.SyslogOutput()
    settings.format = input[0] & 1 == 0 ? .rfc5424 : .rfc3164
    settings.maximumMessageBytes = 64 + Int(input[1]) * 48
    // The rest: a host name, a rule id, an event id, then the alert's values, NUL-separated.
    let fields = input[2...].split(separator: 0, omittingEmptySubsequences: false).map(Array.init)
    func field(_ index: Int) -> [UInt8] { index < fields.count ? fields[index] : [] }
    let hostname = String(decoding: field(0).prefix(300), as: UTF8.self)
    let rule = String(decoding: field(1).prefix(64), as: UTF8.self)
    let event = String(decoding: field(2).prefix(64), as: UTF8.self)
    let values = Array(fields.dropFirst(3))
    let builder = SyslogMessageBuilder(settings: settings, hostname: hostname, processID: 4242)

    func payload(_ limits: JSONWriter.Limits?) -> [UInt8] {
        var json = JSONWriter(capacity: 256, limits: limits)
        json.beginObject()
        json.key("rule")
        json.string(rule)
        json.key("process.args")
        json.beginArray()
        for value in values { json.string(value) }
        json.endArray()
        json.key("file.name")
        json.string(values.last ?? [])
        json.endObject()
        return json.bytes
    }
    func message(_ payload: [UInt8], shortenedFrom: Int?) -> SyslogMessageBuilder.Message {
        let message = builder.message(
            time: 1_795_000_000_000, severity: Int(input[0] >> 1) % 9, msgID: rule,
            parameters: [("rule", rule), ("event", event), ("severity", "47")], payload: payload, shortenedFrom: shortenedFrom)
        check(message, payload: payload, builder: builder, shortened: shortenedFrom != nil)
        return message
    }

    var whole: Int?
    _ = SyslogMessageBuilder.fitting(payload: payload) { payload, shortenedFrom in
        let built = message(payload, shortenedFrom: shortenedFrom)
        if shortenedFrom == nil {
            whole = built.truncatedFrom
        } else {
            precondition(built.truncatedFrom == whole, "a shortened message names the length it came from")
        }
        return built
    }
    return 0
}

private func check(_ message: SyslogMessageBuilder.Message, payload: [UInt8], builder: SyslogMessageBuilder, shortened: Bool) {
    let bytes = message.bytes
    // The header is at most ~1.2 KB here (host name 255, SD values of 64 bytes, each escaped).
    if builder.maximumBytes >= 1500 { precondition(bytes.count <= builder.maximumBytes, "over the bound: \(bytes.count)") }
    precondition(!shortened || message.truncatedFrom != nil, "a shortened message is marked")
    precondition(!message.payloadCut || message.truncatedFrom != nil, "a cut message is marked")
    // The header's fields hold no spaces: the payload starts after a fixed count of them.
    let start: Int
    let marker: Int
    switch builder.format {
    case .rfc5424:
        start = structuredDataEnd(bytes, from: afterSpaces(6, in: bytes))
        marker = 0
    case .rfc3164:
        // <PRI>Mmm dd hh:mm:ss HOST TAG: the day is padded with a space.
        start = afterSpaces(bytes[8] == 0x20 ? 6 : 5, in: bytes)
        precondition(bytes[..<start].reversed().starts(with: " :]2424[hctawrefx ".utf8), "the tag ends the header")
        marker = message.truncatedFrom.map { " [truncated from \($0) bytes]".utf8.count } ?? 0
    }
    let body = bytes[start..<(bytes.count - marker)]
    precondition(payload.starts(with: body), "the payload is the JSON's head")
    precondition(message.payloadCut || body.count == payload.count, "an uncut payload is whole")
    precondition(!body.contains { $0 < 0x20 }, "no raw control byte in the payload")
    if message.payloadCut, body.count < payload.count {
        precondition(payload[body.count] & 0xC0 != 0x80, "the cut falls between UTF-8 sequences")
    }
}

/// Where the payload starts: after our structured-data element, read as a receiver reads it
/// (quoted values, `\` escapes the next byte, `]` outside quotes closes).
private func structuredDataEnd(_ bytes: [UInt8], from start: Int) -> Int {
    precondition(bytes[start...].starts(with: "[xferwatch@32473 ".utf8), "our element follows the header")
    var index = start
    var quoted = false
    while index < bytes.count {
        let byte = bytes[index]
        if quoted && byte == UInt8(ascii: "\\") {
            index += 2
            continue
        }
        if byte == UInt8(ascii: "\"") { quoted.toggle() }
        if byte == UInt8(ascii: "]") && !quoted {
            precondition(index + 1 < bytes.count && bytes[index + 1] == 0x20, "the element is followed by a space")
            return index + 2
        }
        index += 1
    }
    preconditionFailure("the structured data never closes")
}

/// The index after the `count`-th space.
private func afterSpaces(_ count: Int, in bytes: [UInt8]) -> Int {
    var seen = 0
    for (index, byte) in bytes.enumerated() where byte == 0x20 {
        seen += 1
        if seen == count { return index + 1 }
    }
    preconditionFailure("a header of fewer than \(count) fields")
}
