import AuditIngest
import HostState

/// Execve-time alerts (an1170.command_line, ftp.scripted) waiting for what their process does
/// next: its first outbound connection (or a child's: scp's ssh) gives them a destination, so
/// that exclusions naming one can apply; its exit or a bounded delay decides them without.
/// When a shell's `-c` line and the program it runs both match a rule, only the program's
/// alert stays: it is the process that transfers, with the shell in its ancestry.
struct HeldAlerts {
    private struct Entry {
        let alert: Alert
        let deadline: Int64
        /// Arrival order: alerts decided together go out in the order they were raised.
        let order: UInt64
    }

    /// By the held process's pid: the lookups walk a process's ancestry (at most 9 pids).
    private var byPid: [Int32: [Entry]] = [:]
    private(set) var count = 0
    private var nextOrder: UInt64 = 0
    static let exitGrace: Int64 = 1000
    /// Beyond this many, the oldest is decided at once (never dropped).
    static let limit = 10_000
    private static let ancestry = 8

    /// Holds `alert` until `deadline`; returns alerts decided now to stay within the limit.
    mutating func hold(_ alert: Alert, until deadline: Int64) -> [Alert] {
        guard let process = alert.process else { return [alert] }
        // The shell whose -c line ran this program: the program's alert stands for both.
        for pid in Self.lineage(of: process) {
            remove(pid: pid) { held in
                guard held.alert.rule == alert.rule, let shell = held.alert.process, shell !== process else { return false }
                return Self.isSameOrDescendant(process, of: shell)
            }
        }
        byPid[process.pid, default: []].append(Entry(alert: alert, deadline: deadline, order: nextOrder))
        nextOrder += 1
        count += 1
        guard count > Self.limit, let oldest = byPid.values.joined().min(by: { $0.order < $1.order }) else { return [] }
        remove(pid: oldest.alert.process!.pid) { $0.order == oldest.order }
        return [oldest.alert]
    }

    /// The alerts of `process` and of the processes it descends from, now with the peer it
    /// connected to.
    mutating func takeConnected(_ process: ProcessRecord, remote: (address: IPAddress, port: UInt16)) -> [Alert] {
        guard count > 0 else { return [] }
        var taken: [Entry] = []
        for pid in Self.lineage(of: process) {
            taken += remove(pid: pid) { held in held.alert.process.map { Self.isSameOrDescendant(process, of: $0) } ?? false }
        }
        return taken.sorted { $0.order < $1.order }.map { entry in
            var alert = entry.alert
            alert.remote = remote
            return alert
        }
    }

    /// The alerts whose delay ran out, or whose process exited more than `exitGrace` after it
    /// started: a child's execve (the program a shell ran) still has that long to replace them.
    mutating func takeDue(now: Int64) -> [Alert] {
        guard count > 0 else { return [] }
        var due: [Entry] = []
        for pid in Array(byPid.keys) {
            due += remove(pid: pid) { now >= $0.deadline || $0.alert.process?.exited == true && now - $0.alert.time >= Self.exitGrace }
        }
        return due.sorted { $0.order < $1.order }.map(\.alert)
    }

    /// Everything held (reload, stop, the end of a replayed log).
    mutating func takeAll() -> [Alert] {
        defer {
            byPid.removeAll()
            count = 0
        }
        return byPid.values.joined().sorted { $0.order < $1.order }.map(\.alert)
    }

    @discardableResult
    private mutating func remove(pid: Int32, where matches: (Entry) -> Bool) -> [Entry] {
        guard var entries = byPid[pid] else { return [] }
        var removed: [Entry] = []
        entries.removeAll { entry in
            guard matches(entry) else { return false }
            removed.append(entry)
            return true
        }
        byPid[pid] = entries.isEmpty ? nil : entries
        count -= removed.count
        return removed
    }

    /// The pids a process's alerts and its ancestors' are held under.
    private static func lineage(of process: ProcessRecord) -> [Int32] {
        [process.pid] + process.ancestors(limit: ancestry).map(\.pid)
    }

    /// `process` is `ancestor`, a later image of it (the same process after an exec: a shell
    /// that execs its last command), or one of their descendants.
    static func isSameOrDescendant(_ process: ProcessRecord, of ancestor: ProcessRecord) -> Bool {
        for candidate in [process] + process.ancestors(limit: ancestry) {
            if candidate === ancestor { return true }
            if candidate.pid == ancestor.pid, candidate.startTicks == ancestor.startTicks, candidate.startTime >= ancestor.startTime { return true }
        }
        return false
    }
}
