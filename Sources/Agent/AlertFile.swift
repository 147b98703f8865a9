import AgentConfig

#if canImport(Glibc)
import Glibc
#endif

/// `[output.file]`: alerts appended as JSON lines. Reopened when logrotate moves the file
/// away. A line that cannot be written waits in a bounded queue and is retried; what
/// overflows the queue is counted and reported, never dropped silently.
final class AlertFile {
    let path: String
    private var fd: Int32 = -1
    private var inode: UInt64 = 0
    private var waiting: [[UInt8]] = []
    private(set) var written = 0
    private(set) var dropped = 0
    /// The error that stopped the last write, while lines wait.
    private(set) var failure: String?

    static let waitingLimit = 10_000

    init(path: String) {
        self.path = path
        reopen()
    }

    deinit { if fd >= 0 { close(fd) } }

    func append(_ line: [UInt8]) {
        waiting.append(line)
        if waiting.count > Self.waitingLimit {
            waiting.removeFirst()
            dropped += 1
        }
        drain()
    }

    var waitingCount: Int { waiting.count }

    /// Writes what waits; called on every append and every tick.
    func drain() {
        guard !waiting.isEmpty else { return }
        if fd < 0 { reopen() }
        guard fd >= 0 else { return }
        while let line = waiting.first {
            guard line.withUnsafeBytes({ writeAll(fd, $0) }) else {
                failure = "\(path): \(String(cString: strerror(errno)))"
                close(fd)
                fd = -1
                return
            }
            waiting.removeFirst()
            written += 1
        }
        failure = nil
    }

    /// logrotate renamed or removed the file: the next line starts a new one.
    func reopenIfMoved() {
        var named = stat()
        if stat(path, &named) != 0 || UInt64(named.st_ino) != inode { reopen() }
    }

    private func reopen() {
        if fd >= 0 { close(fd) }
        let directory = path.utf8.lastIndex(of: UInt8(ascii: "/")).map { String(path[..<$0]) } ?? ""
        if !directory.isEmpty, let problem = createDirectories(directory) {
            failure = problem
            fd = -1
            return
        }
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        guard fd >= 0 else {
            failure = "\(path): \(String(cString: strerror(errno)))"
            return
        }
        var info = stat()
        fstat(fd, &info)
        inode = UInt64(info.st_ino)
    }
}
