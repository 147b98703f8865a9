import CTCPInfo
import Foundation
import TestSupport
import Testing

@testable import AuditIngest
@testable import Detection
@testable import HostState

/// The process model on a /proc tree the test writes, and the parsers on real kernel text.
@Suite struct HostStateTests {
    /// A fake /proc: `stat` lines, fd/0 links, status, exe.
    final class FakeProc {
        let root: String

        init() throws {
            root = NSTemporaryDirectory() + "xferwatch-proc-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
            try "cpu 0 0 0\nbtime 1700000000\n".write(toFile: root + "/stat", atomically: true, encoding: .utf8)
        }

        deinit { try? FileManager.default.removeItem(atPath: root) }

        func add(
            pid: Int32, ppid: Int32, start: UInt64, comm: String = "sh", exe: String = "/bin/sh", stdin: String = "/dev/pts/1",
            session: Int32 = 100, tty: UInt32 = 34817
        ) throws {
            let dir = "\(root)/\(pid)"
            try FileManager.default.createDirectory(atPath: dir + "/fd", withIntermediateDirectories: true)
            // Field 22 is the start time; the name may hold spaces and parentheses.
            let fields = ["S", "\(ppid)", "\(pid)", "\(session)", "\(tty)"] + Array(repeating: "0", count: 14) + ["\(start)", "0", "0"]
            try "\(pid) (\(comm)) \(fields.joined(separator: " "))\n".write(toFile: dir + "/stat", atomically: true, encoding: .utf8)
            try "Name:\t\(comm)\nUid:\t1000\t1001\t1002\t1000\nGid:\t50\t51\t52\t50\n".write(toFile: dir + "/status", atomically: true, encoding: .utf8)
            try "1000".write(toFile: dir + "/loginuid", atomically: true, encoding: .utf8)
            try "7".write(toFile: dir + "/sessionid", atomically: true, encoding: .utf8)
            try "\(exe)\0-c\0x\0".write(toFile: dir + "/cmdline", atomically: true, encoding: .utf8)
            try FileManager.default.createSymbolicLink(atPath: dir + "/exe", withDestinationPath: exe)
            try FileManager.default.createSymbolicLink(atPath: dir + "/cwd", withDestinationPath: "/home/u")
            try FileManager.default.createSymbolicLink(atPath: dir + "/fd/0", withDestinationPath: stdin)
        }

        func remove(pid: Int32) { try? FileManager.default.removeItem(atPath: "\(root)/\(pid)") }
    }

    /// An execve event as the kernel writes it, for `pid` with parent `ppid`.
    func execEvent(
        pid: Int32, ppid: Int32, exe: String, argv: [String], serial: Int, time: String = "1700000100.000"
    ) throws -> (AuditRecord, AuditEvent) {
        let args = argv.enumerated().map { "a\($0.offset)=\"\($0.element)\"" }.joined(separator: " ")
        let (events, _) = try assemble([
            "type=SYSCALL msg=audit(\(time):\(serial)): arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=4 items=2 ppid=\(ppid) pid=\(pid) auid=1000 uid=1000 gid=50 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=50 tty=pts1 ses=7 comm=\"x\" exe=\"\(exe)\" key=\"k\"",
            "type=EXECVE msg=audit(\(time):\(serial)): argc=\(argv.count) \(args)",
            "type=CWD msg=audit(\(time):\(serial)): cwd=\"/home/u\"",
            "type=EOE msg=audit(\(time):\(serial)): ",
        ])
        let event = try #require(events.first)
        return (event.records[0], event)
    }

    @Test func execReadsProcAtOnceAndLinksTheParent() throws {
        let proc = try FakeProc()
        try proc.add(pid: 100, ppid: 1, start: 500, exe: "/bin/bash")
        try proc.add(pid: 200, ppid: 100, start: 900, exe: "/usr/bin/ftp", stdin: "pipe:[4242]")
        let table = ProcessTable(procfs: ProcFS(root: proc.root))
        let (syscall, event) = try execEvent(pid: 200, ppid: 100, exe: "/usr/bin/tnftp", argv: ["ftp", "-n", "host"], serial: 1)
        let record = try #require(table.exec(syscall, event: event))
        #expect(record.startTicks == 900 && record.stdin == .pipe && record.tty == "pts1" && record.auid == 1000)
        #expect(
            record.uid == 1000 && record.euid == 0 && record.suid == 0 && record.gid == 50 && record.egid == 0 && record.sgid == 0,
            "a setuid and setgid program: real, effective and saved ids from audit")
        #expect(record.arguments == ["ftp", "-n", "host"] && record.workingDirectory == "/home/u" && record.terminalSession == 100)
        let parent = try #require(record.parent)
        #expect(
            parent.pid == 100 && parent.executable == "/bin/bash" && parent.source == .proc && parent.uid == 1000 && parent.euid == 1001 && parent.suid == 1002
                && parent.gid == 50 && parent.egid == 51 && parent.sgid == 52)
        #expect(parent.tty == "pts1", "tty_nr 34817 is /dev/pts/1")
    }

    @Test func aReusedPidIsNeverTheParent() throws {
        let proc = try FakeProc()
        // The table holds pid 100 from an exec; the child says its parent is 100, but the
        // process now at 100 started after the child: the real parent is gone.
        try proc.add(pid: 1, ppid: 0, start: 1, exe: "/sbin/init")
        try proc.add(pid: 100, ppid: 1, start: 2000, exe: "/usr/bin/other")
        try proc.add(pid: 300, ppid: 100, start: 1500, exe: "/usr/bin/ftp")
        let table = ProcessTable(procfs: ProcFS(root: proc.root))
        let (s1, e1) = try execEvent(pid: 100, ppid: 1, exe: "/usr/bin/other", argv: ["other"], serial: 1)
        table.exec(s1, event: e1)
        let (s2, e2) = try execEvent(pid: 300, ppid: 100, exe: "/usr/bin/ftp", argv: ["ftp"], serial: 2)
        let child = try #require(table.exec(s2, event: e2))
        #expect(child.parent == nil)
        #expect(table.counters.unknownParents == 1)
    }

    @Test func currentNoticesPidReuseAndPruneDropsTheDead() throws {
        let proc = try FakeProc()
        try proc.add(pid: 100, ppid: 1, start: 500)
        let table = ProcessTable(procfs: ProcFS(root: proc.root))
        let (s, e) = try execEvent(pid: 100, ppid: 1, exe: "/bin/sh", argv: ["sh"], serial: 1)
        let first = try #require(table.exec(s, event: e))
        let execTime = e.key.time.totalMilliseconds
        #expect(table.current(pid: 100, at: execTime + 10) === first)
        proc.remove(pid: 100)
        try proc.add(pid: 100, ppid: 1, start: 7000, exe: "/usr/bin/nc")
        // Seen running 10 ms before: a pid does not come round that fast, /proc is not asked.
        #expect(table.current(pid: 100, at: execTime + 20) === first)
        let second = try #require(table.current(pid: 100, at: execTime + 5000))
        #expect(second !== first && second.executable == "/usr/bin/nc" && first.exited)
        #expect(table.counters.pidReuse == 1)
        proc.remove(pid: 100)
        table.pruneExited()
        #expect(table.record(pid: 100) == nil && second.exited && table.counters.exited == 1)
    }

    /// Now on the boot clock, in the clock ticks of /proc's start times.
    func bootTicksNow() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_BOOTTIME, &now)
        let ticks = UInt64(sysconf(Int32(_SC_CLK_TCK)))
        return UInt64(now.tv_sec) * ticks + UInt64(now.tv_nsec) * ticks / 1_000_000_000
    }

    /// A process no rule judges at execve is not read then; its start time is taken when
    /// first asked, and only if it is no later than the execve's reading.
    @Test func aStartTimeLeftUnreadAtExecveIsTakenWhenFirstAsked() throws {
        let proc = try FakeProc()
        try proc.add(pid: 100, ppid: 1, start: 500, session: 42)
        let table = ProcessTable(procfs: ProcFS(root: proc.root))
        table.eagerPrograms = ["ftp"]
        let (s, e) = try execEvent(pid: 100, ppid: 1, exe: "/bin/sh", argv: ["sh"], serial: 1)
        let record = try #require(table.exec(s, event: e))
        #expect(record.startTicks == nil && record.startedBy != nil && record.terminalSession == nil)
        #expect(table.current(pid: 100, at: e.key.time.totalMilliseconds + 5000) === record)
        #expect(record.startTicks == 500 && record.startedBy == nil && record.terminalSession == 42)
        #expect(table.counters.pidReuse == 0)
    }

    @Test func aProcessThatTookTheUnreadPidIsAnother() throws {
        let proc = try FakeProc()
        try proc.add(pid: 100, ppid: 1, start: 500)
        let table = ProcessTable(procfs: ProcFS(root: proc.root))
        table.eagerPrograms = ["ftp"]
        let (s, e) = try execEvent(pid: 100, ppid: 1, exe: "/bin/sh", argv: ["sh"], serial: 1)
        let first = try #require(table.exec(s, event: e))
        proc.remove(pid: 100)
        // Started after the execve was read: another process with the pid.
        try proc.add(pid: 100, ppid: 1, start: bootTicksNow() + 100_000, exe: "/usr/bin/nc")
        let second = try #require(table.current(pid: 100, at: e.key.time.totalMilliseconds + 5000))
        #expect(second !== first && second.executable == "/usr/bin/nc" && first.exited)
        #expect(table.counters.pidReuse == 1 && first.startTicks == nil)
    }

    /// A wrapper execs a client that is gone before its event is read: both images are one
    /// process (one held alert, the client's), unless the earlier image is too old to be sure.
    @Test func anImageGoneBeforeItsEventIsTheSameProcessAsTheImageBefore() throws {
        let proc = try FakeProc()
        try proc.add(pid: 100, ppid: 1, start: 500, exe: "/bin/bash")
        try proc.add(pid: 200, ppid: 100, start: 900, exe: "/usr/bin/true")
        let table = ProcessTable(procfs: ProcFS(root: proc.root))
        let (s1, e1) = try execEvent(pid: 200, ppid: 100, exe: "/opt/wrapper", argv: ["wrapper", "/bin/true", "ftp", "-s:x"], serial: 1)
        let wrapper = try #require(table.exec(s1, event: e1))
        proc.remove(pid: 200)
        let (s2, e2) = try execEvent(
            pid: 200, ppid: 100, exe: "/usr/bin/true", argv: ["/bin/true", "ftp", "-s:x"], serial: 2, time: "1700000100.004")
        let program = try #require(table.exec(s2, event: e2))
        #expect(program.startTicks == 900 && program.parent === wrapper.parent && !wrapper.exited)
        #expect(HeldAlerts.isSameOrDescendant(program, of: wrapper))

        // Seconds later the pid may have come round: a different process.
        let (s3, e3) = try execEvent(pid: 200, ppid: 100, exe: "/usr/bin/ftp", argv: ["ftp"], serial: 3, time: "1700000105.000")
        let later = try #require(table.exec(s3, event: e3))
        #expect(later.startTicks == nil && program.exited && !HeldAlerts.isSameOrDescendant(later, of: program))
    }

    @Test func settledProcessesArePrunedInTurn() throws {
        let proc = try FakeProc()
        let table = ProcessTable(procfs: ProcFS(root: proc.root))
        // Found in /proc at start-up, pids 100..131: settled whatever their age.
        for pid in Int32(100)..<132 { try proc.add(pid: pid, ppid: 0, start: 9000) }
        table.seedFromProc()
        #expect(table.count == 32)
        for pid in Int32(100)..<132 { proc.remove(pid: pid) }
        // Two execs at T; 200 exits at once.
        try proc.add(pid: 150, ppid: 0, start: 9000)
        try proc.add(pid: 200, ppid: 0, start: 9000)
        let (s1, e1) = try execEvent(pid: 150, ppid: 0, exe: "/bin/sh", argv: ["sh"], serial: 1)
        let (s2, e2) = try execEvent(pid: 200, ppid: 0, exe: "/bin/sh", argv: ["sh"], serial: 2)
        let settling = try #require(table.exec(s1, event: e1))
        let young = try #require(table.exec(s2, event: e2))
        proc.remove(pid: 200)
        // A second after T: the young exec is checked, the settled ones in turn (pid % 16 == 1).
        table.pruneExited(now: young.startTime + 1000)
        #expect(young.exited && table.record(pid: 200) == nil)
        #expect(table.count == 31, "pids 113 and 129 went, 150 stays: \(table.count)")
        // Two minutes later 150 exits; it has settled, so it waits for its turn (150 % 16 == 6).
        proc.remove(pid: 150)
        table.pruneExited(now: young.startTime + 120_000)
        #expect(table.record(pid: 150) != nil)
        for _ in 2..<16 { table.pruneExited(now: young.startTime + 120_000) }
        #expect(table.count == 0 && table.counters.exited == 34 && settling.exited)
    }

    @Test func theTableStaysWithinItsCapacity() throws {
        let table = ProcessTable(procfs: nil, capacity: 64)
        for i in 0..<500 {
            let (s, e) = try execEvent(pid: Int32(1000 + i), ppid: 1, exe: "/bin/true", argv: ["true"], serial: i + 1)
            table.exec(s, event: e)
        }
        #expect(table.count <= 64)
        #expect(table.counters.evicted == 500 - table.count)
        #expect(table.record(pid: 1499) != nil, "the most recent survive")
    }

    @Test func interactivityAndItsReasons() {
        func record(_ args: [String], tty: String?, stdin: StdinKind, auid: UInt32 = 1000, session: Int32? = 5, parent: ProcessRecord? = nil) -> ProcessRecord {
            ProcessRecord(
                pid: 1, ppid: 0, startTicks: nil, startTime: 0, executable: "/usr/bin/" + args[0], arguments: args, workingDirectory: nil,
                uid: 0, euid: 0, suid: 0, gid: 0, egid: 0, sgid: 0, auid: auid, sessionID: 1, terminalSession: session, tty: tty, stdin: stdin,
                networkNamespace: nil, source: .execve, parent: parent)
        }
        #expect(Interactivity.assess(record(["ftp", "h"], tty: "pts0", stdin: .terminal)).isInteractive)
        // A shell with -c on a terminal is interactive.
        let shellC = record(["bash", "-c", "ftp h"], tty: "pts0", stdin: .terminal)
        #expect(Interactivity.assess(record(["ftp", "h"], tty: "pts0", stdin: .terminal, parent: shellC)).isInteractive)
        let cron = record(["cron", "-f"], tty: nil, stdin: .null, auid: ProcessRecord.unsetLoginUID, session: 1)
        let job = record(["sh", "-c", "ftp -n h < cmds"], tty: nil, stdin: .null, session: 9, parent: cron)
        let reasons = Interactivity.assess(record(["ftp", "-n", "h"], tty: nil, stdin: .file, session: 9, parent: job)).reasons
        #expect(reasons == ["no tty", "stdin is a file", "shell running -c", "launched by cron"])
        let script = record(["bash", "/opt/backup.sh"], tty: "pts0", stdin: .terminal)
        #expect(Interactivity.assess(record(["scp", "a", "h:"], tty: "pts0", stdin: .terminal, parent: script)).reasons == ["shell running a script file"])
        let sshd = record(["sshd"], tty: nil, stdin: .null)
        #expect(
            Interactivity.assess(record(["scp", "-t", "/x"], tty: nil, stdin: .pipe, parent: sshd)).reasons.contains("launched by sshd as a remote command"))
        #expect(Interactivity.isSystemdUnit("0::/system.slice/backup.service"))
        #expect(!Interactivity.isSystemdUnit("0::/user.slice/user-1000.slice/user@1000.service"))
    }

    @Test func statParsingSurvivesHostileCommandNames() {
        let text = Array("42 (a) b (c) S 7 42 9 34816 42 4194560 0 0 0 0 0 0 0 0 20 0 1 0 123456 0 0\n".utf8)
        let stat = ProcFS.parseStat(text[...])
        #expect(stat == ProcStat(ppid: 7, session: 9, ttyNumber: 34816, startTicks: 123456))
        #expect(ProcFS.terminalName(ttyNumber: 34816) == "pts0")
        #expect(ProcFS.parseStat(Array("garbage".utf8)[...]) == nil)
    }

    @Test func procNetTablesFromTheKernel() throws {
        let tcp = """
              sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
               0: 0100007F:0277 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 22262 1 0000000000000000 100 0 0 10 0
               1: 0100A8C0:B0C6 0A7100CB:0015 01 00000000:00000000 02:000AFC41 00000000  1000        0 98765 2 0000000000000000 20 4 30 10 -1
            """
        let sockets = ProcNetTable.parse(Array(tcp.utf8)[...], transport: .tcp, ipv6: false)
        #expect(sockets.count == 2)
        #expect(sockets[1].localAddress.description == "192.168.0.1" && sockets[1].localPort == 45254)
        #expect(sockets[1].remoteAddress.description == "203.0.113.10" && sockets[1].remotePort == 21)
        #expect(sockets[1].state == 1 && sockets[1].uid == 1000 && sockets[1].inode == 98765)
        let tcp6 =
            "header\n   0: 00000000000000000000000001000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 555 1\n"
        let six = ProcNetTable.parse(Array(tcp6.utf8)[...], transport: .tcp, ipv6: true)
        #expect(six.first?.localAddress.description == "::1" && six.first?.localPort == 22)
        // The live table of this machine parses without a line lost.
        let live = try String(contentsOfFile: "/proc/net/tcp", encoding: .utf8)
        #expect(ProcNetTable.parse(Array(live.utf8)[...], transport: .tcp, ipv6: false).count == live.split(separator: "\n").count - 1)
    }

    @Test func payloadBytesLeaveOutSynAndFin() {
        var c = xw_tcp_counters()
        c.bytes_sent = 5_000_000; c.bytes_retrans = 0; c.has_sent = 1; c.bytes_acked = 5_000_002; c.bytes_received = 1
        // At destroy (state CLOSE) the peer's FIN has been counted as one received byte.
        #expect(SockDiag.payloadBytes(c, state: 7) == (5_000_000, 0))
        // Established: nothing to take off.
        c.bytes_received = 300
        #expect(SockDiag.payloadBytes(c, state: 1) == (5_000_000, 300))
        // Kernels without bytes_sent: bytes_acked less SYN and FIN.
        c.has_sent = 0
        #expect(SockDiag.payloadBytes(c, state: 7).out == 5_000_000)
    }
}
