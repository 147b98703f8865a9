#if canImport(Glibc)
    import Glibc
#endif

/// A monotonic clock in milliseconds, for timeouts and intervals.
public func monotonicMilliseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
}

/// Wall-clock milliseconds since the epoch: the time base of audit records, flows and alerts.
public func realtimeMilliseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
}
