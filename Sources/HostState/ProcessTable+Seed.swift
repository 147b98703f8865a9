import AuditIngest
import Runtime

#if canImport(Glibc)
    import Glibc
#endif

/// The processes running before the agent: read from /proc at start, and a parent /proc
/// still shows when a child's execve names it.
extension ProcessTable {
    /// Builds records for every process in /proc, parents first where they resolve.
    public func seedFromProc() {
        guard let procfs else { return }
        for pid in procfs.pids() where records[pid] == nil {
            guard let stat = procfs.stat(pid: pid) else { continue }
            _ = seed(pid: pid, stat: stat, procfs: procfs)
        }
    }

    func seed(pid: Int32, stat: ProcStat, procfs: ProcFS) -> ProcessRecord {
        let parent = resolveParent(stat.ppid, childStart: stat.startTicks)
        let status = procfs.read(pid: pid, "status").map(ProcStatus.init) ?? ProcStatus()
        let auid = procfs.read(pid: pid, "loginuid").flatMap { ProcFS.decimal($0) }
        let session = procfs.read(pid: pid, "sessionid").flatMap { ProcFS.decimal($0) }
        let exe = procfs.readLink(pid: pid, "exe").map { String(decoding: $0, as: UTF8.self) } ?? ""
        let cmdline = procfs.read(pid: pid, "cmdline").map { FieldDecoding.proctitleArguments(Array($0)).map { String(decoding: $0, as: UTF8.self) } } ?? []
        let cwd = procfs.readLink(pid: pid, "cwd").map { String(decoding: $0, as: UTF8.self) }
        let record = ProcessRecord(
            pid: pid, ppid: stat.ppid, startTicks: stat.startTicks,
            startTime: bootTime + Int64(stat.startTicks) * 1000 / ticksPerSecond,
            executable: exe, arguments: cmdline, workingDirectory: cwd,
            uid: status.uid, euid: status.euid, suid: status.suid, gid: status.gid, egid: status.egid, sgid: status.sgid,
            auid: auid.map(UInt32.init(truncatingIfNeeded:)),
            sessionID: session.map(UInt32.init(truncatingIfNeeded:)), terminalSession: stat.session, tty: ProcFS.terminalName(ttyNumber: stat.ttyNumber),
            stdin: procfs.stdin(pid: pid), networkNamespace: procfs.networkNamespace(pid: pid), source: .proc, parent: parent)
        identify(record, event: nil)
        record.container = procfs.cgroup(pid: pid).flatMap(container(cgroup:))
        insert(record)
        counters.seeded += 1
        return record
    }

    /// The parent of a process that started at `childStart`: a record that started later is a
    /// reused pid, never the parent.
    func resolveParent(_ ppid: Int32, childStart: UInt64?) -> ProcessRecord? {
        guard ppid > 0 else { return nil }
        if let held = records[ppid] {
            if let child = childStart, let start = held.startTicks, start > child {
                counters.unknownParents += 1
                return nil
            }
            touch(held)
            return held
        }
        guard let procfs, let stat = procfs.stat(pid: ppid) else {
            counters.unknownParents += 1
            return nil
        }
        if let child = childStart, stat.startTicks > child {
            counters.unknownParents += 1
            return nil
        }
        return seed(pid: ppid, stat: stat, procfs: procfs)
    }
}

/// The `Uid:` and `Gid:` lines of /proc/<pid>/status.
struct ProcStatus {
    var uid: UInt32?
    var euid: UInt32?
    var suid: UInt32?
    var gid: UInt32?
    var egid: UInt32?
    var sgid: UInt32?

    init() {}

    init(_ text: ArraySlice<UInt8>) {
        for line in text.split(separator: UInt8(ascii: "\n")) {
            if line.starts(with: "Uid:".utf8) {
                (uid, euid, suid) = Self.realEffectiveSaved(line.dropFirst(4))
            } else if line.starts(with: "Gid:".utf8) {
                (gid, egid, sgid) = Self.realEffectiveSaved(line.dropFirst(4))
            }
        }
    }

    /// The first three of a line's ids (the fourth is the file-system id).
    static func realEffectiveSaved(_ text: ArraySlice<UInt8>) -> (UInt32?, UInt32?, UInt32?) {
        let ids = text.split(whereSeparator: { $0 == 9 || $0 == 32 }).compactMap { ProcFS.decimal($0).map(UInt32.init(truncatingIfNeeded:)) }
        func at(_ index: Int) -> UInt32? { index < ids.count ? ids[index] : nil }
        return (at(0), at(1), at(2))
    }
}
