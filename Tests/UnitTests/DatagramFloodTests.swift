import Foundation
import Testing

@testable import AuditIngest
@testable import Flows
@testable import HostState
@testable import KernelAudit

/// Datagram floods (`DatagramRates`, `FlowTracker.noteDatagram`): which senders are reported,
/// and how often; and the rules that quiet them.
@Suite struct DatagramFloodTests {
    final class Heard: FlowObserver {
        var floods: [Int32] = []
        var unexplained = 0
        var flows: [Flow] = []
        func flowReported(_ flow: Flow) { flows.append(flow) }
        func sendsManyDatagrams(_ process: ProcessRecord) { floods.append(process.pid) }
        func unexplainedTFTPRequest() { unexplained += 1 }
    }

    /// An unconnected sendto by `pid` of 32 bytes to 127.0.0.1 (`port`) at `milliseconds`.
    static func sendto(pid: Int32, serial: Int, milliseconds: Int, port: UInt16 = 9, fd: Int = 3) -> [String] {
        let fraction = String(milliseconds % 1000 + 1000).dropFirst()
        let time = "audit(\(1_795_360_000 + milliseconds / 1000).\(fraction):\(serial))"
        let hexPort = String(String(port, radix: 16, uppercase: true).reversed()).padding(toLength: 4, withPad: "0", startingAt: 0).reversed()
        return [
            "type=SYSCALL msg=\(time): arch=c000003e syscall=44 success=yes exit=32 a0=\(String(fd, radix: 16)) a1=7ffd0 a2=20 a3=0 items=0 ppid=1 pid=\(pid) "
                + "auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm=\"flood\" exe=\"/usr/bin/flood\" key=\"xferwatch\"",
            "type=SOCKADDR msg=\(time): saddr=0200\(String(hexPort))7F0000010000000000000000",
            "type=EOE msg=\(time): ",
        ]
    }

    static func tracker(floodRate: Int) -> (FlowTracker, Heard) {
        let heard = Heard()
        var settings = FlowSettings()
        settings.datagramFloodPerSecond = floodRate
        let tracker = FlowTracker(catalog: .standard, processes: ProcessTable(procfs: nil), sockets: nil, settings: settings, observer: heard)
        return (tracker, heard)
    }

    static func feed(_ tracker: FlowTracker, _ lines: [String]) throws {
        for event in try assemble(lines).events {
            if let call = SyscallEvent(event) { tracker.handle(call, now: call.time) }
        }
    }

    @Test func aSenderIsReportedOncePerWindowPastTheRate() throws {
        let (tracker, heard) = Self.tracker(floodRate: 10)
        // 25 datagrams within a second: the 20th (10 a second over the 2 s window) reports.
        try Self.feed(tracker, (0..<25).flatMap { Self.sendto(pid: 700, serial: $0 + 1, milliseconds: $0 * 10) })
        #expect(heard.floods == [700])
        // A slow sender never is, and a new window counts anew.
        try Self.feed(tracker, (0..<15).flatMap { Self.sendto(pid: 701, serial: 100 + $0, milliseconds: 3000 + $0 * 150) })
        try Self.feed(tracker, (0..<20).flatMap { Self.sendto(pid: 700, serial: 200 + $0, milliseconds: 6000 + $0 * 10) })
        #expect(heard.floods == [700, 700])
        #expect(tracker.counters.notTransfers == 60)
    }

    @Test func offAtZeroAndNeverForATFTPSender() throws {
        let (off, quiet) = Self.tracker(floodRate: 0)
        try Self.feed(off, (0..<50).flatMap { Self.sendto(pid: 700, serial: $0 + 1, milliseconds: $0) })
        #expect(quiet.floods.isEmpty)
        // A TFTP session on one socket (its request to port 69) keeps the whole process audited.
        let (tracker, heard) = Self.tracker(floodRate: 10)
        try Self.feed(tracker, Self.sendto(pid: 702, serial: 1, milliseconds: 0, port: 69, fd: 4))
        try Self.feed(tracker, (0..<30).flatMap { Self.sendto(pid: 702, serial: 2 + $0, milliseconds: 1 + $0) })
        #expect(heard.floods.isEmpty)
        #expect(tracker.openFlows.count == 1)
    }

    @Test func quietingRulesComeFirstAndName() throws {
        let spec = AuditRuleSpec(arch: "b64", syscalls: ["sendto", "sendmsg"], fields: ["pid=42"], key: "xferwatch", never: true)
        #expect(spec.description == "-A never,exit -F arch=b64 -S sendto,sendmsg -F pid=42 -k xferwatch")
        let rule = try AuditControl().compile(spec)
        #expect(rule.header.action == 0 && rule.header.flags == 0x14, "never, on the exit list, prepended")
        #expect(rule.key == "xferwatch")
        let always = try AuditControl().compile(AuditRuleSpec(arch: "b64", syscalls: ["connect"], key: "xferwatch"))
        #expect(always.header.action == 2 && always.header.flags == 4)
    }
}
