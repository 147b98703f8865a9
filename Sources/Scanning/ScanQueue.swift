import Runtime

#if canImport(Glibc)
    import Glibc
#endif

/// Scanning off the event loop: a `BackgroundWorker` takes targets from a bounded queue and
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
    public var descriptor: Int32 { worker.descriptor }
    public var capacity: Int { worker.capacity }
    private var worker: BackgroundWorker<(ScanTarget, Context), (ScanResult, Context)>!
    /// Used on the worker's thread alone; `replace(scanner:)` hands it the next one through
    /// `replacement`.
    private var scanner: FileScanner
    // Under `mutex`: shared by the event loop and the worker's thread.
    private var mutex = pthread_mutex_t()
    private var replacement: FileScanner?
    /// What the scanners `replace` retired had counted.
    private var retiredCounters = FileScanner.Counters()
    private var snapshot = Counters()
    private var clean: Set<FileVersion> = []
    /// `isKnownClean` answers that spared the worker a target (counted as cache hits).
    private var cleanHits = 0

    /// Starts the worker; nil when no thread or pipe can be had. Create it after blocking
    /// signals: the thread inherits the mask.
    public static func start(scanner: FileScanner, capacity: Int) -> ScanQueue? {
        let queue = ScanQueue(scanner: scanner)
        // Weak: the queue owns its worker, which must not keep it alive after stop().
        let worker = BackgroundWorker<(ScanTarget, Context), (ScanResult, Context)>.start(capacity: capacity) { [weak queue] in queue?.scan($0) }
        guard let worker else { return nil }
        queue.worker = worker
        return queue
    }

    private init(scanner: FileScanner) {
        self.scanner = scanner
        pthread_mutex_init(&mutex, nil)
    }

    deinit { pthread_mutex_destroy(&mutex) }

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
        let accepted = worker.submit(batch)
        locked {
            snapshot.queued += accepted
            snapshot.dropped += batch.count - accepted
        }
        return accepted
    }

    /// Matches and failures finished since the last call.
    public func takeResults() -> [(result: ScanResult, context: Context)] {
        worker.takeResults().map { ($0.0, $0.1) }
    }

    public var counters: Counters {
        locked {
            var current = snapshot
            current.scanner.cacheHits += cleanHits
            return current
        }
    }

    /// Whether the file with `identity` was scanned clean with the current rules; a yes is
    /// counted as a cache hit. Lets the event loop skip the hand-over for the binaries a host
    /// runs over and over (one lock, no wake-up of the worker).
    public func isKnownClean(_ identity: FileVersion) -> Bool {
        locked {
            guard clean.contains(identity) else { return false }
            cleanHits += 1
            return true
        }
    }

    /// New rules (a reload): the worker scans with `next` from its next target on. Counts carry
    /// over; cached results and what was known clean go with the old rules.
    public func replace(scanner next: FileScanner) {
        locked {
            replacement = next
            clean.removeAll()
        }
    }

    /// Lets the worker finish what it is scanning, then joins it; queued targets are dropped.
    public func stop() { worker.stop() }

    /// One target, on the worker's thread: matches and failures go back to the loop; a clean
    /// file joins the clean set.
    private func scan(_ job: (ScanTarget, Context)) -> (ScanResult, Context)? {
        locked {
            if let next = replacement {
                retiredCounters = retiredCounters.adding(scanner.counters)
                scanner = next
                replacement = nil
            }
        }
        let result = scanner.scan(job.0)
        return locked {
            snapshot.scanner = retiredCounters.adding(scanner.counters)
            // Not while new rules wait: this result is the old rules' verdict.
            if result.matches.isEmpty, replacement == nil, let file = result.file, result.outcome == .scanned || result.outcome == .cached {
                if clean.count >= Self.cleanLimit { clean.removeAll(keepingCapacity: true) }
                clean.insert(file.identity)
            }
            return !result.matches.isEmpty || Self.isFailure(result.outcome) ? (result, job.1) : nil
        }
    }

    private func locked<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return body()
    }

    private static func isFailure(_ outcome: ScanResult.Outcome) -> Bool {
        if case .failed = outcome { return true }
        return false
    }
}
