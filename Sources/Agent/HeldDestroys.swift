/// Socket destroy notifications wait for the audit stream to catch up. sock_diag reports a
/// close at once; the audit records of what the process did just before (an FTP client's data
/// connect, then its QUIT and close) queue behind an exec storm in kauditd. A session ended
/// before its data connect is read would make that connection a flow of its own, on a port
/// that is not FTP's. A notification goes on once an audit event stamped at or after its
/// arrival has been read (everything before it was too: kauditd's queue is in order), or
/// after `maximumWait` (a quiet stream has nothing newer to show). The wait stays below the
/// flows' shortest poll interval (100 ms): a poll that finds the socket gone ends its flow only
/// an interval later, by when the notification with its exact counters has gone on.
struct HeldDestroys<Notification> {
    private var queue: [(notification: Notification, arrival: Int64)] = []
    private var head = 0
    let maximumWait: Int64
    /// Beyond this many (a burst of closes), the oldest goes on at once.
    let capacity: Int

    init(maximumWait: Int64 = 50, capacity: Int = 16_384) {
        self.maximumWait = maximumWait
        self.capacity = capacity
    }

    var count: Int { queue.count - head }

    /// Holds `notification`, read at `arrival` (real-time milliseconds).
    mutating func hold(_ notification: Notification, arrival: Int64) {
        queue.append((notification, arrival))
    }

    /// Hands on, in arrival order, what the audit stream has caught up with (`auditTime`: the
    /// newest event time read), what waited `maximumWait` by `now`, and the oldest beyond
    /// `capacity`.
    mutating func release(auditTime: Int64, now: Int64, _ body: (Notification, Int64) -> Void) {
        let (maximumWait, capacity) = (maximumWait, capacity)
        release(body) { arrival, held in arrival <= auditTime || now - arrival >= maximumWait || held > capacity }
    }

    /// Everything held, in order (the agent is stopping, after the last audit records).
    mutating func releaseAll(_ body: (Notification, Int64) -> Void) {
        release(body) { _, _ in true }
    }

    /// Hands on the oldest while `due` says so of its arrival and the count held.
    private mutating func release(_ body: (Notification, Int64) -> Void, while due: (Int64, Int) -> Bool) {
        while head < queue.count, due(queue[head].arrival, count) {
            let (notification, arrival) = queue[head]
            head += 1
            body(notification, arrival)
        }
        compact()
    }

    /// Drops the handed-on prefix once it is half the storage.
    private mutating func compact() {
        if head == queue.count {
            queue.removeAll(keepingCapacity: true)
            head = 0
        } else if head > 1024 && head * 2 > queue.count {
            queue.removeFirst(head)
            head = 0
        }
    }
}
