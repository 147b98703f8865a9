import AgentConfig
import ByteJSON

#if canImport(Glibc)
    import Glibc
#endif

/// Builds one syslog message (RFC 5424 or RFC 3164) around an alert's payload. The message is
/// built once, when the alert is raised, and spooled as built: a restart resends the same bytes.
/// No message is longer than max_message_size, whatever the transport: a receiver cuts longer
/// ones (rsyslog at 8,096 bytes by default) and, over a stream, reads the rest as messages of
/// their own, whose bytes the alert's author chose.
public struct SyslogMessageBuilder: Sendable {
    /// Our structured-data element. 32473 is the private enterprise number RFC 5612 reserves
    /// for documentation: xferwatch has none of its own.
    public static let structuredDataID = "xferwatch@32473"

    public let format: SyslogFormat
    public let facility: SyslogFacility
    public let appName: String
    public let hostname: String
    public let processID: Int32
    /// Longer messages are shortened (and marked).
    public let maximumBytes: Int

    public init(settings: AgentConfiguration.SyslogOutput, hostname: String, processID: Int32) {
        format = settings.format
        facility = settings.facility
        appName = settings.appName
        // RFC 3164 asks for the host name without its domain.
        self.hostname = settings.format == .rfc3164 ? String(hostname.prefix { $0 != "." }) : hostname
        self.processID = processID
        maximumBytes = settings.maximumMessageBytes
    }

    public struct Message {
        public var bytes: [UInt8]
        /// The length of the whole message, when this one is shortened.
        public var truncatedFrom: Int?
        /// The payload's tail was cut off to fit (it may no longer parse).
        public var payloadCut = false
    }

    /// `severity` is the syslog severity (0-7); `msgID` the rule id; `parameters` go into our
    /// structured-data element (RFC 5424 only). `shortenedFrom`: the payload is a shortened
    /// copy of the one whose message had this length (marked like a cut one). A message that
    /// is still too long has its payload cut at the bound.
    public func message(
        time: Int64, severity: Int, msgID: String, parameters: [(String, String)], payload: [UInt8], shortenedFrom: Int? = nil
    ) -> Message {
        let marker = shortenedFrom.map(marker) ?? []
        let whole = build(time: time, severity: severity, msgID: msgID, parameters: parameters, payload: payload[...], truncatedFrom: shortenedFrom) + marker
        guard whole.count > maximumBytes else { return Message(bytes: whole, truncatedFrom: shortenedFrom) }
        let original = shortenedFrom ?? whole.count
        // The marker changes the header's length, so the header is built with it first.
        let header = build(time: time, severity: severity, msgID: msgID, parameters: parameters, payload: [][...], truncatedFrom: original)
        let room = max(0, maximumBytes - header.count - self.marker(original).count)
        let cut = Self.utf8Prefix(payload, maximumBytes: room)
        var bytes = build(time: time, severity: severity, msgID: msgID, parameters: parameters, payload: payload[..<cut], truncatedFrom: original)
        bytes += self.marker(original)
        return Message(bytes: bytes, truncatedFrom: original, payloadCut: true)
    }

    /// RFC 3164 has no structured data: the mark follows the payload.
    private func marker(_ original: Int) -> [UInt8] {
        format == .rfc3164 ? Array(" [truncated from \(original) bytes]".utf8) : []
    }

    private func build(
        time: Int64, severity: Int, msgID: String, parameters: [(String, String)], payload: ArraySlice<UInt8>,
        truncatedFrom: Int?
    ) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(payload.count + 256)
        out += "<\(facility.code * 8 + min(max(severity, 0), 7))>".utf8
        switch format {
        case .rfc5424:
            out += "1 ".utf8
            out += Self.rfc3339(time)
            out.append(0x20)
            Self.appendHeaderField(hostname, maximum: 255, to: &out)
            Self.appendHeaderField(appName, maximum: 48, to: &out)
            Self.appendHeaderField(String(processID), maximum: 128, to: &out)
            Self.appendHeaderField(msgID, maximum: 32, to: &out)
            out += "[\(Self.structuredDataID)".utf8
            for (name, value) in parameters + (truncatedFrom.map { [("truncated", String($0))] } ?? []) {
                out += " \(name)=\"".utf8
                for byte in value.utf8 {
                    // RFC 5424 6.3.3: '"', '\' and ']' are escaped in parameter values.
                    if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte == UInt8(ascii: "]") { out.append(UInt8(ascii: "\\")) }
                    out.append(byte)
                }
                out.append(UInt8(ascii: "\""))
            }
            out += "] ".utf8
        case .rfc3164:
            out += Self.bsdTimestamp(time)
            out.append(0x20)
            // A space or a newline in the name would move the receiver's fields.
            Self.appendHeaderField(hostname, maximum: 255, to: &out)
            out += "\(appName)[\(processID)]: ".utf8
        }
        out += payload
        return out
    }

    /// A header field: printable ASCII only, `-` when empty (RFC 5424 NILVALUE).
    private static func appendHeaderField(_ value: String, maximum: Int, to out: inout [UInt8]) {
        let printable = value.utf8.filter { (33...126).contains($0) }.prefix(maximum)
        if printable.isEmpty { out.append(UInt8(ascii: "-")) } else { out += printable }
        out.append(0x20)
    }

    private static func rfc3339(_ time: Int64) -> [UInt8] {
        var json = JSONWriter(capacity: 32)
        json.timestamp(milliseconds: time)
        return Array(json.bytes.dropFirst().dropLast())
    }

    /// RFC 3164's `Mmm dd hh:mm:ss`, in local time as that format expects.
    private static func bsdTimestamp(_ time: Int64) -> [UInt8] {
        var seconds = time_t(time / 1000)
        var parts = tm()
        localtime_r(&seconds, &parts)
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        let day = parts.tm_mday < 10 ? " \(parts.tm_mday)" : "\(parts.tm_mday)"
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return Array("\(months[Int(parts.tm_mon)]) \(day) \(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))".utf8)
    }

    /// The longest prefix of `bytes` within `maximumBytes` that does not split a UTF-8 sequence.
    static func utf8Prefix(_ bytes: [UInt8], maximumBytes: Int) -> Int {
        guard bytes.count > maximumBytes else { return bytes.count }
        var end = maximumBytes
        // Back up over continuation bytes to the start of the sequence that would be split.
        while end > 0 && bytes[end] & 0xC0 == 0x80 { end -= 1 }
        return end
    }
}

/// ECS `event.severity` (1-100) to a syslog severity: 73 (high) is err, 47 (medium) warning,
/// 21 (low) notice; 90 and above critical.
public func syslogSeverity(eventSeverity: Int) -> Int {
    switch eventSeverity {
    case 90...: 2
    case 70..<90: 3
    case 40..<70: 4
    case 20..<40: 5
    default: 6
    }
}

extension SyslogMessageBuilder {
    /// Shortenings tried, in turn, on an alert too long for one message: the longest values (an
    /// attacker's arguments, a long ancestry) go first, the structure stays, and each shortened
    /// value says how much it lost. Only when the last is still too long is the payload's tail cut.
    static let shortenings = [
        JSONWriter.Limits(stringBytes: 1024, arrayElements: 32), JSONWriter.Limits(stringBytes: 256, arrayElements: 12),
        JSONWriter.Limits(stringBytes: 64, arrayElements: 4),
    ]

    /// The message of the whole payload (`payload(nil)`) when it fits; otherwise the payload
    /// written under each of `shortenings` in turn until one fits (the last cut if none does).
    /// `build` makes the message of a payload, given the whole message's length when shortened.
    public static func fitting(payload: (JSONWriter.Limits?) -> [UInt8], build: ([UInt8], _ shortenedFrom: Int?) -> Message) -> Message {
        let whole = build(payload(nil), nil)
        guard let original = whole.truncatedFrom else { return whole }
        var shortened = whole
        for limits in shortenings {
            shortened = build(payload(limits), original)
            if !shortened.payloadCut { break }
        }
        return shortened
    }
}
