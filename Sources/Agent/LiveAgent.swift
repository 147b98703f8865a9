import AgentConfig
import AuditIngest
import CLinux
import Detection
import Flows
import HostState
import KernelAudit
import Privileges
import Runtime

#if canImport(Glibc)
import Glibc
#endif

/// `xferwatchd run`: reads the live audit stream until SIGINT or SIGTERM.
public final class LiveAgent {
    /// In effect: a reload replaces what it can apply live and keeps the rest.
    var configuration: AgentConfiguration
    let configurationPath: String
    let log: Logger
    private let printer: EventPrinter
    var pipeline: Pipeline!
    var session: AuditSession?
    /// The source in use, `auto` resolved.
    var sourceMode: AuditSourceMode
    /// When someone last removed rules; the check waits for that to settle so one `auditctl -D`
    /// (a removal per rule) is reinstalled and reported once.
    private var lastRuleRemoval: Int64?
    private(set) var firstStatus: AuditStatus?
    private(set) var lastStatus: AuditStatus?
    let processes: ProcessTable
    private var sockets: HostSockets?
    var tracker: FlowTracker!
    var detector: Detector!
    var alerts: AlertOutput!
    var scans: ScanStage?
    var flowConsumers: FlowConsumers!
    /// Which syscalls are which, shared by the flow tracker and the scanner.
    let catalog = SyscallCatalog.fromLibaudit()
    private var nextPrune: Int64 = 0
    private(set) var reportedAuditPidLoss = false
    private var control: ControlServer?
    /// How the last `hostPollDescriptors()` were laid out, in order.
    private var pollLayout = (destroyed: 0, scans: 0, control: 0)
    let started = (wall: realtimeMilliseconds(), monotonic: monotonicMilliseconds())
    var throughput = ThroughputHistory()
    /// Trouble the agent reported (its agent.health reasons), kept 5 minutes for the verdict.
    var recentTrouble: [(time: Int64, reason: String)] = []
    let recentFlows = RecentLines(capacity: 200, byteLimit: 2 << 20)

    public init(configuration: AgentConfiguration, configurationPath: String, output: OutputOptions, log: Logger) {
        self.configuration = configuration
        self.configurationPath = configurationPath
        self.sourceMode = configuration.audit.source
        self.log = log
        self.printer = EventPrinter(options: output)
        self.processes = ProcessTable(procfs: ProcFS(), capacity: configuration.host.maximumProcesses)
        processes.eagerPrograms = TransferTools.clientPrograms
        self.pipeline = Pipeline(settings: configuration.assemblerSettings, log: log) { [unowned self] event in
            self.watchConfigChanges(event)
            self.printer.consume(event)
            self.tracker.handle(event, now: realtimeMilliseconds())
            self.scans?.handle(event)
        }
    }

    /// Rules, exclusions and the alert file. The first-seen state lives in state_dir; when it
    /// cannot, the rule still works from memory and says so.
    private func startDetection() -> Bool {
        let now = realtimeMilliseconds()
        let learning = configuration.detection.firstSeenLearningMinutes
        let firstSeen: FirstSeenStore
        do {
            firstSeen = try FirstSeenStore(directory: configuration.agent.stateDirectory, learningMinutes: learning, now: now)
        } catch {
            log.error("first-seen state: \(error); learning in memory only, from now")
            firstSeen = FirstSeenStore(learningMinutes: learning)
        }
        do {
            let stage = try DetectionStage(configuration: configuration, processes: processes, firstSeen: firstSeen,
                                           outputs: configuration.output, printer: printer, log: log,
                                           idPrefix: String(UInt64(now), radix: 36))
            (detector, alerts) = (stage.detector, stage.alerts)
            detector.healthObserver = { [unowned self] reasons, time in
                recentTrouble += reasons.map { (monotonicMilliseconds(), $0) }
            }
        } catch {
            log.error("detection: \(error)")
            return false
        }
        log.info("detection: \(RuleID.allCases.count - configuration.detection.disabledRules.count) rules, \(configuration.exclusions.count) exclusions, "
            + "\(firstSeen.count) executables known to connect out")
        return true
    }

    /// The flow tracker and its consumers, on the sock_diag sockets opened before the drop
    /// (other namespaces are opened on demand), and every process already running.
    private func startHostState() {
        flowConsumers = FlowConsumers(detector: detector, printer: printer, scans: scans, recent: recentFlows)
        tracker = FlowTracker(catalog: catalog, processes: processes, sockets: sockets, settings: configuration.flowSettings,
                              debug: { [log] in log.debug($0()) }, observer: flowConsumers)
        processes.seedFromProc()
        log.info("host: \(processes.count) running processes read from /proc")
    }

    /// Descriptors of the host-state sources (sock_diag destroy notifications, finished
    /// scans) and of agentctl's connections, for poll().
    private func hostPollDescriptors() -> [pollfd] {
        let destroyed = sockets?.destroyDescriptors ?? []
        let scanned = scans.map { [$0.queue.descriptor] } ?? []
        let control = control?.pollDescriptors ?? []
        pollLayout = (destroyed.count, scanned.count, control.count)
        return (destroyed + scanned).map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) } + control
    }

    /// Destroy notifications, finished scans and agentctl when their descriptors are ready;
    /// flow timeouts, output health and pruning when due. `polled` is what poll() made of
    /// `hostPollDescriptors()`.
    private func serviceHostState(polled: ArraySlice<pollfd>) {
        let now = realtimeMilliseconds()
        let ready = { (range: Range<Int>) in polled.dropFirst(range.lowerBound).prefix(range.count).contains { $0.revents != 0 } }
        let layout = pollLayout
        if ready(0..<layout.destroyed) {
            sockets?.drainDestroyed { namespace, socket in
                log.debug("socket destroyed in namespace \(namespace): \(socket.transport.rawValue) \(socket.localAddress):\(socket.localPort) -> \(socket.remoteAddress):\(socket.remotePort) cookie \(socket.cookie.map(String.init) ?? "-") out \(socket.bytesOut.map(String.init) ?? "-") in \(socket.bytesIn.map(String.init) ?? "-")")
                tracker.destroyed(namespace: namespace, socket: socket, now: now)
            }
        }
        tracker.tick(now: now)
        scans?.collect(detector: detector, log: log, resultsReady: ready(layout.destroyed..<layout.destroyed + layout.scans))
        let monotonic = monotonicMilliseconds()
        if let trouble = alerts.service(log: log, now: monotonic) { detector.health(trouble, time: now) }
        throughput.record(now: monotonic, records: pipeline.assembler.counters.records, events: pipeline.assembler.counters.events)
        if let oldest = recentTrouble.first, monotonic - oldest.time > ThroughputHistory.longWindowMilliseconds {
            recentTrouble.removeAll { monotonic - $0.time > ThroughputHistory.longWindowMilliseconds }
        }
        control?.service(polled: polled.suffix(layout.control), handler: self, now: monotonic)
        if now >= nextPrune {
            nextPrune = now + Int64(configuration.host.pruneIntervalMilliseconds)
            processes.pruneExited(now: now)
            let inUse = Set(tracker.openFlows.compactMap(\.namespace) + tracker.openFlows.compactMap(\.process.networkNamespace))
            sockets?.closeIdleNamespaces(now: now, idleMilliseconds: 60_000, inUse: inUse)
        }
        printer.flush()
    }

    /// Acts on pending signals; true when one asks the agent to stop.
    private func handleSignals(_ signals: SignalWatcher) -> Bool {
        let received = signals.take()
        if received.hangup {
            log.info("SIGHUP: reloading \(configurationPath) and reopening the alert file")
            _ = reload()
            alerts.reopen()
        }
        if let stop = received.stop { log.info("signal \(stop): stopping") }
        return received.stop != nil
    }

    /// The source `auto` stands for: multicast beside a live audit daemon, else unicast.
    static func resolve(_ mode: AuditSourceMode, currentPid: UInt32) -> AuditSourceMode {
        guard mode == .auto else { return mode }
        return currentPid != 0 && kill(pid_t(currentPid), 0) == 0 ? .multicast : .unicast
    }

    public func run() -> Int32 {
        guard let signals = SignalWatcher() else {
            log.error("cannot watch signals: \(String(cString: strerror(errno)))")
            return 1
        }
        // What needs root comes first; then the drop, before any thread starts.
        var account: PrivilegeDrop.Account?
        do {
            if getuid() == 0 && !configuration.agent.keepsRoot { account = try PrivilegeDrop.account(named: configuration.agent.user) }
        } catch {
            log.error("\(error): the package creates it; or set [agent] user = \"root\" to stay root")
            return 1
        }
        do { try prepareDirectories(for: account) } catch {
            log.error("\(error)")
            return 1
        }
        control = ControlServer.open(path: configuration.agent.controlSocket, group: configuration.agent.controlGroup, log: log)
        defer { control?.close() }
        if configuration.audit.source.isKernel {
            guard openKernelSession() else { return 1 }
        }
        defer { closeKernelSession() }
        do {
            sockets = try HostSockets(procfs: processes.procfs!, log: { [log] in log.warning($0) })
        } catch {
            log.error("sock_diag is unavailable (\(error)): flows will be found through /proc/net, without byte counts")
        }
        guard dropPrivileges(to: account) else { return 1 }

        guard startDetection() else { return 1 }
        scans = ScanStage.start(configuration.yara, catalog: catalog, processes: processes, log: log)
        startHostState()
        alerts.listener = { [unowned self] line in control?.published(alertLine: line) }
        ServiceManager.notify("READY=1")
        let result: Int32
        switch configuration.audit.source {
        case .audisp:
            log.info("reading audisp records on standard input")
            result = runLines(fd: 0, name: "stdin", follow: nil, signals: signals)
        case .file:
            result = runFollowing(path: configuration.audit.logFile, signals: signals)
        case .auto, .unicast, .multicast:
            result = runKernel(signals: signals)
        }
        ServiceManager.notify("STOPPING=1")
        pipeline.flush()
        tracker.finish(now: realtimeMilliseconds())
        printer.flush()
        log.info("stopped: \(pipeline.summary)")
        log.info("stopped: \(processes.summary); \(tracker.summary)")
        if let scans {
            scans.queue.stop()
            scans.collect(detector: detector, log: log, resultsReady: true)
            log.info("stopped: \(scans.summary)")
        }
        alerts.stop()
        log.info("stopped: \(detector.summary); \(alerts.summary)")
        if let c = sockets?.counters {
            log.info("sockets: \(c.resolved) resolved (\(c.procNetFallbacks) through /proc/net), \(c.fdGone) gone before lookup, "
                + "\(c.notFound) not found, \(c.sockDiagErrors) sock_diag errors, \(c.destroyOverruns) destroy overruns, "
                + "\(c.socketsScanned) sockets scanned, \(c.namespacesOpened) namespaces watched")
        }
        return result
    }

    // MARK: privileges

    /// The directories the agent writes, made now (as root); those it makes are its user's.
    private func prepareDirectories(for account: PrivilegeDrop.Account?) throws(PrivilegeError) {
        var directories = [(configuration.agent.stateDirectory, mode_t(0o750))]
        if configuration.output.file.enabled { directories.append((parentDirectory(configuration.output.file.path), 0o750)) }
        // Members of the control group must reach the socket through it.
        directories.append((parentDirectory(configuration.agent.controlSocket), 0o755))
        for (directory, mode) in directories where access(directory, F_OK) != 0 {
            if let problem = createDirectories(directory, mode: mode) { throw PrivilegeError("cannot create \(problem)") }
            if let account { try PrivilegeDrop.give(directory: directory, to: account, mode: mode) }
        }
    }

    private func dropPrivileges(to account: PrivilegeDrop.Account?) -> Bool {
        if configuration.agent.keepsRoot && getuid() == 0 {
            log.warning("staying root with every capability ([agent] user = \"root\")")
            return true
        }
        let missing: [KeptCapability]
        do { missing = try PrivilegeDrop.drop(to: account) } catch {
            log.error("cannot drop privileges: \(error)")
            return false
        }
        let now = ProcessPrivileges.current()
        log.info("running as \(now.user) (uid \(now.uid)) with \(now.effective.isEmpty ? "no capabilities" : now.effective.joined(separator: ", "))")
        for capability in missing {
            switch capability {
            case .auditControl where sourceMode == .unicast:
                log.warning("without CAP_AUDIT_CONTROL the agent cannot check or restore the audit rules and status")
            case .auditRead where sourceMode == .multicast:
                log.warning("without CAP_AUDIT_READ the multicast audit stream delivers nothing")
            case .sysPtrace:
                log.warning("without CAP_SYS_PTRACE other users' executables and sockets cannot be read from /proc")
            case .dacReadSearch:
                log.warning("without CAP_DAC_READ_SEARCH other users' /proc/<pid>/fd and unreadable executables are out of reach")
            default:
                break
            }
        }
        return true
    }

    // MARK: kernel sources

    /// Installs the rules and opens the stream (unicast: as the audit daemon).
    private func openKernelSession() -> Bool {
        let mode: AuditSourceMode
        do {
            let current = try AuditControl().status()
            mode = Self.resolve(configuration.audit.source, currentPid: current.pid)
            sourceMode = mode
            let settings = AuditSession.Settings(backlogLimit: UInt32(configuration.audit.backlogLimit),
                                                 rateLimit: UInt32(configuration.audit.rateLimit),
                                                 receiveBufferBytes: configuration.audit.receiveBufferBytes)
            session = try AuditSession(mode: mode == .multicast ? .multicast : .unicast, settings: settings,
                                       specs: xferwatchRuleSpecs(key: configuration.audit.ruleKey, ownPid: getpid()),
                                       log: { [log] in log.warning($0) })
        } catch {
            log.error("cannot start the audit source: \(error)")
            return false
        }
        log.info("audit source \(mode.rawValue): \(session!.rules.count) rules with key \(session!.ruleKey) installed")
        return true
    }

    private func closeKernelSession() {
        guard let session else { return }
        session.close()
        let n = session.reader.counters
        log.info("netlink: \(n.messages) records, dropped \(n.notFromKernel) not sent by the kernel, \(n.malformed) malformed, \(n.truncated) truncated")
    }

    private func runKernel(signals: SignalWatcher) -> Int32 {
        guard let session else { return 1 }
        let mode = sourceMode
        var nextStatus = monotonicMilliseconds()
        var nextRuleCheck = nextStatus + 5000
        let batchWait = Int64(configuration.audit.batchWaitMilliseconds)
        var lastRead = Int64.min / 2
        while true {
            var fds = [pollfd(fd: session.reader.fd, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: signals.fd, events: Int16(POLLIN), revents: 0)] + hostPollDescriptors()
            let ready = poll(&fds, nfds_t(fds.count), 250)
            if ready < 0 && errno != EINTR {
                log.error("poll: \(String(cString: strerror(errno)))")
                return 1
            }
            let now = monotonicMilliseconds()
            var gather = false
            if fds[0].revents != 0 {
                let drained = session.reader.drain { type, body in
                    pipeline.ingest(netlinkType: type, body: body, wallTime: now)
                }
                // Records arriving back to back (the previous read was less than batch_wait_ms
                // ago): let them gather before the next read, one wake-up per batch instead of
                // one per event. A quiet host's first event is read at once.
                if drained > 0 {
                    gather = batchWait > 0 && now - lastRead < batchWait
                    lastRead = now
                }
            }
            if fds[1].revents != 0, handleSignals(signals) { return 0 }
            pipeline.tick(wallTime: now)
            serviceHostState(polled: fds[2...])
            if now >= nextStatus {
                nextStatus = now + Int64(configuration.audit.statusIntervalMilliseconds)
                checkStatus(session, mode: mode)
            }
            let removalSettled = lastRuleRemoval.map { now - $0 >= Self.ruleRemovalSettleMilliseconds } ?? false
            if removalSettled || now >= nextRuleCheck {
                nextRuleCheck = now + 5000
                lastRuleRemoval = nil
                do {
                    let reinstalled = try session.verifyRules()
                    if reinstalled > 0 {
                        log.warning("\(reinstalled) of our audit rules were removed by someone else; reinstalled them")
                        detector.health(["\(reinstalled) audit rules with key \(configuration.audit.ruleKey) were removed by someone else (reinstalled)"],
                                        time: realtimeMilliseconds())
                    }
                } catch {
                    log.error("cannot check the audit rules: \(error)")
                }
            }
            if gather { usleep(UInt32(batchWait * 1000)) }
        }
    }

    /// Watches the kernel's counters: lost records, backlog, enabled flag, who holds the pid.
    private func checkStatus(_ session: AuditSession, mode: AuditSourceMode) {
        let status: AuditStatus
        do { status = try session.control.status() } catch {
            log.warning("cannot read the audit status: \(error)")
            return
        }
        if firstStatus == nil { firstStatus = status }
        if let last = lastStatus, status.lost != last.lost {
            log.warning("the kernel lost \(status.lost &- last.lost) audit records (lost counter \(status.lost), backlog \(status.backlog) of \(status.backlogLimit))")
            detector.health(["the kernel lost \(status.lost &- last.lost) audit records", "backlog \(status.backlog) of \(status.backlogLimit)"],
                            time: realtimeMilliseconds())
        }
        if status.backlogLimit > 0 && status.backlog * 5 > status.backlogLimit * 4 {
            log.warning("audit backlog at \(status.backlog) of \(status.backlogLimit)")
        }
        if status.enabled == 0 {
            log.warning("auditing was disabled by someone else; enabling it again")
            do { try session.control.setEnabled(1) } catch { log.error("cannot enable auditing: \(error)") }
        }
        if mode == .unicast && status.pid != UInt32(getpid()) {
            log.error("the audit pid is now \(status.pid): another audit daemon took the stream")
            if !reportedAuditPidLoss {
                reportedAuditPidLoss = true
                detector.health(["audit pid \(status.pid) took the audit stream: no events reach xferwatch"], time: realtimeMilliseconds())
            }
        }
        lastStatus = status
    }

    /// How long rule removals must stop before the rules are checked.
    private static let ruleRemovalSettleMilliseconds: Int64 = 150

    /// A CONFIG_CHANGE that removes rules may have removed ours: check once removals settle.
    private func watchConfigChanges(_ event: AuditEvent) {
        for record in event.records where record.type == .configChange {
            if let op = record.rawValue("op"), op.elementsEqual("remove_rule".utf8) || op.elementsEqual("del_rule".utf8) {
                lastRuleRemoval = monotonicMilliseconds()
            }
        }
    }

    // MARK: line sources

    /// Reads lines from `fd` until end of input or a stop signal. `follow` re-opens a
    /// rotated file.
    private func runLines(fd: Int32, name: String, follow: FollowedFile?, signals: SignalWatcher) -> Int32 {
        var input = LineInput(fd: fd, name: name)
        var follow = follow
        while true {
            var fds = [pollfd(fd: signals.fd, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: follow == nil ? fd : -1, events: Int16(POLLIN), revents: 0)] + hostPollDescriptors()
            _ = poll(&fds, nfds_t(fds.count), 250)
            if fds[0].revents != 0, handleSignals(signals) { return 0 }
            let now = monotonicMilliseconds()
            reading: while true {
                switch input.readOnce(into: pipeline, wallTime: now) {
                case .data:
                    if follow == nil { break reading }
                case .wouldBlock:
                    break reading
                case .endOfInput:
                    guard var followed = follow else {
                        input.finish(into: pipeline)
                        return 0
                    }
                    if followed.reopenIfRotated(log: log) {
                        input = LineInput(fd: followed.fd, name: name)
                    }
                    follow = followed
                    break reading
                case .failed(let code):
                    log.error("\(name): read failed: \(String(cString: strerror(code)))")
                    return 1
                }
            }
            pipeline.tick(wallTime: now)
            serviceHostState(polled: fds[2...])
        }
    }

    private func runFollowing(path: String, signals: SignalWatcher) -> Int32 {
        guard let followed = FollowedFile(path: path, fromEnd: true) else {
            log.error("\(path): \(String(cString: strerror(errno)))")
            return 1
        }
        log.info("following \(path)")
        defer { close(followed.fd) }
        return runLines(fd: followed.fd, name: path, follow: followed, signals: signals)
    }
}

/// An audit log followed like `tail -F`: when the path names a new file (rotation) or the
/// file shrinks (truncation), reading starts again at the beginning of what is there now.
struct FollowedFile {
    let path: String
    private(set) var fd: Int32
    private var inode: UInt64

    init?(path: String, fromEnd: Bool) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        var info = stat()
        fstat(fd, &info)
        if fromEnd { lseek(fd, 0, SEEK_END) }
        self.path = path
        self.fd = fd
        self.inode = UInt64(info.st_ino)
    }

    /// At end of the current file: switches to the rotated-in file if there is one.
    mutating func reopenIfRotated(log: Logger) -> Bool {
        var named = stat()
        guard stat(path, &named) == 0 else { return false }
        if UInt64(named.st_ino) != inode {
            guard let next = FollowedFile(path: path, fromEnd: false) else { return false }
            close(fd)
            self = next
            log.info("\(path) was rotated; reading the new file")
            return true
        }
        if named.st_size < lseek(fd, 0, SEEK_CUR) {
            lseek(fd, 0, SEEK_SET)
            log.info("\(path) was truncated; reading from its start")
            return true
        }
        return false
    }
}

/// SIGINT/SIGTERM/SIGHUP through a signalfd, so the poll loop sees them like input.
final class SignalWatcher {
    let fd: Int32

    init?() {
        var set = sigset_t()
        sigemptyset(&set)
        for signal in [SIGINT, SIGTERM, SIGHUP] { sigaddset(&set, signal) }
        guard sigprocmask(SIG_BLOCK, &set, nil) == 0 else { return nil }
        fd = signalfd(-1, &set, Int32(SFD_CLOEXEC | SFD_NONBLOCK))
        guard fd >= 0 else { return nil }
    }

    deinit { close(fd) }

    /// Reads pending signals: the stop signal's number if one came, and whether SIGHUP did.
    func take() -> (stop: UInt32?, hangup: Bool) {
        var info = signalfd_siginfo()
        var received: (stop: UInt32?, hangup: Bool) = (nil, false)
        while read(fd, &info, MemoryLayout<signalfd_siginfo>.size) == MemoryLayout<signalfd_siginfo>.size {
            if info.ssi_signo == UInt32(SIGHUP) { received.hangup = true } else { received.stop = info.ssi_signo }
        }
        return received
    }
}
