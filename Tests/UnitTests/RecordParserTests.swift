import AuditIngest
import Foundation
import TestSupport
import Testing

@testable import AuditIngest

/// The parser on logs recorded from the real kernel (Tests/Fixtures, see workload/).
@Suite struct RecordParserTests {
    @Test(arguments: ["raw.log", "enriched.log"])
    func everyRecordedLineParses(_ name: String) throws {
        let all = try lines(ofFile: Repo.fixture(name))
        #expect(all.count > 200)
        for line in all { _ = try parse(line) }
    }

    @Test func syscallFieldsAndStamp() throws {
        let record = try parse(
            #"type=SYSCALL msg=audit(1795355691.773:3069): arch=c000003e syscall=42 success=no exit=-115 a0=5 a1=7ffd items=0 ppid=1 pid=4242 auid=4294967295 uid=0 tty=(none) comm="curl" exe="/usr/bin/curl" key="xwcapture""#
        )
        #expect(record.type == .syscall)
        #expect(record.key.time == AuditTime(seconds: 1_795_355_691, milliseconds: 773))
        #expect(record.key.serial == 3069)
        #expect(record.integer("exit") == -115)
        #expect(record.hexInteger("a0") == 5)
        #expect(record.hexInteger("arch") == 0xc000_003e)
        #expect(record.string("exe") == "/usr/bin/curl")
        #expect(record.string("tty") == "(none)")
        #expect(record.string("key") == "xwcapture")
        #expect(record.interpretedFields.isEmpty)
    }

    /// The tables generated from the installed libaudit are what their generators write now:
    /// RecordTypeTable.swift (tools/generate-record-types) and SyscallTable.swift
    /// (tools/generate-syscall-table).
    @Test(arguments: [("generate-record-types", "RecordTypeTable.swift"), ("generate-syscall-table", "SyscallTable.swift")])
    func generatedTableIsWhatItsGeneratorWrites(_ generator: String, _ file: String) throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let written = directory + "/" + file
        let result = try runCommand(Repo.path("tools/" + generator), [written])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(
            try String(contentsOfFile: written, encoding: .utf8)
                == String(contentsOfFile: Repo.path("Sources/AuditIngest/" + file), encoding: .utf8))
    }

    /// The catalog numbers syscalls per architecture: connect is 42 on x86_64, 203 on aarch64.
    @Test func syscallsAreNumberedPerArchitecture() {
        #expect(SyscallCatalog.standard.kind(arch: 0xc000_003e, number: 42) == .connect)
        #expect(SyscallCatalog.standard.kind(arch: 0xc000_00b7, number: 203) == .connect)
        #expect(SyscallCatalog.standard.kind(arch: 0xc000_00b7, number: 221) == .execve)
        #expect(SyscallCatalog.standard.kind(arch: 0xc000_003e, number: 203) == nil)
    }

    @Test func deviceNumbersAreWhatStatReports() throws {
        let all = try lines(ofFile: Repo.fixture("raw.log"))
        let path = try parse(try #require(all.first { $0.contains("type=PATH") && $0.contains("dev=fe:00") }))
        #expect(path.deviceNumber("dev") == 0xfe00)
        // The kernel prints MAJOR:MINOR in hex; mountinfo gives the root file system's in
        // decimal, and stat its st_dev.
        let mountinfo = try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)
        let root = try #require(mountinfo.split(separator: "\n").map { $0.split(separator: " ") }.first { $0.count > 4 && $0[4] == "/" })
        let numbers = root[2].split(separator: ":").compactMap { UInt64($0) }
        try #require(numbers.count == 2, "mountinfo's root line: \(root.joined(separator: " "))")
        var info = stat()
        try #require(stat("/", &info) == 0)
        let line = "type=PATH msg=audit(1700000000.000:1): item=0 name=\"/\" dev=\(String(numbers[0], radix: 16)):\(String(numbers[1], radix: 16))"
        #expect(try parse(line).deviceNumber("dev") == UInt64(info.st_dev))
        // Numbers past 8 bits of minor and 12 of major take glibc's split layout.
        #expect(try parse("type=PATH msg=audit(1700000000.000:1): item=0 dev=103:10005").deviceNumber("dev") == 0x1001_0305)
        #expect(try parse("type=PATH msg=audit(1700000000.000:1): item=0 dev=fd").deviceNumber("dev") == nil)
    }

    @Test func hexEncodedValuesAreDecoded() throws {
        let all = try lines(ofFile: Repo.fixture("raw.log"))
        let echo = try #require(all.first { $0.contains("type=EXECVE") && $0.contains("a1=68656C6C6F20776F726C64") })
        let (events, _) = try assemble([echo])
        let argv = FieldDecoding.argv(events[0].records).map { String(decoding: $0, as: UTF8.self) }
        #expect(argv == ["/bin/echo", "hello world", "quote\"d", "non-ascii é"])
        // `(null)` and plain words are never mistaken for hex.
        #expect(try parse(#"type=SYSCALL msg=audit(1.000:1): key=(null) comm=ABCD exe=2F62696E"#).string("key") == "(null)")
        #expect(try parse(#"type=SYSCALL msg=audit(1.000:1): exe=2F62696E2F6C73"#).string("exe") == "/bin/ls")
    }

    @Test func splitLongArgumentIsReassembled() throws {
        let all = try lines(ofFile: Repo.fixture("raw.log"))
        let first = try #require(all.first { $0.contains("a1_len=18000") })
        // The kernel continues a long argument in further EXECVE records of the same event.
        let stamp = String(first[first.range(of: "msg=audit(")!.upperBound...].prefix { $0 != ")" })
        let records = all.filter { $0.hasPrefix("type=EXECVE") && $0.contains("msg=audit(\(stamp))") }
        #expect(records.count >= 2)
        let (events, _) = try assemble(records)
        let argv = FieldDecoding.argv(events[0].records)
        #expect(argv.count == 2)
        #expect(argv[1].count == 9000)
        #expect(argv[1].allSatisfy { $0 == UInt8(ascii: "A") })
    }

    @Test func executeSplitAcrossSeveralRecords() throws {
        let (events, _) = try assemble([
            #"type=EXECVE msg=audit(5.000:9): argc=3 a0="scp" a1_len=8 a1[0]="/var""#,
            #"type=EXECVE msg=audit(5.000:9): a1[1]="/log" a2="host:""#,
        ])
        #expect(FieldDecoding.argv(events[0].records).map { String(decoding: $0, as: UTF8.self) } == ["scp", "/var/log", "host:"])
    }

    @Test func proctitleKeepsArgumentBoundaries() throws {
        let record = try parse("type=PROCTITLE msg=audit(1.000:2): proctitle=617564697463746C002D44002D6B00787763617074757265")
        let arguments = FieldDecoding.proctitleArguments(try #require(record.value("proctitle")))
        #expect(arguments.map { String(decoding: $0, as: UTF8.self) } == ["auditctl", "-D", "-k", "xwcapture"])
    }

    @Test func socketAddressesOfEachFamily() throws {
        let all = try lines(ofFile: Repo.fixture("raw.log")).filter { $0.hasPrefix("type=SOCKADDR") }
        let addresses = try all.compactMap { SocketAddress(hex: try #require(try parse($0).rawValue("saddr"))) }
        #expect(addresses.contains(.inet(address: IPAddress(bytes: [127, 0, 0, 1]), port: 18080)))
        #expect(addresses.contains(.inet(address: IPAddress(bytes: [127, 0, 0, 1]), port: 69)))
        #expect(addresses.contains(.inet6(address: IPAddress(bytes: [UInt8](repeating: 0, count: 15) + [1]), port: 18081, scopeID: 0)))
        #expect(addresses.contains(.unix(path: Array("/nonexistent".utf8), abstract: false)))
        #expect(addresses.contains { if case .netlink(portID: 0, groups: 0) = $0 { true } else { false } })
        #expect(IPAddress(bytes: [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]).description == "2001:db8::1")
        #expect(IPAddress(bytes: [UInt8](repeating: 0, count: 10) + [0xff, 0xff, 203, 0, 113, 5]).description == "::ffff:203.0.113.5")
        #expect(SocketAddress(hex: Array("0200".utf8)[...]) == nil)
    }

    @Test func nonBlockingConnectsAreRecorded() throws {
        let connects = try lines(ofFile: Repo.fixture("raw.log")).filter { $0.contains("syscall=42 ") }.map(parse)
        #expect(connects.contains { $0.integer("exit") == -115 && $0.string("success") == "no" })
    }

    @Test func enrichedFieldsAreKeptApart() throws {
        let all = try lines(ofFile: Repo.fixture("enriched.log"))
        let syscall = try parse(try #require(all.first { $0.hasPrefix("type=SYSCALL") && $0.contains("syscall=42 ") }))
        #expect(syscall.string("syscall") == "42")
        let interpreted = Dictionary(
            syscall.interpretedFields.map {
                (String(decoding: syscall.name($0), as: UTF8.self), String(decoding: syscall.rawValue($0), as: UTF8.self))
            }, uniquingKeysWith: { a, _ in a })
        #expect(interpreted["SYSCALL"] == "connect")
        #expect(interpreted["ARCH"] == "x86_64")
        let sockaddr = try parse(try #require(all.first { $0.hasPrefix("type=SOCKADDR") && $0.contains("saddr_fam=inet ") }))
        #expect(sockaddr.rawFields.count == 1)
        #expect(sockaddr.interpretedFields.count == 1)
    }

    @Test func audispNodePrefixAndUnknownTypes() throws {
        let record = try parse(#"node=web-01 type=UNKNOWN[1334] msg=audit(1700000000.5:77): prog-id=12 op=LOAD"#)
        #expect(record.key.node == "web-01")
        #expect(record.type.code == 1334)
        #expect(record.key.time.milliseconds == 500)
        let future = try parse(#"type=SOME_FUTURE_TYPE msg=audit(1700000000.123:78): a=b"#)
        #expect(future.type.name == "SOME_FUTURE_TYPE")
        #expect(try parse(#"type=SOME_FUTURE_TYPE msg=audit(1.000:1): "#).type == future.type)
    }

    @Test func netlinkBodies() throws {
        var body = Array("audit(1795355691.773:3069): saddr=020046A07F0000010000000000000000\0\0".utf8)
        let record = try body.withUnsafeBytes { try RecordParser.parseNetlink(type: 1306, body: $0) }
        #expect(record.type == .sockaddr)
        #expect(record.key.serial == 3069)
        #expect(SocketAddress(hex: try #require(record.rawValue("saddr"))) == .inet(address: IPAddress(bytes: [127, 0, 0, 1]), port: 18080))
        body = Array("audit(1795355691.773:3069): ".utf8)
        #expect(try body.withUnsafeBytes { try RecordParser.parseNetlink(type: 1320, body: $0) }.type == .endOfEvent)
    }

    /// A user-space writer's message may hold 0x1D: in netlink it is text, not auditd's
    /// ENRICHED separator, so nothing after it passes for auditd's interpretation.
    @Test func aSeparatorInANetlinkMessageIsText() throws {
        let body = Array("audit(1.000:7): pid=5 uid=0 msg='op=x\u{1D}UID=\"root\" res=success'".utf8)
        let record = try body.withUnsafeBytes { try RecordParser.parseNetlink(type: 1100, body: $0) }
        #expect(record.interpretedFields.isEmpty)
        #expect(record.rawValue("op").map { Array($0) } == Array("x\u{1D}UID=\"root\"".utf8))
        let line = Array("type=USER_AUTH msg=audit(1.000:7): pid=5 uid=0 res=success\u{1D}UID=\"root\"".utf8)
        let enriched = try line.withUnsafeBytes { try RecordParser.parseLine($0) }
        #expect(enriched.interpretedString("UID") == "root", "in a log line it is the separator")
    }

    @Test func userMessagesNestTheirFields() throws {
        let record = try parse(
            #"type=USER_START msg=audit(1.000:5): pid=12 uid=0 auid=1000 ses=3 msg='op=PAM:session_open acct="root" exe="/usr/bin/su" hostname=? addr=? terminal=pts/0 res=success'"#
        )
        #expect(record.string("acct") == "root")
        #expect(record.string("exe") == "/usr/bin/su")
        #expect(record.string("res") == "success")
    }
}
