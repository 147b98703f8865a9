import Runtime

#if canImport(Glibc)
    import Glibc
#endif

/// Scanning off the event loop: one worker thread takes targets from a bounded queue and
/// hands back matches (and failures) with the caller's context. The event loop polls
/// `descriptor` and calls `takeResults`. A full queue drops the target and counts it.
public final class ScanQueue<Context: Sendable>: @unchecked Sendable {
    public struct Counters: Sendable, Equatable {
        public var queued = 0
        /// Targets refused because the queue was full.
        public var dropped = 0
        public var scanner = FileScanner.Counters()
    }

    /// Files the current rules found clean, by identity, for `isKnownClean`: bounded, emptied
    /// when full and when the rules change.
    private static var cleanLimit: Int { 16_384 }  // a generic type holds no stored statics

    /// Readable while results wait.
    public var descriptor: Int32 { wake.read }
    public let capacity: Int
    /// Used by the worker alone; `replace(scanner:)` hands it the next one through `replacement`.
    private var scanner: FileScanner
    private var replacement: FileScanner?
    /// What the scanners `replace` retired had counted.
    private var retiredCounters = FileScanner.Counters()
    private var mutex = pthread_mutex_t()
    private var condition = pthread_cond_t()
    private var pending: [(ScanTarget, Context)] = []
    private var pendingHead = 0
    private var results: [(ScanResult, Context)] = []
    private var snapshot = Counters()
    private var clean: Set<FileVersion> = []
    /// `isKnownClean` answers that spared the worker a target (counted as cache hits).
    private var cleanHits = 0
    private var stopping = false
    private var wakePending = false
    private let wake: (read: Int32, write: Int32)
    private var thread: pthread_t?

    /// Starts the worker; nil when no thread or pipe can be had. Create it after blocking
    /// signals: the thread inherits the mask.
    public static func start(scanner: FileScanner, capacity: Int) -> ScanQueue? {
        guard let wake = wakePipe() else { return nil }
        let queue = ScanQueue(scanner: scanner, capacity: capacity, wake: wake)
        return queue.startWorker() ? queue : nil
    }

    private init(scanner: FileScanner, capacity: Int, wake: (read: Int32, write: Int32)) {
        self.scanner = scanner
        self.capacity = max(1, capacity)
        self.wake = wake
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&condition, nil)
    }

    private func startWorker() -> Bool {
        // The worker holds the queue until stop() ends it.
        thread = spawnThread { self.work() }
        return thread != nil
    }

    deinit {
        close(wake.read)
        close(wake.write)
        pthread_cond_destroy(&condition)
        pthread_mutex_destroy(&mutex)
    }

    /// Queues a scan; false (and counted) when the queue is full.
    @discardableResult
    public func submit(_ target: ScanTarget, context: Context) -> Bool {
        submit([(target, context)]) == 1
    }

    /// Queues scans under one lock and one wake-up of the worker (an event loop submits what
    /// one read of the audit socket brought); returns how many fit, the rest are counted dropped.
    @discardableResult
    public func submit(_ batch: [(ScanTarget, Context)]) -> Int {
        guard !batch.isEmpty else { return 0 }
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        let accepted = min(batch.count, max(0, capacity - (pending.count - pendingHead)))
        pending += batch.prefix(accepted)
        snapshot.queued += accepted
        snapshot.dropped += batch.count - accepted
        if accepted > 0 { pthread_cond_signal(&condition) }
        return accepted
    }

    /// Matches and failures finished since the last call.
    public func takeResults() -> [(result: ScanResult, context: Context)] {
        var byte: UInt8 = 0
        while read(wake.read, &byte, 1) > 0 {}
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        wakePending = false
        defer { results.removeAll(keepingCapacity: true) }
        return results.map { ($0.0, $0.1) }
    }

    public var counters: Counters {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        var current = snapshot
        current.scanner.cacheHits += cleanHits
        return current
    }

    /// Whether the file with `identity` was scanned clean with the current rules; a yes is
    /// counted as a cache hit. Lets the event loop skip the hand-over for the binaries a host
    /// runs over and over (one lock, no wake-up of the worker).
    public func isKnownClean(_ identity: FileVersion) -> Bool {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        guard clean.contains(identity) else { return false }
        cleanHits += 1
        return true
    }

    /// New rules (a reload): the worker scans with `next` from its next target on. Counts carry
    /// over; cached results and what was known clean go with the old rules.
    public func replace(scanner next: FileScanner) {
        pthread_mutex_lock(&mutex)
        replacement = next
        clean.removeAll()
        pthread_mutex_unlock(&mutex)
    }

    /// Lets the worker finish what it is scanning, then joins it; queued targets are dropped.
    /// The worker holds the queue, so this must be called for the queue to go away.
    public func stop() {
        pthread_mutex_lock(&mutex)
        stopping = true
        pthread_cond_signal(&condition)
        pthread_mutex_unlock(&mutex)
        if let thread {
            pthread_join(thread, nil)
            self.thread = nil
        }
    }

    private func work() {
        while true {
            pthread_mutex_lock(&mutex)
            while pending.count == pendingHead && !stopping { pthread_cond_wait(&condition, &mutex) }
            if stopping {
                pthread_mutex_unlock(&mutex)
                return
            }
            if let next = replacement {
                retiredCounters = retiredCounters.adding(scanner.counters)
                scanner = next
                replacement = nil
            }
            let (target, context) = pending[pendingHead]
            pendingHead += 1
            if pendingHead == pending.count {
                pending.removeAll(keepingCapacity: true)
                pendingHead = 0
            } else if pendingHead >= capacity {
                pending.removeFirst(pendingHead)
                pendingHead = 0
            }
            pthread_mutex_unlock(&mutex)

            let result = scanner.scan(target)

            pthread_mutex_lock(&mutex)
            snapshot.scanner = retiredCounters.adding(scanner.counters)
            // Not while new rules wait: this result is the old rules' verdict.
            if result.matches.isEmpty, replacement == nil, let file = result.file,
                result.outcome == .scanned || result.outcome == .cached
            {
                if clean.count >= Self.cleanLimit { clean.removeAll(keepingCapacity: true) }
                clean.insert(file.identity)
            }
            var notify = false
            if !result.matches.isEmpty || Self.isFailure(result.outcome) {
                results.append((result, context))
                notify = !wakePending
                wakePending = true
            }
            pthread_mutex_unlock(&mutex)
            if notify {
                var byte: UInt8 = 1
                _ = write(wake.write, &byte, 1)
            }
        }
    }

    private static func isFailure(_ outcome: ScanResult.Outcome) -> Bool {
        if case .failed = outcome { return true }
        return false
    }
}
