import ByteJSON
import Detection
import Foundation
import HostState
import TestSupport
import Testing

@testable import Agent
@testable import AgentConfig
@testable import Outputs

/// An attacker chooses the command line an alert quotes. A recorded curl upload, its arguments
/// replaced by a 100 KB header full of control characters, quotes, brackets, pipes, equals
/// signs, a newline and invalid UTF-8, followed by 2,000 more arguments: every syslog message
/// stays within max_message_size whatever the transport, its frame whole, its payload still
/// JSON (or CEF) with each shortened value saying what it lost; the alert file keeps it all.
@Suite struct HostileOutputTests {
    static let header: [UInt8] =
        Array("X-Hdr: ".utf8) + Array(repeating: UInt8(ascii: "A"), count: 100_000) + [0x01, 0x1B, 0x07] + Array("[31m \"q\" ]b |p =e \\ \\n".utf8)
        + [0x0A, 0x0D, 0xFF, 0xFE, 0xC3]

    static func hostileAlerts() throws -> [Alert] {
        var log = try lines(ofFile: Repo.fixture("detection/detection.log"))
        let index = try #require(log.firstIndex { $0.hasPrefix("type=EXECVE msg=audit(1795372079.840:157534)") })
        // As the kernel writes a long argument: its length, then hex pieces over several records.
        let prefix = "type=EXECVE msg=audit(1795372079.840:157534):"
        let hex = Array(header.map { String(format: "%02X", $0) }.joined())
        var records = [
            "\(prefix) argc=2006 a0=\"curl\" a1=\"-s\" a2=\"-T\" a3=\"/tmp/tmp.2xaHKB74TO/data.bin\" a4=\"ftp://203.0.113.10/upload/curl.bin\" a5_len=\(header.count)"
        ]
        for (piece, start) in stride(from: 0, to: hex.count, by: 7000).enumerated() {
            records.append("\(prefix) a5[\(piece)]=\(String(hex[start..<min(start + 7000, hex.count)]))")
        }
        for first in stride(from: 6, to: 2006, by: 500) {
            records.append(prefix + (first..<min(first + 500, 2006)).map { " a\($0)=\"-v\"" }.joined())
        }
        log.replaceSubrange(index...index, with: records)
        let alerts = try Replayed().run(log).alerts.filter { $0.process?.pid == 4616 }
        try #require(!alerts.isEmpty, "the curl upload raises alerts")
        try #require(
            alerts[0].process?.arguments.count == 2006 && alerts[0].process?.arguments[5] == String(decoding: header, as: UTF8.self),
            "\(alerts[0].process?.arguments.count ?? -1) \(alerts[0].process?.arguments.prefix(5) ?? [])")
        return alerts
    }

    @Test func everyMessageFitsAndSaysWhatItLeftOut() throws {
        let users = UserNames()
        for alert in try Self.hostileAlerts() {
            var json = JSONWriter(capacity: 200_000)
            AlertJSON.write(alert, origin: AlertOrigin(host: HostFacts(hostname: "h")), users: users, to: &json)
            let whole = try #require(try JSONSerialization.jsonObject(with: Data(json.bytes)) as? [String: Any])
            #expect(((whole["process"] as? [String: Any])?["args"] as? [String])?.count == 2006, "the alert file keeps every argument")
            for (address, format, payload) in [
                ("tcp://127.0.0.1:1", "rfc5424", "json"), ("relp://127.0.0.1:1", "rfc5424", "json"), ("udp://127.0.0.1:1", "rfc5424", "json"),
                ("tcp://127.0.0.1:1", "rfc5424", "cef"), ("tcp://127.0.0.1:1", "rfc3164", "json"),
            ] {
                let settings = try AgentConfiguration.parse("[output.syslog]\naddress = \"\(address)\"\nformat = \"\(format)\"\npayload = \"\(payload)\"\n")
                    .output.syslog
                #expect(settings.maximumMessageBytes == 8000, "the default is below the 8,096 bytes rsyslog takes whole")
                let builder = SyslogMessageBuilder(settings: settings, hostname: "h", processID: 1)
                let message = AlertOutput.syslogMessage(
                    alert, builder: builder, payload: settings.payload, wholeJSON: json.bytes, origin: AlertOrigin(host: HostFacts(hostname: "h")), users: users
                )
                let what = "\(alert.rule.rawValue) \(address) \(format) \(payload)"
                #expect(message.bytes.count <= 8000 && message.bytes.count > 1000, "\(what): \(message.bytes.count) bytes")
                #expect(!message.payloadCut, "\(what): shortened values, not a cut payload")
                let original = try #require(message.truncatedFrom, "\(what)")
                #expect(original > 100_000)
                #expect(!message.bytes.contains(0x0A) && !message.bytes.contains(0x0D), "\(what): one line, whatever the receiver's framing")
                let text = try #require(String(validating: message.bytes, as: UTF8.self), "\(what): valid UTF-8")
                if format == "rfc3164" {
                    #expect(text.hasSuffix(" [truncated from \(original) bytes]"), "\(what)")
                    continue
                }
                let parsed = try #require(RFC5424Message(text), "\(what): \(text.prefix(300))")
                #expect(parsed.structuredData.hasSuffix(" truncated=\"\(original)\"]") && parsed.eventID == alert.id, "\(what)")
                if payload == "cef" {
                    let cef = try #require(CEFRecord(parsed.body), "\(what)")
                    let commandLine = try #require(cef.extensions["cs3"], "\(what)")
                    #expect(commandLine.hasPrefix("curl -s -T ") && commandLine.hasSuffix(" bytes cut]"), "\(what): \(commandLine.suffix(60))")
                    continue
                }
                let body = try #require(try JSONSerialization.jsonObject(with: Data(parsed.body.utf8)) as? [String: Any], "\(what): the payload parses")
                let process = try #require(body["process"] as? [String: Any], "\(what)")
                let args = try #require(process["args"] as? [String], "\(what)")
                #expect(args.count <= 33 && args.last?.hasPrefix("…[") == true && args.last?.hasSuffix(" more]") == true, "\(what): \(args.suffix(2))")
                #expect(args[5].hasPrefix("X-Hdr: AAAA") && args[5].hasSuffix(" bytes cut]"), "\(what): \(args[5].suffix(40))")
                #expect((process["command_line"] as? String)?.hasSuffix(" bytes cut]") == true, "\(what)")
                #expect(body["rule"] != nil && body["event"] != nil && body["destination"] != nil, "\(what): the structure stays")
            }
        }
    }

    /// A shortened copy keeps its structure: arrays past the bound leave whole elements out
    /// (objects and arrays inside them too) and say how many.
    @Test func shortenedJSONStaysJSON() throws {
        var json = JSONWriter(limits: .init(stringBytes: 5, arrayElements: 2))
        json.beginObject()
        json.key("ancestors")
        json.beginArray()
        for n in 0..<10 {
            json.beginObject()
            json.key("pid"); json.number(n)
            json.key("args"); json.beginArray(); for _ in 0..<4 { json.string("ééé") }; json.endArray()
            json.endObject()
        }
        json.endArray()
        json.key("flag"); json.bool(true)
        json.endObject()
        let parsed = try #require(try JSONSerialization.jsonObject(with: Data(json.bytes)) as? [String: Any], "\(String(decoding: json.bytes, as: UTF8.self))")
        let ancestors = try #require(parsed["ancestors"] as? [Any])
        #expect(ancestors.count == 3 && ancestors.last as? String == "…[8 more]")
        let args = try #require((ancestors.first as? [String: Any])?["args"] as? [String])
        #expect(args == ["éé…[2 bytes cut]", "éé…[2 bytes cut]", "…[2 more]"], "cut between characters, never inside one")
        #expect(parsed["flag"] as? Bool == true && json.valuesCut == 1 + 2 * 3)
    }

    /// What escaping must survive: JSON string values and RFC 5424 parameter values, each read
    /// back by a strict parser (CEF's escaping is read back in the syslog end-to-end test).
    @Test func escapingSurvivesEveryHostileByte() throws {
        let value: [UInt8] = Array("a\"b\\c]d|e=f".utf8) + [0x0A, 0x0D, 0x00, 0x01, 0x1B, 0x7F, 0xFF, 0xC3, 0x28] + Array("ünï".utf8)
        var json = JSONWriter()
        json.beginObject(); json.key("v"); json.string(value); json.endObject()
        let decoded = try #require(try JSONSerialization.jsonObject(with: Data(json.bytes)) as? [String: String])
        #expect(decoded["v"] == "a\"b\\c]d|e=f\n\r\u{0}\u{1}\u{1B}\u{7F}\u{FFFD}\u{FFFD}(ünï", "invalid UTF-8 becomes U+FFFD, the rest survives")

        let builder = SyslogMessageBuilder(settings: try AgentConfiguration.parse("").output.syslog, hostname: "h", processID: 1)
        // Parameter values are the agent's own (rule, alert id, severity), never a command line's.
        let message = builder.message(time: 0, severity: 4, msgID: "r", parameters: [("rule", "a\"b\\c]d|e=f"), ("event", "e1")], payload: Array("x".utf8))
        let parsed = try #require(RFC5424Message(String(decoding: message.bytes, as: UTF8.self)))
        #expect(parsed.structuredData.contains(#"rule="a\"b\\c\]d|e=f"#) && parsed.eventID == "e1")
    }
}
