#if canImport(Glibc)
    import Glibc
#endif

/// Slow work off the event loop: one thread takes jobs from a bounded queue, and what it makes
/// of them waits in a `Mailbox` for the loop, which polls `descriptor` and calls `takeResults`.
/// A full queue refuses jobs (the caller counts them).
public final class BackgroundWorker<Job: Sendable, Output: Sendable>: @unchecked Sendable {
    /// Readable while results wait.
    public var descriptor: Int32 { results.descriptor }
    public let capacity: Int
    private let work: (Job) -> Output?
    private var mutex = pthread_mutex_t()
    private var condition = pthread_cond_t()
    private var pending: [Job] = []
    private var pendingHead = 0
    private let results: Mailbox<Output>
    private var stopping = false
    private var finishQueued = false
    private var thread: pthread_t?

    /// Starts the thread; nil when no thread or pipe can be had. Create it after the agent
    /// blocks its signals: the thread inherits the mask. `work` runs on the thread; a nil
    /// output is nothing to hand back.
    public static func start(capacity: Int, work: @escaping (Job) -> Output?) -> BackgroundWorker? {
        guard let results = Mailbox<Output>() else { return nil }
        let worker = BackgroundWorker(capacity: capacity, work: work, results: results)
        // The thread holds the worker until stop() ends it.
        worker.thread = spawnThread { worker.run() }
        return worker.thread == nil ? nil : worker
    }

    private init(capacity: Int, work: @escaping (Job) -> Output?, results: Mailbox<Output>) {
        self.capacity = max(1, capacity)
        self.work = work
        self.results = results
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&condition, nil)
    }

    deinit {
        pthread_cond_destroy(&condition)
        pthread_mutex_destroy(&mutex)
    }

    /// Queues jobs under one lock and one wake-up of the thread; returns how many fit.
    @discardableResult
    public func submit(_ jobs: [Job]) -> Int {
        guard !jobs.isEmpty else { return 0 }
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        guard !stopping else { return 0 }
        let accepted = min(jobs.count, max(0, capacity - (pending.count - pendingHead)))
        pending += jobs.prefix(accepted)
        if accepted > 0 { pthread_cond_signal(&condition) }
        return accepted
    }

    /// What the thread finished since the last call.
    public func takeResults() -> [Output] { results.take().items }

    /// Ends the thread and joins it: after the job in hand, or with `finishingQueued` after
    /// every queued job. The thread holds the worker, so this must be called for it to go away.
    public func stop(finishingQueued: Bool = false) {
        pthread_mutex_lock(&mutex)
        stopping = true
        finishQueued = finishingQueued
        pthread_cond_signal(&condition)
        pthread_mutex_unlock(&mutex)
        if let thread {
            pthread_join(thread, nil)
            self.thread = nil
        }
    }

    private func run() {
        while true {
            pthread_mutex_lock(&mutex)
            while pending.count == pendingHead && !stopping { pthread_cond_wait(&condition, &mutex) }
            if stopping && (!finishQueued || pending.count == pendingHead) {
                pthread_mutex_unlock(&mutex)
                return
            }
            let job = pending[pendingHead]
            pendingHead += 1
            if pendingHead == pending.count {
                pending.removeAll(keepingCapacity: true)
                pendingHead = 0
            } else if pendingHead >= capacity {
                pending.removeFirst(pendingHead)
                pendingHead = 0
            }
            pthread_mutex_unlock(&mutex)

            if let output = work(job) { results.post(output) }
        }
    }
}
