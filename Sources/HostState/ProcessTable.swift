import AuditIngest
import Runtime

#if canImport(Glibc)
    import Glibc
#endif

/// The process model: fed by execve events, seeded from /proc, pruned when processes exit,
/// capped in size (least recently used records go first).
public final class ProcessTable {
    public struct Counters: Sendable, Equatable {
        /// execve events turned into records.
        public var execs = 0
        /// Records built from /proc (at start-up, or a process first seen at a connect).
        public var seeded = 0
        /// Records dropped because the table was full.
        public var evicted = 0
        /// Records dropped because their process exited.
        public var exited = 0
        /// A pid that now belongs to another process than the record we held.
        public var pidReuse = 0
        /// Parents we could not identify (exited before we saw them, or pid reused since).
        public var unknownParents = 0
        /// execve events whose process had exited before we could read /proc.
        public var goneBeforeRead = 0
        /// Processes not in `eagerPrograms` that had exited when a flow or alert needed their
        /// stdin and network namespace.
        public var detailsMissed = 0
    }

    /// nil when replaying a recorded log: today's /proc says nothing about yesterday's pids.
    public let procfs: ProcFS?
    public let capacity: Int
    public internal(set) var counters = Counters()
    /// Programs (by executable or argv[0] base name) whose stdin and network namespace are read
    /// at execve, before a short-lived client exits: the ones a rule judges at execve or that
    /// transfer files. Every other process's are read when a flow or an alert first needs them
    /// (`completeDetails`), which spares two /proc path walks per execve; nil reads them for all.
    public var eagerPrograms: Set<String>?
    /// Tells what each executed binary is (live only).
    public var catalog: ProgramCatalog?
    /// Names containers by their runtimes' state (live only).
    public var containers: ContainerCatalog?
    var records: [Int32: ProcessRecord] = [:]
    private var useClock: UInt64 = 0
    private var pruneRound: UInt64 = 0
    static let settledMilliseconds: Int64 = 60_000
    static let settledShare: UInt64 = 16
    /// Pids do not come round again this fast: an earlier image this recent is the same process.
    static let reexecWindowMilliseconds: Int64 = 2000
    /// Nor this fast: a process seen running this recently still holds its pid.
    static let reusedNoSoonerMilliseconds: Int64 = 1000
    let bootTime: Int64
    /// The unit of start times in /proc/<pid>/stat.
    let ticksPerSecond = Int64(max(sysconf(Int32(_SC_CLK_TCK)), 1))

    public init(procfs: ProcFS?, capacity: Int = 16_384) {
        self.procfs = procfs
        self.capacity = max(capacity, 64)
        self.bootTime = procfs?.bootTimeMilliseconds() ?? 0
    }

    public var count: Int { records.count }

    /// The record we hold for `pid`, without looking at /proc.
    public func record(pid: Int32) -> ProcessRecord? { records[pid] }

    // MARK: feeding

    /// A successful execve event. What audit does not carry (start time, stdin, network
    /// namespace, container) is read from /proc at once for the programs in `eagerPrograms`:
    /// short-lived clients are gone within milliseconds. Every other process's is read when a
    /// flow or an alert first asks (`current`, `completeDetails`): a /proc read at every execve
    /// was a third of what a host's execs cost the agent. A pid with a record already (a
    /// re-exec) is read at once too, to tell it from a process that took the pid since.
    @discardableResult
    public func exec(_ syscall: AuditRecord, event: AuditEvent) -> ProcessRecord? {
        guard let pid = syscall.integer("pid").map({ Int32(truncatingIfNeeded: $0) }), pid > 0 else { return nil }
        let ppid = Int32(truncatingIfNeeded: syscall.integer("ppid") ?? 0)
        let arguments = FieldDecoding.argv(event.records).map { String(decoding: $0, as: UTF8.self) }
        let previous = records[pid]
        let time = event.key.time.totalMilliseconds
        let record = Self.record(
            from: syscall, pid: pid, ppid: ppid, time: time, arguments: arguments,
            workingDirectory: event.first(.cwd)?.string("cwd"), stat: nil, startTicks: nil, stdin: .unknown,
            networkNamespace: nil, source: .execve, parent: nil)
        identify(record, event: event)
        let eager = eagerPrograms.map { record.isProgram(in: $0) } ?? true
        var running = false
        if let procfs {
            if eager || previous != nil {
                if let stat = procfs.stat(pid: pid) {
                    if let previous, previous.isSameProcess(as: stat) == true { previous.adoptStart(from: stat) }
                    record.adoptStart(from: stat)
                    record.seenRunningAt = time
                    running = true
                } else {
                    counters.goneBeforeRead += 1
                }
            } else {
                record.startedBy = bootTicksNow()
                running = true
            }
        }
        // Gone before this image's event was read (a wrapper that execs a short-lived client):
        // the image just before it, same pid and parent and not seen exiting, is the same
        // process, so both images keep one start time (held alerts merge on it).
        if !running, let previous, !previous.exited, previous.ppid == ppid, time - previous.startTime < Self.reexecWindowMilliseconds {
            record.startTicks = previous.startTicks
        }
        if let previous, previous.ppid == ppid, previous.startTicks == nil || previous.startTicks == record.startTicks {
            record.parent = previous.parent
        } else {
            record.parent = resolveParent(ppid, childStart: record.startTicks ?? record.startedBy)
        }
        if !running { record.container = record.parent?.container }
        if let procfs, running {
            if eager { readDetails(record, procfs: procfs) } else { record.detailsPending = true }
        }
        // Servers stay servers across exec (sshd re-executes itself for each connection).
        if let previous, previous.startTicks == record.startTicks { record.acceptedPeers = previous.acceptedPeers }
        insert(record)
        counters.execs += 1
        return record
    }

    /// Now on the clock /proc's start times count on (boot time, in clock ticks).
    private func bootTicksNow() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_BOOTTIME, &now)
        return UInt64(now.tv_sec) * UInt64(ticksPerSecond) + UInt64(now.tv_nsec) * UInt64(ticksPerSecond) / 1_000_000_000
    }

    /// The binary's identity: the host's file at its path when it is the file audit saw (inode
    /// and device of a PATH record: a short walk, no /proc dentry), else /proc/<pid>/exe (any
    /// mount namespace, a file replaced since).
    func identify(_ record: ProcessRecord, event: AuditEvent?) {
        guard let catalog, let procfs else { return }
        let executable = record.executable
        if let event, executable.hasPrefix("/"), let file = catalog.file(at: executable), Self.isAudited(file, in: event.records) {
            record.executableFile = file
            record.identity = catalog.identity(of: file, at: executable)
            return
        }
        record.identity = catalog.identify(path: "\(procfs.root)/\(record.pid)/exe")
    }

    /// Whether a PATH record of the event names `file` (its inode and device): the host's file
    /// at the path is the one audit saw, not another mount namespace's or one put there since.
    static func isAudited(_ file: FileVersion, in records: [AuditRecord]) -> Bool {
        records.contains { record in
            record.type == .path && record.integer("inode").map { UInt64(bitPattern: $0) } == file.inode && record.deviceNumber("dev") == file.device
        }
    }

    /// The process behind a syscall: `current(pid:at:)`, else (gone before we could read it, a
    /// zombie whose /proc entry has no executable, never seen exec) what the call's own SYSCALL
    /// record says, not kept in the table.
    public func describe(pid: Int32, syscall: AuditRecord, time: Int64) -> ProcessRecord {
        if let known = current(pid: pid, at: time), !known.executable.isEmpty { return known }
        let ppid = Int32(truncatingIfNeeded: syscall.integer("ppid") ?? 0)
        return Self.record(
            from: syscall, pid: pid, ppid: ppid, time: time, arguments: syscall.string("comm").map { [$0] } ?? [],
            workingDirectory: nil, stat: nil, startTicks: nil, stdin: .unknown, networkNamespace: nil, source: .syscall,
            parent: records[ppid])
    }

    /// A record from the identity fields every SYSCALL record carries (exe, ids, tty).
    private static func record(
        from syscall: AuditRecord, pid: Int32, ppid: Int32, time: Int64, arguments: [String],
        workingDirectory: String?, stat: ProcStat?, startTicks: UInt64?, stdin: StdinKind, networkNamespace: UInt64?,
        source: ProcessRecord.Source, parent: ProcessRecord?
    ) -> ProcessRecord {
        ProcessRecord(
            pid: pid, ppid: ppid, startTicks: startTicks, startTime: time, executable: syscall.string("exe") ?? "",
            arguments: arguments, workingDirectory: workingDirectory,
            uid: syscall.uint32("uid"), euid: syscall.uint32("euid"), suid: syscall.uint32("suid"),
            gid: syscall.uint32("gid"), egid: syscall.uint32("egid"), sgid: syscall.uint32("sgid"),
            auid: syscall.uint32("auid"), sessionID: syscall.uint32("ses"), terminalSession: stat?.session,
            tty: syscall.string("tty").flatMap { $0 == "(none)" ? nil : $0 },
            stdin: stdin, networkNamespace: networkNamespace, source: source, parent: parent)
    }

    /// The process behind `pid` at an event of `time`: the record we hold if /proc still shows
    /// the same process, else a fresh record from /proc; the held record when the process is
    /// gone; nil if unknown. A record /proc showed running less than
    /// `reusedNoSoonerMilliseconds` earlier is still that process without a look: a connect
    /// loop's calls cost no /proc read each.
    public func current(pid: Int32, at time: Int64) -> ProcessRecord? {
        if let held = records[pid], !held.detailsPending, let seen = held.seenRunningAt, time >= seen, time - seen < Self.reusedNoSoonerMilliseconds {
            touch(held)
            return held
        }
        let stat = procfs?.stat(pid: pid)
        if let held = records[pid] {
            if let stat, held.isSameProcess(as: stat) == false {
                counters.pidReuse += 1
                held.exited = true
                records[pid] = nil
            } else {
                touch(held)
                if let stat, held.isSameProcess(as: stat) == true {
                    held.adoptStart(from: stat)
                    held.seenRunningAt = time
                }
                completeDetails(held, stat: stat)
                return held
            }
        }
        guard let stat, let procfs else { return nil }
        return seed(pid: pid, stat: stat, procfs: procfs)
    }

    /// Reads what `exec` left for later (stdin, network namespace) while the process still
    /// runs the same image's process; one that exited keeps them unknown.
    public func completeDetails(_ record: ProcessRecord) {
        guard record.detailsPending else { return }
        completeDetails(record, stat: record.exited ? nil : procfs?.stat(pid: record.pid))
    }

    private func completeDetails(_ record: ProcessRecord, stat: ProcStat?) {
        guard record.detailsPending, let procfs else { return }
        record.detailsPending = false
        guard let stat, record.isSameProcess(as: stat) == true else {
            counters.detailsMissed += 1
            record.container = record.parent?.container
            return
        }
        record.adoptStart(from: stat)
        readDetails(record, procfs: procfs)
    }

    /// Notes whether the process's executable was deleted since it started: one readlink, at
    /// a flow's start (flows are rare next to execve).
    public func checkExecutableFile(_ record: ProcessRecord) {
        guard !record.exited, !record.executableDeleted, let procfs, let link = procfs.readLink(pid: record.pid, "exe") else { return }
        record.executableDeleted = link.count > 10 && link.suffix(10).elementsEqual(" (deleted)".utf8)
    }

    /// The network namespace of a process, read now if nobody read it yet (a server known only
    /// from its socket call's record) and it still runs.
    @discardableResult
    public func readNetworkNamespace(of record: ProcessRecord) -> UInt64? {
        if let known = record.networkNamespace { return known }
        guard !record.exited, let procfs else { return nil }
        record.networkNamespace = procfs.networkNamespace(pid: record.pid)
        return record.networkNamespace
    }

    /// What an execve leaves to /proc: stdin, network namespace, container.
    private func readDetails(_ record: ProcessRecord, procfs: ProcFS) {
        record.stdin = procfs.stdin(pid: record.pid)
        record.networkNamespace = procfs.networkNamespace(pid: record.pid)
        if let cgroup = procfs.cgroup(pid: record.pid) {
            record.container = container(cgroup: cgroup)
        } else {
            record.container = record.parent?.container
        }
    }

    /// The container a cgroup names, with what its runtime says of it.
    func container(cgroup: String) -> ContainerIdentity? {
        guard var container = ContainerIdentity.parse(cgroup: cgroup) else { return nil }
        container.details = containers?.details(of: container, now: monotonicMilliseconds())
        return container
    }

    // MARK: pruning

    /// Drops records of processes that exited. Records stay reachable from children and flows.
    /// Processes that exec'd less than `settledMilliseconds` ago are checked at every call; the
    /// settled ones (older, or found in /proc: mostly daemons that stay) a `settledShare`-th of
    /// them per call in turn, so that thousands of idle processes do not cost a /proc lookup
    /// each every time. Pass `now: nil` to check all.
    public func pruneExited(now: Int64? = nil) {
        guard let procfs else { return }
        pruneRound &+= 1
        let turn = Int32(truncatingIfNeeded: pruneRound % Self.settledShare)
        var gone: [Int32] = []
        for (pid, record) in records {
            if let now, record.source == .proc || now - record.startTime > Self.settledMilliseconds,
                pid % Int32(Self.settledShare) != turn
            {
                continue
            }
            guard !procfs.exists(pid: pid) else { continue }
            record.exited = true
            gone.append(pid)
        }
        for pid in gone { records[pid] = nil }
        counters.exited += gone.count
    }

    /// Reads what `exec` left for later (stdin, network namespace; see `completeDetails`),
    /// then judges whether a person at a terminal ran it; live, systemd units are told by
    /// their cgroup.
    public func completeDetailsAndAssessInteractivity(of process: ProcessRecord) -> Interactivity {
        completeDetails(process)
        // Scripts count within the process's terminal session: the ancestors' sessions too.
        process.ancestors().forEach(readStart)
        return Interactivity.assess(process) { [procfs] p in procfs?.cgroup(pid: p.pid) }
    }

    /// Reads the start time and session execve left unread, while the process still runs.
    private func readStart(of record: ProcessRecord) {
        guard record.startedBy != nil, !record.exited, let stat = procfs?.stat(pid: record.pid), record.isSameProcess(as: stat) == true else { return }
        record.adoptStart(from: stat)
    }

    /// Whether the process of `record` is still running (same pid, same start time).
    public func isAlive(_ record: ProcessRecord) -> Bool {
        if record.exited { return false }
        guard let stat = procfs?.stat(pid: record.pid) else { return false }
        guard let same = record.isSameProcess(as: stat) else { return true }
        if same { record.adoptStart(from: stat) }
        return same
    }

    func insert(_ record: ProcessRecord) {
        if let old = records[record.pid], old !== record { old.exited = old.startTicks != record.startTicks }
        touch(record)
        records[record.pid] = record
        if records.count > capacity { evictOldest() }
    }

    @inline(__always)
    func touch(_ record: ProcessRecord) {
        useClock &+= 1
        record.lastUse = useClock
    }

    /// Drops the least recently used eighth: one sort per capacity/8 inserts.
    private func evictOldest() {
        let victims = records.values.sorted { $0.lastUse < $1.lastUse }.prefix(max(1, capacity / 8))
        for victim in victims { records[victim.pid] = nil }
        counters.evicted += victims.count
    }
}

extension AuditRecord {
    /// A decimal id field (uid, auid, ses...); 4294967295 stays as is (unset).
    func uint32(_ name: StaticString) -> UInt32? {
        integer(name).map { UInt32(truncatingIfNeeded: $0) }
    }
}

extension ProcessTable {
    /// One line for the log.
    public var summary: String {
        let c = counters
        return "processes \(count) held, \(c.execs) execs, \(c.seeded) from /proc, \(c.exited) exited, \(c.evicted) evicted, "
            + "\(c.pidReuse) pid reuses, \(c.unknownParents) unknown parents, \(c.goneBeforeRead) gone before read, \(c.detailsMissed) gone before stdin was read"
    }
}
