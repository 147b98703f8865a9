import Hashing
import Runtime

#if canImport(Glibc)
    import Glibc
#endif

/// The MD5, SHA-1 and SHA-256 of the binaries processes run, for alerts (ECS
/// `process.hash.*`): each file version (device, inode, size, mtime) is read once, on a thread
/// of its own, so the event loop only opens the file. The running image comes from
/// `/proc/<pid>/exe`, which reaches a deleted or memfd binary and any mount namespace; a process
/// gone since is hashed from its path only while that is still the file it executed.
public final class ExecutableHashes {
    public struct Counters: Sendable, Equatable {
        /// Files read and hashed, and the bytes read.
        public var hashed = 0
        public var bytesHashed: Int64 = 0
        /// Requests answered from what was hashed before.
        public var cacheHits = 0
        /// Processes whose binary could not be had (gone, replaced, unreadable).
        public var unavailable = 0
        /// Binaries over `maximumSize`, not read.
        public var tooLarge = 0
        /// Refused on a full queue.
        public var dropped = 0
    }

    /// Bigger binaries are not read: a hash is worth little next to an event loop that waits.
    public static let maximumSize: Int64 = 256 << 20
    private static let cacheLimit = 8192

    private struct Job: Sendable {
        let fd: Int32
        let version: FileVersion
    }

    private struct Done: Sendable {
        let version: FileVersion
        let digests: FileDigests?
    }

    private let procfs: ProcFS
    private let worker: BackgroundWorker<Job, Done>
    private var known: [FileVersion: FileDigests] = [:]
    private var inFlight: Set<FileVersion> = []
    private var batch: [Job] = []
    public private(set) var counters = Counters()

    /// Readable while hashes wait to be collected.
    public var descriptor: Int32 { worker.descriptor }

    /// Starts the hashing thread (after the agent blocked its signals); nil when it cannot.
    public static func start(procfs: ProcFS, queueSize: Int = 256) -> ExecutableHashes? {
        let worker = BackgroundWorker<Job, Done>.start(capacity: queueSize) { job in
            defer { close(job.fd) }
            return Done(version: job.version, digests: FileDigests.of(fd: job.fd))
        }
        return worker.map { ExecutableHashes(procfs: procfs, worker: $0) }
    }

    private init(procfs: ProcFS, worker: BackgroundWorker<Job, Done>) {
        self.procfs = procfs
        self.worker = worker
    }

    /// Gives `process` its digests when its binary was hashed before; else opens the binary and
    /// queues it (sent with `submit`). Returns the file version to wait for, nil when there is
    /// nothing to wait for (known now, or not to be had).
    public func request(_ process: ProcessRecord) -> FileVersion? {
        guard process.executableDigests == nil else { return nil }
        // The file audit saw executed, hashed before: no syscall at all.
        if let version = process.hashedFile ?? process.executableFile, let digests = known[version] {
            counters.cacheHits += 1
            process.hashedFile = version
            process.executableDigests = digests
            return nil
        }
        guard let (fd, version) = open(process) else {
            counters.unavailable += 1
            return nil
        }
        process.hashedFile = version
        if let digests = known[version] {
            close(fd)
            counters.cacheHits += 1
            process.executableDigests = digests
            return nil
        }
        guard version.size <= Self.maximumSize else {
            close(fd)
            counters.tooLarge += 1
            return nil
        }
        guard inFlight.insert(version).inserted else {
            close(fd)
            return version
        }
        batch.append(Job(fd: fd, version: version))
        return version
    }

    /// Hands what `request` opened to the thread: one wake-up for an alert's processes.
    public func submit() {
        guard !batch.isEmpty else { return }
        let accepted = worker.submit(batch)
        for job in batch.dropFirst(accepted) {
            close(job.fd)
            inFlight.remove(job.version)
            counters.dropped += 1
        }
        batch.removeAll(keepingCapacity: true)
    }

    /// Takes what the thread finished.
    public func collect() {
        for done in worker.takeResults() {
            inFlight.remove(done.version)
            guard let digests = done.digests else {
                counters.unavailable += 1
                continue
            }
            counters.hashed += 1
            counters.bytesHashed += done.version.size
            if known.count >= Self.cacheLimit { known.removeAll(keepingCapacity: true) }
            known[done.version] = digests
        }
    }

    /// Whether `version` is no longer being hashed (done or failed).
    public func isSettled(_ version: FileVersion) -> Bool { !inFlight.contains(version) }

    /// Sets `process`'s digests from what was hashed; false while they are not known.
    @discardableResult
    public func complete(_ process: ProcessRecord) -> Bool {
        if process.executableDigests != nil { return true }
        guard let version = process.hashedFile, let digests = known[version] else { return false }
        process.executableDigests = digests
        return true
    }

    /// Ends the thread once what is queued is hashed.
    public func stop() {
        submit()
        worker.stop(finishingQueued: true)
        collect()
    }

    /// The process's binary, open, and its version: the running image while this process
    /// (not a later one with its pid) runs, else the file at its path if audit saw that very file.
    private func open(_ process: ProcessRecord) -> (Int32, FileVersion)? {
        if !process.exited, let image = openRegular("\(procfs.root)/\(process.pid)/exe") {
            let sameFile = process.executableFile.map { $0.device == image.1.device && $0.inode == image.1.inode } ?? true
            // Without a start time or a bound on it the process was gone before /proc was read:
            // its pid may be another's.
            let sameProcess = procfs.stat(pid: process.pid).flatMap(process.isSameProcess) ?? false
            if sameFile && sameProcess { return image }
            close(image.0)
        }
        guard let executed = process.executableFile, process.executable.hasPrefix("/"),
            let file = openRegular(hostFilesRoot + process.executable)
        else { return nil }
        if file.1 == executed { return file }
        close(file.0)
        return nil
    }

    private func openRegular(_ path: String) -> (Int32, FileVersion)? {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return nil }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
            close(fd)
            return nil
        }
        return (fd, FileVersion(info))
    }
}
