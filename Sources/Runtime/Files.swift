#if canImport(Glibc)
    import Glibc
#endif

/// Reads `fd` to its end into `buffer` from index 0, growing it (doubling) up to `limit`
/// bytes: the one whole-file reader. Returns the byte count, or nil with errno set; a file
/// longer than `limit` gives its first `limit` bytes.
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

/// `mkdir -p` for the agent's own directories (state, alert files); the error text or nil.
public func createDirectories(_ path: String, mode: mode_t = 0o750) -> String? {
    var partial = ""
    for component in path.split(separator: "/") {
        partial += "/" + component
        if mkdir(partial, mode) != 0 && errno != EEXIST { return "\(partial): \(String(cString: strerror(errno)))" }
    }
    return nil
}
