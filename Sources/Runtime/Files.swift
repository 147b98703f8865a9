#if canImport(Glibc)
    import Glibc
#endif

/// Reads `fd` to its end into `buffer` from index 0, growing it (doubling) up to `limit`
/// bytes: the one whole-file reader. Returns the byte count, or nil with errno set; a file
/// longer than `limit` gives its first `limit` bytes.
/// A version of a file: another content under the same inode (new size or mtime) or another
/// inode at the same path is another version. Caches of what a file is key on it.
public struct FileVersion: Hashable, Sendable {
    public let device: UInt64
    public let inode: UInt64
    public let size: Int64
    /// Nanoseconds since the epoch.
    public let modified: Int64

    public init(_ info: stat) {
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
        size = Int64(info.st_size)
        modified = Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec)
    }
}

public func readToEnd(fd: Int32, into buffer: inout [UInt8], limit: Int = Int.max) -> Int? {
    if buffer.isEmpty { buffer = [UInt8](repeating: 0, count: min(4096, limit)) }
    var total = 0
    while total < limit {
        if total == buffer.count { buffer += [UInt8](repeating: 0, count: min(buffer.count, limit - buffer.count)) }
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress! + total, $0.count - total) }
        if n < 0 {
            if errno == EINTR { continue }
            return nil
        }
        if n == 0 { break }
        total += n
    }
    return total
}

/// A whole file's bytes (at most `limit`), or nil with errno set. `regularOnly` refuses
/// FIFOs and devices, whose reads could block or never end (paths a monitored process names).
public func readFile(_ path: String, limit: Int = Int.max, regularOnly: Bool = false) -> [UInt8]? {
    let fd = open(path, O_RDONLY | O_CLOEXEC | (regularOnly ? O_NONBLOCK : 0))
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    if regularOnly {
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { return nil }
    }
    var buffer: [UInt8] = []
    guard let count = readToEnd(fd: fd, into: &buffer, limit: limit) else { return nil }
    buffer.removeSubrange(count...)
    return buffer
}

/// The whole file as UTF-8 text, or nil with errno set.
public func readTextFile(_ path: String, limit: Int = Int.max, regularOnly: Bool = false) -> String? {
    readFile(path, limit: limit, regularOnly: regularOnly).map { String(decoding: $0, as: UTF8.self) }
}

/// `/var/log/xferwatch` for `/var/log/xferwatch/alerts.jsonl`.
public func parentDirectory(_ path: String) -> String {
    path.utf8.lastIndex(of: UInt8(ascii: "/")).map { String(path[..<$0]) } ?? ""
}

/// Writes all bytes to `fd`, retrying short writes and EINTR. False if the fd refuses them.
@discardableResult
public func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Bool {
    var offset = 0
    while offset < bytes.count {
        let written = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
        if written < 0 {
            if errno == EINTR { continue }
            return false
        }
        offset += written
    }
    return true
}

/// Writes `chunks` to a temporary file beside `path`, then renames it over `path`: a reader
/// never sees half a file. False (errno set) when it could not.
public func writeFileAtomically(_ path: String, mode: mode_t, _ chunks: [[UInt8]]) -> Bool {
    let name = path.split(separator: "/").last.map(String.init) ?? "file"
    let temporary = "\(parentDirectory(path))/.\(name).\(getpid())"
    let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
    guard fd >= 0 else { return false }
    var written = true
    for chunk in chunks where written { written = chunk.withUnsafeBytes { writeAll(fd, $0) } }
    written = close(fd) == 0 && written
    guard written, rename(temporary, path) == 0 else {
        let saved = errno
        unlink(temporary)
        errno = saved
        return false
    }
    return true
}

/// The names in a directory, `.` and `..` left out; nil with errno set when it cannot be read.
public func directoryEntries(_ path: String) -> [String]? {
    guard let dir = opendir(path) else { return nil }
    defer { closedir(dir) }
    var names: [String] = []
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        if name != "." && name != ".." { names.append(name) }
    }
    return names
}

/// Where a symbolic link points (`/proc/<pid>/exe`: the executable); nil when it is not one
/// or cannot be read.
public func symbolicLinkTarget(_ path: String) -> String? {
    var target = [CChar](repeating: 0, count: 4096)
    let length = readlink(path, &target, target.count - 1)
    guard length > 0 else { return nil }
    return String(decoding: target[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// `curl` for `/usr/bin/curl`.
@inline(__always)
public func baseName(_ path: String) -> String {
    guard let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")) else { return path }
    return String(path[path.utf8.index(after: slash)...])
}

/// `mkdir -p` for the agent's own directories (state, alert files); the error text or nil.
public func createDirectories(_ path: String, mode: mode_t = 0o750) -> String? {
    var partial = ""
    for component in path.split(separator: "/") {
        partial += "/" + component
        if mkdir(partial, mode) != 0 && errno != EEXIST { return "\(partial): \(String(cString: strerror(errno)))" }
    }
    return nil
}

/// How to reach the host's files by their paths: through `/proc/1/root` when the agent has a
/// mount namespace of its own (systemd's PrivateTmp and ProtectHome give it one), else directly
/// (also when PID 1's namespace cannot be read, as under some container runtimes).
public let hostFilesRoot: String = {
    var ours = stat(), first = stat()
    let separate = stat("/proc/self/ns/mnt", &ours) == 0 && stat("/proc/1/ns/mnt", &first) == 0 && ours.st_ino != first.st_ino
    return separate ? "/proc/1/root" : ""
}()
