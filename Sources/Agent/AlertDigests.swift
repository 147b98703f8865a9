import Detection
import Flows
import HostState
import Runtime

#if canImport(Glibc)
    import Glibc
#endif

/// Alerts wait here, in the order they were raised, until the binaries of their process, its
/// parent and the program that transferred are hashed (`ExecutableHashes`): a binary hashed
/// before lets its alerts through at once; a new one holds them for as long as the thread
/// takes, at most `longestWait`, after which they go without the hashes still missing.
final class AlertDigests: LoopSource, AlertSink {
    private struct Waiting {
        let alert: Alert
        let versions: [FileVersion]
        let deadline: Int64
    }

    static let longestWait: Int64 = 5000
    private let hashes: ExecutableHashes
    private let next: AlertSink
    private var waiting: [Waiting] = []
    /// Alerts that went out with a hash missing because the wait ran out.
    private(set) var timedOut = 0

    init(hashes: ExecutableHashes, next: AlertSink) {
        self.hashes = hashes
        self.next = next
    }

    func consume(_ alert: Alert) {
        let processes = Self.processes(of: alert)
        let versions = processes.compactMap(hashes.request)
        hashes.submit()
        if versions.isEmpty && waiting.isEmpty {
            next.consume(alert)
            return
        }
        waiting.append(Waiting(alert: alert, versions: versions, deadline: monotonicMilliseconds() + Self.longestWait))
    }

    /// Starts hashing a flow's binaries while its processes run, so that its alerts, raised
    /// later, find them (a container's binary has no path on the host to fall back on).
    func prefetch(_ flow: Flow) {
        for process in Self.processes(flow.process, flow.transferProcess) { _ = hashes.request(process) }
        hashes.submit()
    }

    func descriptors(into fds: inout [pollfd]) {
        fds.append(pollfd(fd: hashes.descriptor, events: Int16(POLLIN), revents: 0))
    }
    /// The hashing thread's pipe lives as long as the agent.
    var descriptorChanges: Int { 0 }

    func service(_ polled: ArraySlice<pollfd>, time: LoopTime) -> LoopRequest {
        if polled.anyReady { hashes.collect() }
        release(now: time.monotonic)
        return .none
    }

    /// The alerts at the front whose hashes are in or whose wait ran out.
    private func release(now: Int64) {
        var released = 0
        for entry in waiting {
            let settled = entry.versions.allSatisfy(hashes.isSettled)
            guard settled || now >= entry.deadline else { break }
            if !settled { timedOut += 1 }
            finish(entry.alert)
            released += 1
        }
        waiting.removeFirst(released)
    }

    /// The agent stops: the thread hashes what it was given, and every alert goes out.
    func stop() {
        hashes.stop()
        for entry in waiting { finish(entry.alert) }
        waiting.removeAll()
    }

    private func finish(_ alert: Alert) {
        for process in Self.processes(of: alert) { hashes.complete(process) }
        next.consume(alert)
    }

    /// The processes whose binaries an alert names.
    private static func processes(of alert: Alert) -> [ProcessRecord] {
        processes(alert.process, alert.flow?.transferProcess)
    }

    /// A process, its parent and the program that transferred, each once.
    private static func processes(_ process: ProcessRecord?, _ program: ProcessRecord?) -> [ProcessRecord] {
        var result: [ProcessRecord] = []
        for candidate in [process, process?.parent, program] {
            if let candidate, !result.contains(where: { $0 === candidate }) { result.append(candidate) }
        }
        return result
    }

    var summary: String {
        let c = hashes.counters
        return "hashes: \(c.hashed) binaries hashed (\(c.bytesHashed) bytes), \(c.cacheHits) cache hits, \(c.unavailable) unavailable, "
            + "\(c.tooLarge) too large, \(c.dropped) dropped (queue full), \(timedOut) alerts sent before their hashes"
    }
}
