import TestSupport
import Testing

@testable import AuditIngest

@Suite struct AssemblerTests {
    func syscall(_ serial: Int, _ time: String = "100.000", items: Int = 0) -> String {
        "type=SYSCALL msg=audit(\(time):\(serial)): arch=c000003e syscall=59 success=yes exit=0 items=\(items) ppid=1 pid=\(serial) comm=\"x\" exe=\"/bin/x\""
    }
    func record(_ type: String, _ serial: Int, _ time: String = "100.000", _ fields: String = "a=b") -> String {
        "type=\(type) msg=audit(\(time):\(serial)): \(fields)"
    }

    @Test func interleavedEventsCompleteOnTheirEndOfEvent() throws {
        let (events, counters) = try assemble([
            syscall(1), syscall(2), record("CWD", 2), record("CWD", 1), record("EOE", 2, "100.000", ""),
            record("PROCTITLE", 1), record("EOE", 1, "100.000", ""),
        ])
        #expect(events.map(\.key.serial) == [2, 1])
        #expect(events.allSatisfy { $0.completion == .endOfEvent && !$0.partial })
        #expect(events[1].records.map(\.type.name) == ["SYSCALL", "CWD", "PROCTITLE"])
        #expect(counters.records == 7)
        #expect(counters.sequenceGaps == 0)
    }

    @Test func singleRecordTypesCompleteAtOnce() throws {
        var events: [AuditEvent] = []
        let assembler = EventAssembler { events.append($0) }
        assembler.add(try parse(record("USER_LOGIN", 7, "100.000", "pid=1 uid=0 msg='op=login res=success'")))
        #expect(events.count == 1)
        #expect(events[0].completion == .singleRecord)
    }

    /// The kernel logs a multicast listener joining or leaving in that process's syscall, which
    /// is rarely audited: the record comes alone, and the event is whole.
    @Test func aLoneMulticastListenerRecordIsWhole() throws {
        let (events, _) = try assemble([
            record("EVENT_LISTENER", 9, "100.000", "pid=5 uid=105 auid=4294967295 tty=(none) ses=4294967295 comm=\"xferwatchd\" nl-mcgrp=1 op=connect res=1")
        ])
        #expect(events.count == 1 && events[0].completion == .flush && !events[0].partial)
    }

    @Test func logTimeTimeoutCountsFromTheLastRecord() throws {
        // Serial 1 is a slow syscall: its SYSCALL record arrives 5 s of log time after its
        // stamp, while its CONFIG_CHANGE came at once. It must not be split.
        let settings = AssemblerSettings(logTimeoutMilliseconds: 2000, arrivalTimeoutMilliseconds: 2000)
        let (events, counters) = try assemble(
            [
                record("CONFIG_CHANGE", 1, "100.000", "op=add_rule res=1"),
                syscall(2, "100.500"), record("EOE", 2, "100.500", ""),
                syscall(3, "101.500"), record("EOE", 3, "101.500", ""),
                syscall(1, "100.000"),  // arrives while the stream is at 101.5 s: still open
                record("EOE", 1, "100.000", ""),
                syscall(4, "105.000"), record("EOE", 4, "105.000", ""),
            ], settings: settings)
        let first = try #require(events.first { $0.key.serial == 1 })
        #expect(first.records.map(\.type.name) == ["CONFIG_CHANGE", "SYSCALL"])
        #expect(first.completion == .endOfEvent)
        #expect(counters.completedByTimeout == 0)
    }

    /// A syscall is stamped at its entry: an accept that waited 10 s for a client comes stamped
    /// 10 s before the records around it, which another CPU's newer events interleave.
    @Test func aSyscallThatBlockedLongerThanTheTimeoutIsWhole() throws {
        let settings = AssemblerSettings(logTimeoutMilliseconds: 500, arrivalTimeoutMilliseconds: 500)
        let (events, counters) = try assemble(
            [
                syscall(1, "100.000"), record("EOE", 1, "100.000", ""),
                syscall(2, "90.000"),
                syscall(3, "100.400"), record("EOE", 3, "100.400", ""),
                record("SOCKADDR", 2, "90.000", "saddr=02000015CB00710A0000000000000000"),
                syscall(4, "100.800"), record("EOE", 4, "100.800", ""),
                record("EOE", 2, "90.000", ""),
            ], settings: settings)
        let accept = try #require(events.first { $0.key.serial == 2 })
        #expect(accept.records.map(\.type.name) == ["SYSCALL", "SOCKADDR"])
        #expect(accept.completion == .endOfEvent && !accept.partial)
        #expect(counters.completedByTimeout == 0 && counters.partialEvents == 0)
    }

    @Test func eventsWithoutEndOfEventTimeOutAndAreFlaggedWhenTheStreamHasIt() throws {
        let settings = AssemblerSettings(logTimeoutMilliseconds: 1000, arrivalTimeoutMilliseconds: 1000)
        let (events, counters) = try assemble(
            [
                syscall(1), record("EOE", 1, "100.000", ""),
                syscall(2, "100.100"), record("CWD", 2, "100.100"),  // its EOE never comes
                syscall(3, "102.000"), record("EOE", 3, "102.000", ""),
            ], settings: settings)
        let two = try #require(events.first { $0.key.serial == 2 })
        #expect(two.completion == .timeout)
        #expect(two.partial)
        #expect(counters.completedByTimeout == 1)
        #expect(counters.partialEvents == 1)
    }

    @Test func logFilesWithoutEndOfEventAreNotPartial() throws {
        // auditd's log has no EOE: events complete at their PROCTITLE and are whole.
        let (events, counters) = try assemble(try lines(ofFile: Repo.fixture("raw.log")))
        #expect(counters.partialEvents == 0)
        #expect(events.contains { $0.completion == .processTitle })
        #expect(events.contains { $0.type == .syscall && $0.first(.execve) != nil && $0.first(.proctitle) != nil })
        #expect(counters.sequenceGaps == 0)
    }

    /// PROCTITLE is the last record the kernel writes for a syscall event: without EOE in the
    /// stream it completes the event at once, rather than the timeout or the memory bound.
    @Test func withoutEndOfEventTheProcessTitleCompletesASyscallEvent() throws {
        var events: [AuditEvent] = []
        let assembler = EventAssembler { events.append($0) }
        for line in [syscall(1, items: 1), record("CWD", 1), syscall(2), record("PATH", 1, "100.000", "item=0 name=\"/x\"")] {
            assembler.add(try parse(line))
        }
        #expect(events.isEmpty && assembler.pendingCount == 2)
        assembler.add(try parse(record("PROCTITLE", 1)))
        #expect(events.map(\.key.serial) == [1] && assembler.pendingCount == 1)
        #expect(events[0].completion == .processTitle && !events[0].partial)
        #expect(events[0].records.map(\.type.name) == ["SYSCALL", "CWD", "PATH", "PROCTITLE"])

        // Once the stream has shown EOE, PROCTITLE waits for it.
        assembler.add(try parse(record("EOE", 2, "100.000", "")))
        assembler.add(try parse(syscall(3)))
        assembler.add(try parse(record("PROCTITLE", 3)))
        #expect(events.count == 2 && assembler.pendingCount == 1)
        assembler.add(try parse(record("EOE", 3, "100.000", "")))
        #expect(events.last?.completion == .endOfEvent && events.last?.records.count == 2)
    }

    @Test func missingSyscallOrPathRecordsMakeAnEventPartial() throws {
        let (events, _) = try assemble([
            record("CWD", 1), record("PATH", 1, "100.000", "item=0 name=\"/x\""),  // no SYSCALL
            syscall(2, items: 2), record("PATH", 2, "100.000", "item=0 name=\"/x\""),  // 1 of 2 PATHs
            syscall(3, items: 1), record("PATH", 3, "100.000", "item=0 name=\"/x\""),
        ])
        #expect(events.map(\.partial) == [true, true, false])
    }

    @Test func serialGapsAreCountedOnceTheStreamMovesOn() throws {
        var lines = [syscall(10)]
        lines += [syscall(11), syscall(13)]  // 12 never comes
        lines += [syscall(15), syscall(14)]  // out of order: not a gap
        let (_, counters) = try assemble(lines)
        #expect(counters.sequenceGaps == 1)
    }

    @Test func serialsWrapAround() throws {
        let (events, counters) = try assemble([syscall(Int(UInt32.max) - 1), syscall(Int(UInt32.max)), syscall(0), syscall(1)])
        #expect(events.count == 4)
        #expect(counters.sequenceGaps == 0)
    }

    @Test func pendingEventsAreBounded() throws {
        let settings = AssemblerSettings(logTimeoutMilliseconds: 60_000, arrivalTimeoutMilliseconds: 60_000, maximumPendingEvents: 100)
        var events: [AuditEvent] = []
        let assembler = EventAssembler(settings: settings) { events.append($0) }
        for serial in 1...1000 { assembler.add(try parse(syscall(serial))) }
        #expect(assembler.pendingCount <= 100)
        #expect(assembler.counters.completedEarly >= 900)
        assembler.flush()
        #expect(events.count == 1000)
    }

    @Test func wallClockTimeoutForQuietLiveStreams() throws {
        var events: [AuditEvent] = []
        let assembler = EventAssembler(settings: AssemblerSettings(logTimeoutMilliseconds: 3000, arrivalTimeoutMilliseconds: 3000)) { events.append($0) }
        assembler.add(try parse(syscall(1)), arrivalTime: 10_000)
        assembler.tick(arrivalTime: 12_000)
        #expect(events.isEmpty)
        assembler.tick(arrivalTime: 13_500)
        #expect(events.count == 1)
        #expect(events[0].completion == .timeout)
    }
}
