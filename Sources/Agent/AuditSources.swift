import AgentConfig
import KernelAudit
import Runtime

#if canImport(Glibc)
    import Glibc
#endif

/// Whether the audit stream is busy: `busyRecords` or more in the last `windowMilliseconds`
/// (the window just ended, or the current one so far). 100 records in 100 ms is about 150
/// execve/s.
struct BusyStream {
    static let busyRecords = 100
    static let windowMilliseconds: Int64 = 100

    private var window = (start: Int64.min / 2, records: 0)
    private(set) var isBusy = false

    mutating func note(records: Int, now: Int64) {
        let elapsed = now - window.start
        if elapsed >= Self.windowMilliseconds {
            isBusy = window.records >= Self.busyRecords && elapsed < 2 * Self.windowMilliseconds
            window = (now, 0)
        }
        window.records += records
        if window.records >= Self.busyRecords { isBusy = true }
    }
}

/// The kernel's audit stream (netlink, unicast or multicast) into the pipeline.
final class KernelAuditSource: LoopSource {
    private let audit: AuditWatch
    private let pipeline: Pipeline
    private let batchWait: Int64
    private var lastRead = Int64.min / 2
    private var stream = BusyStream()

    init(audit: AuditWatch, pipeline: Pipeline, batchWaitMilliseconds: Int) {
        self.audit = audit
        self.pipeline = pipeline
        self.batchWait = Int64(batchWaitMilliseconds)
    }

    func descriptors(into fds: inout [pollfd]) { fds.append(pollfd(fd: audit.session.stream.fd, events: Int16(POLLIN), revents: 0)) }
    /// Each hand-over or take-over closes the socket read until then.
    var descriptorChanges: Int { audit.session.stream.switches }

    func service(_ polled: ArraySlice<pollfd>, time: LoopTime) -> LoopRequest {
        var request = LoopRequest.none
        if polled.anyReady {
            let drained = audit.session.stream.drain { type, body in pipeline.ingest(netlinkType: type, body: body, arrivalTime: time.monotonic) }
            // On a busy stream, records arriving back to back (the previous read was less than
            // batch_wait_ms ago) gather before the next read: one wake-up per batch instead of
            // one per event, where wake-ups are what a storm costs. Below that each read happens
            // at once, so a short-lived transfer client's execve is read, with its /proc (stdin,
            // start time), while the client still runs.
            if drained > 0 {
                stream.note(records: drained, now: time.monotonic)
                if batchWait > 0 && stream.isBusy && time.monotonic - lastRead < batchWait { request = .gather(milliseconds: batchWait) }
                lastRead = time.monotonic
            }
        }
        // A daemon asking for the audit socket, or a free socket to take: the socket read
        // next turn may change.
        audit.serviceRequests(time: time) { type, body in pipeline.ingest(netlinkType: type, body: body, arrivalTime: time.monotonic) }
        pipeline.tick(arrivalTime: time.monotonic)
        return request
    }
}

/// Audit records as text lines: auditd's plugin interface on stdin (ends with it), or a log
/// file followed like `tail -F`.
final class LineSource: LoopSource {
    private var input: LineInput
    private var followed: FollowedFile?
    private let name: String
    private let pipeline: Pipeline
    private let log: Logger

    /// Standard input (audisp).
    init(stdinInto pipeline: Pipeline, log: Logger) {
        name = "stdin"
        input = LineInput(fd: 0, name: name)
        self.pipeline = pipeline
        self.log = log
    }

    /// A log file, from its end; nil when it cannot be opened.
    init?(following path: String, into pipeline: Pipeline, log: Logger) {
        guard let file = FollowedFile(path: path, fromEnd: true) else {
            log.error("\(path): \(String(cString: strerror(errno)))")
            return nil
        }
        log.info("following \(path)")
        name = path
        followed = file
        input = LineInput(fd: file.fd, name: path)
        self.pipeline = pipeline
        self.log = log
    }

    deinit { if let followed { close(followed.fd) } }

    /// A followed file is read every turn (a regular file always polls readable).
    func descriptors(into fds: inout [pollfd]) {
        fds.append(pollfd(fd: followed == nil ? input.fd : -1, events: Int16(POLLIN), revents: 0))
    }
    /// Standard input is polled for the whole run; a followed file, reopened when rotated, never.
    var descriptorChanges: Int { 0 }

    func service(_ polled: ArraySlice<pollfd>, time: LoopTime) -> LoopRequest {
        reading: while true {
            switch input.readOnce(into: pipeline, arrivalTime: time.monotonic) {
            case .data:
                if followed == nil { break reading }
            case .wouldBlock:
                break reading
            case .endOfInput:
                guard var file = followed else {
                    input.finish(into: pipeline)
                    return .stop(0)
                }
                if file.reopenIfRotated(log: log) { input = LineInput(fd: file.fd, name: name) }
                followed = file
                break reading
            case .failed(let code):
                log.error("\(name): read failed: \(String(cString: strerror(code)))")
                return .stop(1)
            }
        }
        pipeline.tick(arrivalTime: time.monotonic)
        return .none
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
