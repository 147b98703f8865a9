import CLinux
import Runtime

#if canImport(Glibc)
    import Glibc
#endif

/// One turn's clocks: monotonic for intervals and timeouts, real time for flows and alerts.
struct LoopTime {
    let monotonic: Int64
    let realtime: Int64
}

/// What a source asks of the loop after its turn.
enum LoopRequest {
    case none
    /// Sleep this long before the next poll (records arriving back to back gather meanwhile).
    case gather(milliseconds: Int64)
    /// Stop with this exit status.
    case stop(Int32)
}

/// A part of the agent driven by descriptors: the audit input, the packet tap, signals,
/// sock_diag destroy notifications, finished scans and hashes, agentctl.
protocol LoopSource: AnyObject {
    /// Appends the descriptors to poll for this turn.
    func descriptors(into fds: inout [pollfd])
    /// How many descriptors this source has closed or given up so far. The loop keeps them in
    /// an epoll set between turns, and a new one may take a closed one's number: when this
    /// changes, the source's descriptors are registered again.
    var descriptorChanges: Int { get }
    /// Called every turn with what poll() made of this source's descriptors (same order),
    /// ready or not: a source that has nothing ready returns at once.
    func service(_ polled: ArraySlice<pollfd>, time: LoopTime) -> LoopRequest
}

/// The agent's single thread of work: wait on the sources' descriptors (at most a second), serve them in
/// order, then the periodic work (timeouts, outputs, health, pruning). The YARA worker, the
/// hashing thread and the syslog forwarder run on threads of their own; the first two reach
/// the loop through descriptors, the forwarder through its status.
final class EventLoop {
    /// The longest wait: periodic work (the kernel's counters, timeouts, retries) is due about
    /// once a second, so an idle agent wakes about once a second.
    static let idleWaitMilliseconds: Int32 = 1000

    private let sources: [LoopSource]
    private let periodic: [(LoopTime) -> Void]
    private let log: Logger

    init(sources: [LoopSource], periodic: [(LoopTime) -> Void], log: Logger) {
        self.sources = sources
        self.periodic = periodic
        self.log = log
    }

    var sourceCount: Int { sources.count }

    /// Runs until a source asks to stop; returns its exit status.
    func run() -> Int32 {
        guard let set = DescriptorSet(sourceCount: sources.count) else {
            log.error("epoll_create1: \(String(cString: strerror(errno)))")
            return 1
        }
        var fds: [pollfd] = []
        var counts = [Int](repeating: 0, count: sources.count)
        var changes = [Int](repeating: 0, count: sources.count)
        while true {
            fds.removeAll(keepingCapacity: true)
            for (index, source) in sources.enumerated() {
                let before = fds.count
                source.descriptors(into: &fds)
                counts[index] = fds.count - before
                changes[index] = source.descriptorChanges
            }
            set.update(fds, counts: counts, changes: changes)
            if set.wait(&fds, timeout: Self.idleWaitMilliseconds) < 0 && errno != EINTR {
                log.error("epoll_wait: \(String(cString: strerror(errno)))")
                return 1
            }
            let time = LoopTime(monotonic: monotonicMilliseconds(), realtime: realtimeMilliseconds())
            var offset = 0
            var gather: Int64 = 0
            for (index, source) in sources.enumerated() {
                switch source.service(fds[offset..<offset + counts[index]], time: time) {
                case .none: break
                case .gather(let milliseconds): gather = max(gather, milliseconds)
                case .stop(let status): return status
                }
                offset += counts[index]
            }
            for work in periodic { work(time) }
            if gather > 0 { usleep(UInt32(gather * 1000)) }
        }
    }
}

extension ArraySlice<pollfd> {
    var anyReady: Bool { contains { $0.revents != 0 } }
}

/// SIGINT/SIGTERM/SIGHUP through a signalfd, so the poll loop sees them like input.
final class SignalSource: LoopSource {
    let fd: Int32
    /// Called for SIGHUP: reload and reopen the alert file.
    var onHangup: () -> Void = {}
    private let log: Logger

    init?(log: Logger) {
        self.log = log
        var set = sigset_t()
        sigemptyset(&set)
        // Blocked for the signalfd, and not ignored: an ignored signal is dropped before it
        // could be read, and ignoring survives exec (a parent that ignored SIGTERM would make
        // the agent deaf to it).
        for stop in [SIGINT, SIGTERM, SIGHUP] {
            Glibc.signal(stop, SIG_DFL)
            sigaddset(&set, stop)
        }
        guard sigprocmask(SIG_BLOCK, &set, nil) == 0 else { return nil }
        fd = signalfd(-1, &set, Int32(SFD_CLOEXEC | SFD_NONBLOCK))
        guard fd >= 0 else { return nil }
    }

    deinit { close(fd) }

    func descriptors(into fds: inout [pollfd]) { fds.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0)) }
    /// Its one descriptor lives as long as the source.
    var descriptorChanges: Int { 0 }

    /// The sender's command name, if it is still there to ask.
    private static func programName(of pid: Int32) -> String {
        guard pid > 0, let comm = readTextFile("/proc/\(pid)/comm", limit: 64) else { return "gone" }
        return String(comm.prefix { $0 != "\n" })
    }

    func service(_ polled: ArraySlice<pollfd>, time: LoopTime) -> LoopRequest {
        guard polled.anyReady else { return .none }
        var info = signalfd_siginfo()
        var stop: signalfd_siginfo?
        var hangup = false
        while read(fd, &info, MemoryLayout<signalfd_siginfo>.size) == MemoryLayout<signalfd_siginfo>.size {
            if info.ssi_signo == UInt32(SIGHUP) { hangup = true } else { stop = info }
        }
        if hangup { onHangup() }
        guard let stop else { return .none }
        // Who stopped the agent, for whoever reads its log later (systemd is pid 1).
        log.warning(
            "signal \(stop.ssi_signo) from pid \(stop.ssi_pid) (\(Self.programName(of: Int32(bitPattern: stop.ssi_pid)))), uid \(stop.ssi_uid): stopping")
        return .stop(0)
    }
}
