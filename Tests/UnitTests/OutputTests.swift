import Foundation
import TestSupport
import Testing

@testable import AgentConfig
@testable import Outputs

/// The output pieces on their own: syslog addresses, message building, the spool, the alert file.
@Suite struct OutputTests {
    @Test func syslogAddressesAndTheirProblems() throws {
        func parse(_ text: String) -> SyslogAddress? { try? SyslogAddress.parse(text).get() }
        #expect(parse("unix:///dev/log") == SyslogAddress(transport: .unix, host: "", port: 0, path: "/dev/log"))
        #expect(parse("udp://siem.example.com") == SyslogAddress(transport: .udp, host: "siem.example.com", port: 514, path: ""))
        #expect(parse("tcp://10.0.0.5:10514") == SyslogAddress(transport: .tcp, host: "10.0.0.5", port: 10514, path: ""))
        #expect(parse("tls://[2001:db8::1]") == SyslogAddress(transport: .tls, host: "2001:db8::1", port: 6514, path: ""))
        #expect(parse("tls://[2001:db8::1]:7514")?.description == "tls://[2001:db8::1]:7514")
        #expect(parse("relp://10.0.0.5") == SyslogAddress(transport: .relp, host: "10.0.0.5", port: 2514, path: ""))
        #expect(parse("relp+tls://[2001:db8::1]:20514")?.description == "relp+tls://[2001:db8::1]:20514")
        for bad in ["http://x:1", "relps://x:1", "tcp://", "tcp://h:0", "tcp://h:70000", "unix://dev/log", "udp://[::1", "/dev/log"] {
            #expect(parse(bad) == nil, "\(bad)")
        }
        let problems = Self.problems(
            """
            [output.syslog]
            address = "tcp//x"
            format = "rfc3339"
            app_name = "x ferwatch"
            tls_ca_file = "ca.pem"
            tls_cert_file = "/etc/c.pem"
            retry_initial_ms = 5000
            retry_max_ms = 1000
            [output.file]
            generations = 0
            """)
        #expect(
            problems == [
                "output.file.generations", "output.syslog.address", "output.syslog.format", "output.syslog.app_name",
                "output.syslog.tls_ca_file", "output.syslog.tls_key_file", "output.syslog.retry_max_ms",
            ], "\(problems)")
        let off = try AgentConfiguration.parse("[output.file]\npath = \"\"\n[output.syslog]\nenabled = false\n")
        #expect(!off.output.file.enabled && !off.output.syslog.enabled)
    }

    static func problems(_ text: String) -> [String] {
        do {
            _ = try AgentConfiguration.parse(text)
            return []
        } catch {
            return error.problems.map(\.keyPath)
        }
    }

    // MARK: messages

    static func builder(_ extra: String = "", hostname: String = "web1.example.com") throws -> SyslogMessageBuilder {
        let settings = try AgentConfiguration.parse("[output.syslog]\n" + extra).output.syslog
        return SyslogMessageBuilder(settings: settings, hostname: hostname, processID: 4242)
    }

    @Test func rfc5424HeaderAndStructuredData() throws {
        let builder = try Self.builder("address = \"tcp://127.0.0.1:1\"\nfacility = \"local3\"")
        let message = builder.message(
            time: 1_795_000_000_123, severity: 3, msgID: "an1170.large_transfer",
            parameters: [("rule", "an1170.large_transfer"), ("event", "x-1"), ("note", #"a "b" \c]"#)],
            payload: Array(#"{"k":"é"}"#.utf8))
        // local3 (19) * 8 + err (3) = 155.
        #expect(
            String(decoding: message.bytes, as: UTF8.self) == #"<155>1 2026-11-18T11:06:40.123Z web1.example.com xferwatch 4242 an1170.large_transfer "#
                + #"[xferwatch@32473 rule="an1170.large_transfer" event="x-1" note="a \"b\" \\c\]"] {"k":"é"}"#)
        #expect(message.truncatedFrom == nil, "streams are not cut")
        #expect(
            syslogSeverity(eventSeverity: 73) == 3 && syslogSeverity(eventSeverity: 47) == 4 && syslogSeverity(eventSeverity: 21) == 5
                && syslogSeverity(eventSeverity: 99) == 2 && syslogSeverity(eventSeverity: 5) == 6)
    }

    @Test func rfc3164HeaderInLocalTime() throws {
        let builder = try Self.builder("address = \"udp://127.0.0.1:1\"\nformat = \"rfc3164\"")
        let text = String(
            decoding: builder.message(
                time: 1_795_000_000_123, severity: 4, msgID: "x", parameters: [("rule", "x")],
                payload: Array("hello".utf8)
            ).bytes, as: UTF8.self)
        // authpriv (10) * 8 + warning (4) = 84; the short host name; no structured data.
        let pattern = #/^<84>(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ 1-3][0-9] [0-2][0-9]:[0-5][0-9]:[0-5][0-9] web1 xferwatch\[4242\]: hello$/#
        #expect(text.wholeMatch(of: pattern) != nil, "\(text)")
        var seconds = time_t(1_795_000_000)
        var parts = tm()
        localtime_r(&seconds, &parts)
        #expect(text.contains(String(format: "%02d:%02d:%02d", parts.tm_hour, parts.tm_min, parts.tm_sec)))

        // A host name with a space or a newline would move
        // the tag: the header keeps its printable bytes, as RFC 5424's does.
        let odd = try Self.builder("address = \"udp://127.0.0.1:1\"\nformat = \"rfc3164\"", hostname: "my host\nname")
        let oddText = String(decoding: odd.message(time: 0, severity: 4, msgID: "x", parameters: [], payload: Array("hi".utf8)).bytes, as: UTF8.self)
        #expect(oddText.hasSuffix(" myhostname xferwatch[4242]: hi"), "\(oddText)")
    }

    @Test func longMessagesAreCutAtACharacterBoundaryAndMarked() throws {
        let payload = Array(String(repeating: "ü", count: 1000).utf8)
        for (format, address) in [("rfc5424", "udp://127.0.0.1:1"), ("rfc3164", "udp://127.0.0.1:1"), ("rfc5424", "tcp://127.0.0.1:1")] {
            let builder = try Self.builder("address = \"\(address)\"\nmax_message_size = 480\nformat = \"\(format)\"")
            let message = builder.message(time: 0, severity: 4, msgID: "x", parameters: [("rule", "x")], payload: payload)
            #expect(message.bytes.count <= 480 && message.bytes.count >= 470)
            let whole = builder.message(time: 0, severity: 4, msgID: "x", parameters: [("rule", "x")], payload: []).bytes.count + payload.count
            #expect(message.truncatedFrom == whole)
            let text = try #require(String(validating: message.bytes, as: UTF8.self), "cut inside a character")
            #expect(text.contains(format == "rfc5424" ? "truncated=\"\(whole)\"]" : "[truncated from \(whole) bytes]"))
        }
        let fits = try Self.builder("address = \"udp://127.0.0.1:1\"").message(
            time: 0, severity: 4, msgID: "x", parameters: [], payload: Array(payload.prefix(100)))
        #expect(fits.truncatedFrom == nil)
    }

    // MARK: spool

    static func messages(_ range: ClosedRange<Int>, size: Int = 40) -> [[UInt8]] {
        range.map { Array(("message \($0) " + String(repeating: "x", count: max(0, size - 12))).utf8.prefix(size)) }
    }

    @Test func spoolKeepsWhatWasNotAcknowledgedAcrossARestart() throws {
        let directory = try makeTemporaryDirectory("xferwatch-output")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var spool: Spool? = try Spool(directory: directory, maximumBytes: 1 << 20)
        try spool!.append(Self.messages(1...6))
        try spool!.append(Self.messages(7...10))
        let read = spool!.read(from: spool!.cursor, maximumBytes: 1 << 20)
        #expect(read.map(\.message) == Self.messages(1...10))
        spool!.acknowledge(read.prefix(4).map(\.next))
        #expect(spool!.counters.records == 6 && spool!.counters.appended == 10)
        spool!.sync()
        spool = nil
        let reopened = try Spool(directory: directory, maximumBytes: 1 << 20)
        #expect(reopened.counters.records == 6)
        #expect(reopened.read(from: reopened.cursor, maximumBytes: 1 << 20).map(\.message) == Self.messages(5...10))
        // Acknowledging the rest leaves nothing to send; new messages follow.
        reopened.acknowledge(reopened.read(from: reopened.cursor, maximumBytes: 1 << 20).map(\.next))
        try reopened.append(Self.messages(11...11))
        #expect(reopened.read(from: reopened.cursor, maximumBytes: 1 << 20).map(\.message) == Self.messages(11...11))
        #expect(reopened.counters.records == 1)
    }

    @Test func aFullSpoolDropsTheOldestAndCountsThemExactly() throws {
        let directory = try makeTemporaryDirectory("xferwatch-output")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let spool = try Spool(directory: directory, maximumBytes: 16_384)
        // A few delivered first, so the cursor sits inside the oldest segment when it goes.
        try spool.append(Self.messages(1...5, size: 500))
        spool.acknowledge(spool.read(from: spool.cursor, maximumBytes: 1 << 20).prefix(3).map(\.next))
        for batch in stride(from: 6, through: 200, by: 13) { try spool.append(Self.messages(batch...min(200, batch + 12), size: 500)) }
        let left = spool.read(from: spool.cursor, maximumBytes: 1 << 20).map(\.message)
        #expect(spool.counters.dropped > 0)
        #expect(left.count + spool.counters.dropped == 197, "3 delivered, the rest kept or counted")
        #expect(left == Self.messages((201 - left.count)...200, size: 500), "the newest are kept, in order")
        #expect(spool.counters.records == left.count)
        let onDisk = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".seg") }
            .map { try FileManager.default.attributesOfItem(atPath: directory + "/" + $0)[.size] as! Int }.reduce(0, +)
        #expect(onDisk <= 16_384)
    }

    @Test func aTornWriteIsCutOffWhenTheSpoolOpens() throws {
        let directory = try makeTemporaryDirectory("xferwatch-output")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        do {
            let spool = try Spool(directory: directory, maximumBytes: 1 << 20)
            try spool.append(Self.messages(1...3))
        }
        // A crash mid-append: a header and half a record.
        let segment = directory + "/" + (try FileManager.default.contentsOfDirectory(atPath: directory).first { $0.hasSuffix(".seg") }!)
        let handle = try #require(FileHandle(forWritingAtPath: segment))
        handle.seekToEndOfFile()
        handle.write(Data([40, 0, 0, 0, 1, 2, 3, 4]) + Data("message 4 xx".utf8))
        try handle.close()
        let spool = try Spool(directory: directory, maximumBytes: 1 << 20)
        #expect(spool.counters.damagedBytes == 20 && spool.counters.records == 3)
        try spool.append(Self.messages(4...4))
        #expect(spool.read(from: spool.cursor, maximumBytes: 1 << 20).map(\.message) == Self.messages(1...4))
    }

    // MARK: alert file

    @Test func alertFileRotatesBySizeAndKeepsGenerations() throws {
        let directory = try makeTemporaryDirectory("xferwatch-output")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var settings = AgentConfiguration.FileOutput()
        settings.path = directory + "/logs/alerts.jsonl"
        settings.maximumBytes = 1000
        settings.generations = 2
        let previous = umask(0o077)
        let file = AlertFile(settings: settings)
        umask(previous)
        let lines = (1...35).map { Array(String(format: "{\"n\":%03d,\"pad\":\"%@\"}\n", $0, String(repeating: "x", count: 80)).utf8) }
        for line in lines { file.append(line) }
        #expect(file.written == 35 && file.rotations == 3 && file.failure == nil)
        func read(_ path: String) -> [String] {
            ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
        }
        let kept = read(settings.path + ".2") + read(settings.path + ".1") + read(settings.path)
        #expect(kept == lines.suffix(kept.count).map { String(decoding: $0.dropLast(), as: UTF8.self) }, "the newest, in order")
        #expect(kept.count == 25, "99-byte lines, 10 to a file: 10 + 10 + 5")
        #expect(!FileManager.default.fileExists(atPath: settings.path + ".3"))
        for path in [settings.path, settings.path + ".1", settings.path + ".2"] {
            let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int
            #expect(size <= 1000)
            let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as! Int
            #expect(mode == 0o640, "\(path): \(String(mode, radix: 8))")
        }
        // SIGHUP after logrotate moved the file: a new file at the path.
        try FileManager.default.moveItem(atPath: settings.path, toPath: settings.path + ".moved")
        file.reopen()
        file.append(lines[0])
        #expect(read(settings.path).count == 1)
    }
}
