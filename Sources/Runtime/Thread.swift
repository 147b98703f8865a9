#if canImport(Glibc)
    import Glibc
#endif

/// Starts a thread running `body`; nil when the system refuses one. Create threads after the
/// agent blocks its signals: they inherit the mask, so signals reach the event loop's signalfd.
public func spawnThread(_ body: @escaping () -> Void) -> pthread_t? {
    // The C start routine cannot capture context, so the closure travels in a box.
    final class Box {
        let body: () -> Void
        init(_ body: @escaping () -> Void) { self.body = body }
    }
    let box = Unmanaged.passRetained(Box(body))
    var thread = pthread_t()
    let status = pthread_create(
        &thread, nil,
        { argument in
            Unmanaged<Box>.fromOpaque(argument!).takeRetainedValue().body()
            return nil
        }, box.toOpaque())
    guard status == 0 else {
        box.release()
        return nil
    }
    return thread
}

/// A pipe whose ends do not block and close on exec: how a worker thread wakes a poll loop.
public func wakePipe() -> (read: Int32, write: Int32)? {
    var fds: [Int32] = [-1, -1]
    guard pipe(&fds) == 0 else { return nil }
    for fd in fds {
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
    }
    return (fds[0], fds[1])
}
