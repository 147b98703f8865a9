import AgentConfig
import AuditIngest
import Detection
import Flows
import HostState
import Runtime
import Scanning

#if canImport(Glibc)
    import Glibc
#endif

/// Picks what to scan from the audit stream (every execve attempt, every TCP listen, and the
/// files a transfer names when asked) and turns the worker's matches into `yara.match`
/// alerts. Live only: a replayed log names files of another time, maybe another host.
final class ScanStage {
    struct Context: Sendable {
        let process: ProcessRecord?
        let trigger: String
        let time: Int64
    }

    /// One alert per process, file and rule: a server found at execve is not reported again at listen.
    private struct AlertKey: Hashable {
        let pid: Int32
        let processStart: Int64
        let file: FileVersion
        let rule: String
    }

    /// What the stage works with, handed over by the graph.
    struct Wiring {
        let processes: ProcessTable
        let sockets: HostSockets?
        /// Matches become `yara.match` alerts.
        let detector: Detector
        /// A full queue is the agent's trouble.
        let health: HealthChannel
        let log: Logger
    }

    let queue: ScanQueue<Context>
    private let wiring: Wiring
    private var log: Logger { wiring.log }
    private var scanUploads: Bool
    /// The rules in use, for agentctl.
    private(set) var ruleCount: Int
    private(set) var ruleFiles: [String]
    private var alerted: Set<AlertKey> = []
    private static let alertedLimit = 16_384
    private var loggedFailures = 0
    /// Targets found since the last `collect`.
    private var batch: [(ScanTarget, Context)] = []
    private var droppedReported = 0
    private var nextDropReport: Int64 = 0

    /// Compiles the rules and starts the worker; nil when scanning is off or no rule loaded.
    /// Call after signals are blocked (the worker thread inherits the mask).
    static func start(_ settings: AgentConfiguration.Yara, wiring: Wiring) -> ScanStage? {
        let log = wiring.log
        let (compiled, fileErrors) = compile(settings)
        for error in fileErrors { log.error("\(error) (file skipped)") }
        guard let rules = compiled else {
            if settings.enabled { log.warning(noRules(settings)) } else { log.info("yara: scanning disabled") }
            return nil
        }
        return start(rules, settings: settings, wiring: wiring)
    }

    /// Starts the worker with rules already compiled (a reload that turns scanning on).
    static func start(_ rules: YaraRules, settings: AgentConfiguration.Yara, wiring: Wiring) -> ScanStage? {
        let log = wiring.log
        let scanner = FileScanner(rules: rules, maximumSize: Int64(settings.maximumFileSize))
        guard let queue = ScanQueue<Context>.start(scanner: scanner, capacity: settings.queueSize) else {
            log.error("yara: cannot start the scanning thread: \(String(cString: strerror(errno)))")
            return nil
        }
        log.info("yara: \(rules.ruleCount) rules from \(rules.files.count) files")
        return ScanStage(queue: queue, rules: rules, wiring: wiring, scanUploads: settings.scanUploadedFiles)
    }

    /// The rule files `settings` names, compiled (nil when scanning is off or nothing
    /// compiled), and the files that did not compile.
    static func compile(_ settings: AgentConfiguration.Yara) -> (rules: YaraRules?, fileErrors: [String]) {
        guard settings.enabled else { return (nil, []) }
        let (rules, errors) = YaraRules.compile(globs: settings.paths)
        return (rules, errors.map { "yara: \($0)" })
    }

    static func noRules(_ settings: AgentConfiguration.Yara) -> String {
        "yara: no rules loaded from \(settings.paths.joined(separator: ", ")); scanning off"
    }

    private init(queue: ScanQueue<Context>, rules: YaraRules, wiring: Wiring, scanUploads: Bool) {
        self.queue = queue
        self.wiring = wiring
        self.scanUploads = scanUploads
        (ruleCount, ruleFiles) = (rules.ruleCount, rules.files)
    }

    /// A reload: later targets are scanned with `rules` (the queue size needs a restart).
    func replace(rules: YaraRules, settings: AgentConfiguration.Yara) {
        queue.replace(scanner: FileScanner(rules: rules, maximumSize: Int64(settings.maximumFileSize)))
        scanUploads = settings.scanUploadedFiles
        (ruleCount, ruleFiles) = (rules.ruleCount, rules.files)
        alerted.removeAll()
    }

    /// Called after the process table took the event, so an execve's process is in it.
    func handle(_ call: SyscallEvent) {
        // Socket calls (a TFTP block each) are the bulk of the stream: they stop here.
        switch call.kind {
        case .execve: executed(call.event, syscall: call.syscall, pid: call.pid, succeeded: call.succeeded, time: call.time)
        case .listen where call.succeeded: listened(call.syscall, pid: call.pid, time: call.time)
        default: return
        }
    }

    /// The file execve was asked to run (PATH item 0): a failed attempt (a PE on Linux fails
    /// with ENOEXEC) is scanned too, as long as the file existed (the PATH record has an inode).
    private func executed(_ event: AuditEvent, syscall: AuditRecord, pid: Int32, succeeded: Bool, time: Int64) {
        guard let path = event.records.first(where: { $0.type == .path && $0.integer("item") == 0 }),
            let name = path.string("name"), !name.isEmpty,
            let inode = path.integer("inode").map({ UInt64(bitPattern: $0) })
        else { return }
        // The record of this very execve (not an earlier image of the pid) stated its file.
        let executed = succeeded ? wiring.processes.record(pid: pid) : nil
        let statedFile = executed?.startTime == time ? executed?.executableFile : nil
        if isKnownClean(name, inode: inode, device: path.deviceNumber("dev"), statedFile: statedFile) { return }
        let cwd = event.first(.cwd)?.string("cwd")
        let resolved = Self.normalized(name.hasPrefix("/") || cwd == nil ? name : cwd! + "/" + name)
        let process = succeeded ? executed : wiring.processes.describe(pid: pid, syscall: syscall, time: time)
        let trigger: String
        if succeeded {
            trigger = "executed \(resolved)"
        } else {
            let exit = syscall.integer("exit").map { Int32(truncatingIfNeeded: -$0) } ?? 0
            trigger = "tried to execute \(resolved) (\(exit > 0 ? String(cString: strerror(exit)) : "failed"))"
        }
        batch.append(
            (
                ScanTarget(path: resolved, expectedInode: inode, locations: locations(of: resolved, pid: pid, orItsExecutable: succeeded, hostFirst: true)),
                Context(process: process, trigger: trigger, time: time)
            ))
    }

    /// Whether the host's file at absolute `name` is the one audit saw (inode and device) and
    /// was scanned clean as it is now (size, mtime): most execs on a host run the same few
    /// binaries, and a stat here costs less than waking the worker for its cache. The process
    /// table stated the executable moments ago (`statedFile`): a binary, not a script, is that file.
    private func isKnownClean(_ name: String, inode: UInt64, device: UInt64?, statedFile: FileVersion?) -> Bool {
        guard name.hasPrefix("/"), let device else { return false }
        if let statedFile, statedFile.inode == inode, statedFile.device == device { return queue.isKnownClean(statedFile) }
        var info = stat()
        guard stat(hostFilesRoot + name, &info) == 0, UInt64(info.st_ino) == inode, UInt64(info.st_dev) == device,
            info.st_mode & S_IFMT == S_IFREG
        else { return false }
        return queue.isKnownClean(FileVersion(info))
    }

    /// Where `path`, as process `pid` named it, can be opened (see `ScanTarget.locations`).
    /// `hostFirst` when the target carries audit's inode, which rejects another file at the
    /// host's path: a walk through /proc/<pid>/root costs 3 µs of CPU against 1 µs (measured),
    /// paid on every execve, so only processes outside the host's mount namespace pay it.
    private func locations(of path: String, pid: Int32, orItsExecutable: Bool, hostFirst: Bool = false) -> [String] {
        guard path.hasPrefix("/") else { return [path] }
        let own = "/proc/\(pid)/root" + path, host = hostFilesRoot + path
        return (hostFirst ? [host, own] : [own, host]) + (orItsExecutable ? ["/proc/\(pid)/exe"] : [])
    }

    /// `/tmp/./x` as `/tmp/x`: the path an analyst searches for. `..` stays (symlinks).
    static func normalized(_ path: String) -> String {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true).filter { $0 != "." }
        return (path.hasPrefix("/") ? "/" : "") + parts.joined(separator: "/")
    }

    /// A process started listening: its executable, when the socket is TCP. A socket gone
    /// before we could look is scanned anyway (cached scans cost little; a missed server more).
    private func listened(_ syscall: AuditRecord, pid: Int32, time: Int64) {
        guard let procfs = wiring.processes.procfs, let fd = syscall.hexInteger("a0").map({ Int32(truncatingIfNeeded: $0) }) else { return }
        let trigger: String
        if procfs.socketInode(pid: pid, fd: fd) != nil {
            // Found the way flows find theirs (a copy of the descriptor, else sock_diag).
            guard
                let (_, socket) = wiring.sockets?.resolve(
                    pid: pid, fd: fd, namespace: nil, family: UInt8(AF_INET6), remotePort: nil,
                    transports: [.tcp], now: time)
                    ?? wiring.sockets?.resolve(pid: pid, fd: fd, namespace: nil, family: UInt8(AF_INET), remotePort: nil, transports: [.tcp], now: time),
                socket.transport == .tcp
            else { return }  // a Unix or other non-TCP socket
            trigger = "listening on TCP port \(socket.localPort)"
        } else {
            trigger = "listened on descriptor \(fd), closed before it could be read"
        }
        let process = wiring.processes.describe(pid: pid, syscall: syscall, time: time)
        batch.append(
            (
                ScanTarget(path: process.executable, locations: locations(of: process.executable, pid: pid, orItsExecutable: true)),
                Context(process: process, trigger: trigger, time: time)
            ))
    }

    /// With `scan_uploaded_files`: the local files an upload's command line names.
    func flowStarted(_ flow: Flow) {
        guard scanUploads, flow.transferDirection != .download else { return }
        let program = flow.transferProcess ?? flow.process
        for argument in program.arguments.dropFirst().prefix(32) where !argument.hasPrefix("-") && !argument.isEmpty {
            let path = Self.normalized(argument.hasPrefix("/") ? argument : (program.workingDirectory ?? "/") + "/" + argument)
            let places = locations(of: path, pid: program.pid, orItsExecutable: false)
            guard
                places.contains(where: {
                    var info = stat(); return stat($0, &info) == 0 && info.st_mode & S_IFMT == S_IFREG
                })
            else { continue }
            let trigger = "named by \(program.programName)'s command line, \(flow.transferDirection.rawValue) to \(flow.remoteAddress):\(flow.remotePort)"
            batch.append((ScanTarget(path: path, locations: places), Context(process: flow.process, trigger: trigger, time: flow.start)))
        }
    }

    /// Hands the targets gathered since the last call to the worker (one wake-up per loop
    /// turn, not per execve); when `resultsReady` (its descriptor polled readable), matches
    /// finished by the worker become alerts and failures are logged (the first 50).
    func collect(resultsReady: Bool) {
        if !batch.isEmpty {
            queue.submit(batch)
            batch.removeAll(keepingCapacity: true)
            reportDrops()
        }
        guard resultsReady else { return }
        for (result, context) in queue.takeResults() {
            if case .failed(let reason) = result.outcome {
                loggedFailures += 1
                if loggedFailures <= 50 { log.warning("yara: cannot scan \(result.file?.path ?? "?"): \(reason)") }
                continue
            }
            guard let file = result.file else { continue }
            for match in result.matches {
                if let process = context.process {
                    let key = AlertKey(pid: process.pid, processStart: process.startTime, file: file.identity, rule: match.rule)
                    if alerted.count >= Self.alertedLimit { alerted.removeAll(keepingCapacity: true) }
                    guard alerted.insert(key).inserted else { continue }
                }
                let interactivity = context.process.map(wiring.processes.completeDetailsAndAssessInteractivity)
                wiring.detector.yaraMatched(
                    YaraFinding(match: match, file: file, trigger: context.trigger), process: context.process, interactivity: interactivity,
                    time: context.time)
            }
        }
    }

    /// Targets dropped on a full queue: a health alert at most once a minute.
    private func reportDrops() {
        let dropped = queue.counters.dropped
        let now = monotonicMilliseconds()
        if dropped > droppedReported, now >= nextDropReport {
            let reason = "yara scan queue full (\(queue.capacity)): \(dropped - droppedReported) files not scanned"
            log.warning(reason)
            wiring.health.report([reason], time: realtimeMilliseconds())
            droppedReported = dropped
            nextDropReport = now + 60_000
        }
    }

    /// Ends the worker; what it finished by then becomes alerts.
    func stop() {
        queue.stop()
        collect(resultsReady: true)
    }

    var summary: String {
        let c = queue.counters
        let s = c.scanner
        return "yara: \(c.queued) queued, \(s.scans) scanned (\(s.bytesScanned) bytes), \(s.cacheHits) cache hits, \(s.filesMatched) files matched, "
            + "\(s.tooLarge) too large, \(s.gone) gone, \(s.notRegular) not regular, \(s.failed) failed, \(c.dropped) dropped (queue full)"
    }
}
