import AgentConfig
import Runtime

#if canImport(Glibc)
    import Glibc
#endif

/// `[output.file]`: alerts appended as JSON lines (mode 0640 when created). Rotated by size
/// (path.1 is the newest of `generations` old files), reopened when logrotate moves the file
/// away and on SIGHUP. A line that cannot be written waits in a bounded queue and is retried;
/// what overflows the queue is counted and reported, never dropped silently.
public final class AlertFile {
    public let path: String
    private let maximumBytes: Int
    private let generations: Int
    private var fd: Int32 = -1
    private var inode: UInt64 = 0
    private var size = 0
    private var waiting: [[UInt8]] = []
    public private(set) var written = 0
    public private(set) var dropped = 0
    public private(set) var rotations = 0
    /// The error that stopped the last write, while lines wait.
    public private(set) var failure: String?

    public static let waitingLimit = 10_000

    public init(settings: AgentConfiguration.FileOutput) {
        path = settings.path
        maximumBytes = settings.maximumBytes
        generations = settings.generations
        reopen()
    }

    deinit { if fd >= 0 { close(fd) } }

    public func append(_ line: [UInt8]) {
        waiting.append(line)
        if waiting.count > Self.waitingLimit {
            waiting.removeFirst()
            dropped += 1
        }
        drain()
    }

    public var waitingCount: Int { waiting.count }

    /// Writes what waits; called on every append and every tick.
    public func drain() {
        guard !waiting.isEmpty else { return }
        if fd < 0 { reopen() }
        guard fd >= 0 else { return }
        while let line = waiting.first {
            if maximumBytes > 0 && size > 0 && size + line.count > maximumBytes {
                rotate()
                guard fd >= 0 else { return }
            }
            guard line.withUnsafeBytes({ writeAll(fd, $0) }) else {
                failure = "\(path): \(String(cString: strerror(errno)))"
                close(fd)
                fd = -1
                return
            }
            waiting.removeFirst()
            size += line.count
            written += 1
        }
        failure = nil
    }

    /// logrotate renamed or removed the file: the next line starts a new one.
    public func reopenIfMoved() {
        var named = stat()
        if stat(path, &named) != 0 || UInt64(named.st_ino) != inode { reopen() }
    }

    /// path -> path.1 -> ... -> path.N; the oldest falls off.
    private func rotate() {
        for generation in stride(from: generations - 1, through: 1, by: -1) {
            rename("\(path).\(generation)", "\(path).\(generation + 1)")
        }
        if rename(path, "\(path).1") != 0 {
            failure = "\(path): cannot rotate: \(String(cString: strerror(errno)))"
        } else {
            rotations += 1
        }
        reopen()
    }

    /// Opens the file at `path` again (SIGHUP, after rotation, after a failure).
    public func reopen() {
        if fd >= 0 { close(fd) }
        fd = -1
        let directory = parentDirectory(path)
        if !directory.isEmpty, let problem = createDirectories(directory) {
            failure = problem
            return
        }
        // A file we create gets 0640 whatever the umask; an existing one keeps its mode.
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0o640)
        if fd >= 0 {
            fchmod(fd, 0o640)
        } else if errno == EEXIST {
            fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
        }
        guard fd >= 0 else {
            failure = "\(path): \(String(cString: strerror(errno)))"
            return
        }
        var info = stat()
        fstat(fd, &info)
        inode = UInt64(info.st_ino)
        size = Int(info.st_size)
    }
}
