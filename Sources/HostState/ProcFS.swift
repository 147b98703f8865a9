import Runtime

#if canImport(Glibc)
    import Glibc
#endif

/// What a process's standard input is, read from `/proc/<pid>/fd/0`.
public enum StdinKind: String, Sendable {
    case terminal, file, pipe, socket
    case null = "/dev/null"
    case closed, unknown
}

/// The fields of `/proc/<pid>/stat` the process model uses.
public struct ProcStat: Sendable, Equatable {
    public var ppid: Int32
    public var session: Int32
    public var ttyNumber: UInt32
    /// Clock ticks after boot at which the process started: with the pid, its identity.
    public var startTicks: UInt64
}

/// Reads `/proc` with one reusable buffer: small files, links and directory listings.
/// Every read can fail (the process exited, the file is unreadable): callers get nil.
public final class ProcFS {
    public let root: String
    private var buffer = [UInt8](repeating: 0, count: 65_536)
    private var path = [CChar](repeating: 0, count: 256)

    /// The agent's own /proc: its pids are the ones kill(2) reaches.
    private let isOwnProc: Bool

    public init(root: String = "/proc") {
        self.root = root
        isOwnProc = root == "/proc"
    }

    // MARK: paths without allocating

    /// Writes `<root>/<pid>/<suffix>` (or `<root>/<suffix>` for pid < 0) into `path`.
    private func withPath<T>(pid: Int32, _ suffix: StaticString, number: Int32 = -1, _ body: (UnsafePointer<CChar>) -> T) -> T {
        var n = 0
        func put(_ byte: UInt8) { if n < path.count - 1 { path[n] = CChar(bitPattern: byte); n += 1 } }
        func put(_ value: Int32) {
            var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
            var count = 0
            var v = UInt32(bitPattern: value)
            withUnsafeMutableBytes(of: &digits) { d in
                repeat { d[count] = UInt8(48 + v % 10); v /= 10; count += 1 } while v > 0
                while count > 0 { count -= 1; put(d[count]) }
            }
        }
        for byte in root.utf8 { put(byte) }
        put(UInt8(ascii: "/"))
        if pid >= 0 { put(pid); put(UInt8(ascii: "/")) }
        suffix.withUTF8Buffer { for byte in $0 { put(byte) } }
        if number >= 0 { put(number) }
        path[n] = 0
        return path.withUnsafeBufferPointer { body($0.baseAddress!) }
    }

    /// A whole file, or nil. The buffer grows for big files (/proc/net tables of busy hosts)
    /// and is reused: use the slice before the next read.
    public func read(pid: Int32, _ suffix: StaticString) -> ArraySlice<UInt8>? {
        let fd = withPath(pid: pid, suffix) { open($0, O_RDONLY | O_CLOEXEC) }
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        return readToEnd(fd: fd, into: &buffer).map { buffer[..<$0] }
    }

    /// A file the kernel writes in one go and that fits the buffer (`/proc/<pid>/stat`): one
    /// read, without the read that would only confirm the end.
    private func readRecord(pid: Int32, _ suffix: StaticString) -> ArraySlice<UInt8>? {
        let fd = withPath(pid: pid, suffix) { open($0, O_RDONLY | O_CLOEXEC) }
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var n: Int
        repeat {
            n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress!, $0.count) }
        } while n < 0 && errno == EINTR
        return n <= 0 ? nil : buffer[..<n]
    }

    /// The target of a symbolic link under `/proc/<pid>/`, e.g. `fd/3` or `ns/net`.
    public func readLink(pid: Int32, _ suffix: StaticString, number: Int32 = -1) -> ArraySlice<UInt8>? {
        let n = withPath(pid: pid, suffix, number: number) { p in
            buffer.withUnsafeMutableBytes { readlink(p, $0.baseAddress!.assumingMemoryBound(to: CChar.self), 4096) }
        }
        return n < 0 ? nil : buffer[..<n]
    }

    /// Whether process `pid` exists (a zombie too). On the agent's own /proc, `kill(pid, 0)`
    /// asks without a path walk: looking up a pid that is gone, as most execve'd processes
    /// are by the time their event is read, costs /proc a dentry allocated and freed.
    public func exists(pid: Int32) -> Bool {
        guard pid > 0 else { return false }
        if isOwnProc { return kill(pid, 0) == 0 || errno == EPERM }
        return withPath(pid: pid, "") { access($0, F_OK) == 0 }
    }

    // MARK: typed readers

    /// `/proc/<pid>/stat`. The command name may hold spaces and parentheses: fields start
    /// after the last `)`.
    public func stat(pid: Int32) -> ProcStat? {
        guard !isOwnProc || exists(pid: pid), let text = readRecord(pid: pid, "stat") else { return nil }
        return Self.parseStat(text)
    }

    static func parseStat(_ text: ArraySlice<UInt8>) -> ProcStat? {
        guard let close = text.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        // Field 3 (state) follows ") "; we need 4 ppid, 6 session, 7 tty_nr, 22 starttime.
        var values: [UInt64] = []
        values.reserveCapacity(20)
        var field = 3
        var i = text.index(after: close)
        while i < text.endIndex && field <= 22 {
            while i < text.endIndex && text[i] == UInt8(ascii: " ") { i += 1 }
            var value: UInt64 = 0
            var negative = false
            let start = i
            while i < text.endIndex && text[i] != UInt8(ascii: " ") && text[i] != UInt8(ascii: "\n") {
                let c = text[i]
                if c == UInt8(ascii: "-") && i == start {
                    negative = true
                } else if c >= 48 && c <= 57 {
                    value = value &* 10 &+ UInt64(c - 48)
                }
                i += 1
            }
            if i == start { break }
            values.append(negative ? 0 : value)
            field += 1
        }
        guard values.count >= 20 else { return nil }
        return ProcStat(
            ppid: Int32(truncatingIfNeeded: values[1]), session: Int32(truncatingIfNeeded: values[3]),
            ttyNumber: UInt32(truncatingIfNeeded: values[4]), startTicks: values[19])
    }

    /// The socket inode behind `/proc/<pid>/fd/<fd>`, nil when it is not a socket or is gone.
    public func socketInode(pid: Int32, fd: Int32) -> UInt64? {
        guard let link = readLink(pid: pid, "fd/", number: fd) else { return nil }
        return Self.bracketedNumber(link, prefix: "socket:[")
    }

    /// The process's cgroup path(s), as /proc/<pid>/cgroup lists them.
    public func cgroup(pid: Int32) -> String? {
        read(pid: pid, "cgroup").map { String(decoding: $0, as: UTF8.self) }
    }

    /// The network namespace inode of a process (`net:[4026531840]`).
    public func networkNamespace(pid: Int32) -> UInt64? {
        readLink(pid: pid, "ns/net").flatMap { Self.bracketedNumber($0, prefix: "net:[") }
    }

    public func stdin(pid: Int32) -> StdinKind {
        guard let link = readLink(pid: pid, "fd/0") else {
            return exists(pid: pid) ? .closed : .unknown
        }
        return Self.classifyStdin(link)
    }

    static func classifyStdin(_ link: ArraySlice<UInt8>) -> StdinKind {
        if link.starts(with: "pipe:".utf8) { return .pipe }
        if link.starts(with: "socket:".utf8) { return .socket }
        if link.elementsEqual("/dev/null".utf8) { return .null }
        if link.starts(with: "/dev/pts/".utf8) || link.starts(with: "/dev/tty".utf8) || link.elementsEqual("/dev/console".utf8) {
            return .terminal
        }
        return .file
    }

    static func bracketedNumber(_ text: ArraySlice<UInt8>, prefix: StaticString) -> UInt64? {
        let matches = prefix.withUTF8Buffer { text.starts(with: $0) }
        guard matches, text.last == UInt8(ascii: "]") else { return nil }
        return decimal(text.dropFirst(prefix.utf8CodeUnitCount).dropLast())
    }

    /// An unsigned decimal ending at the end, a NUL or a newline (proc files, d_name); nil when
    /// there are no digits or anything else.
    public static func decimal(_ text: some Collection<UInt8>) -> UInt64? {
        var value: UInt64 = 0
        var digits = 0
        for c in text {
            if c == 0 || c == 10 { break }
            guard c >= 48 && c <= 57 else { return nil }
            value = value &* 10 &+ UInt64(c - 48)
            digits += 1
        }
        return digits > 0 ? value : nil
    }

    /// The pids under `/proc`, in directory order.
    public func pids() -> [Int32] {
        numericEntries(of: root)
    }

    /// The open file descriptors of a process.
    public func fileDescriptors(pid: Int32) -> [Int32] {
        numericEntries(of: "\(root)/\(pid)/fd")
    }

    private func numericEntries(of directory: String) -> [Int32] {
        guard let dir = opendir(directory) else { return [] }
        defer { closedir(dir) }
        var result: [Int32] = []
        while let entry = readdir(dir) {
            let value = withUnsafeBytes(of: entry.pointee.d_name) { Self.decimal($0) }
            if let value, value <= UInt64(Int32.max) { result.append(Int32(value)) }
        }
        return result
    }

    /// The boot time in milliseconds since the epoch (`btime` in /proc/stat), to turn start
    /// ticks into wall time.
    public func bootTimeMilliseconds() -> Int64? {
        guard let text = read(pid: -1, "stat") else { return nil }
        var lineStart = text.startIndex
        while lineStart < text.endIndex {
            let lineEnd = text[lineStart...].firstIndex(of: UInt8(ascii: "\n")) ?? text.endIndex
            let line = text[lineStart..<lineEnd]
            if line.starts(with: "btime ".utf8) {
                var v: Int64 = 0
                for c in line.dropFirst(6) where c >= 48 && c <= 57 { v = v * 10 + Int64(c - 48) }
                return v * 1000
            }
            lineStart = lineEnd < text.endIndex ? text.index(after: lineEnd) : lineEnd
        }
        return nil
    }
}

extension ProcFS {
    /// Audit-style terminal name for a `tty_nr` from /proc (`pts3`, `tty1`, `ttyS0`, `console`), nil for none.
    public static func terminalName(ttyNumber: UInt32) -> String? {
        guard ttyNumber != 0 else { return nil }
        let major = (ttyNumber >> 8) & 0xfff
        let minor = (ttyNumber & 0xff) | ((ttyNumber >> 12) & 0xfff00)
        switch major {
        case 136...143: return "pts\((major - 136) * 256 + minor)"
        case 4: return minor < 64 ? "tty\(minor)" : "ttyS\(minor - 64)"
        case 5 where minor == 1: return "console"
        default: return "tty(\(major):\(minor))"
        }
    }
}
