#if canImport(Glibc)
    import Glibc
#endif

/// Items handed from one thread to another. `post` appends under a lock and makes `descriptor`
/// readable, so the taking thread can poll it beside descriptors of its own; `take` empties the
/// box. Past `limit` the oldest items go, counted in `dropped`.
public final class Mailbox<Item>: @unchecked Sendable {
    public let limit: Int
    /// Readable while items wait or once the box is closed.
    public var descriptor: Int32 { wake.read }
    private var mutex = pthread_mutex_t()
    private var items: [Item] = []
    /// A byte is in the pipe that the taker has not drained: one wake-up per take, not per item.
    private var signalled = false
    private var closed = false
    private var droppedCount = 0
    private let wake: (read: Int32, write: Int32)

    /// Nil when the system gives no pipe.
    public init?(limit: Int = .max) {
        guard let wake = wakePipe() else { return nil }
        self.limit = max(1, limit)
        self.wake = wake
        pthread_mutex_init(&mutex, nil)
    }

    deinit {
        Glibc.close(wake.read)
        Glibc.close(wake.write)
        pthread_mutex_destroy(&mutex)
    }

    /// Appends `item`; false once the box is closed (the item is counted as dropped).
    @discardableResult
    public func post(_ item: Item) -> Bool {
        pthread_mutex_lock(&mutex)
        guard !closed else {
            droppedCount += 1
            pthread_mutex_unlock(&mutex)
            return false
        }
        items.append(item)
        trimToLimit()
        let notify = !signalled
        signalled = true
        pthread_mutex_unlock(&mutex)
        if notify { signal() }
        return true
    }

    /// Puts items taken back in front of those posted since (the taker could not keep them).
    public func putBack(_ returned: [Item]) {
        guard !returned.isEmpty else { return }
        pthread_mutex_lock(&mutex)
        items = returned + items
        trimToLimit()
        pthread_mutex_unlock(&mutex)
    }

    /// Everything posted since the last take, and whether the box has been closed.
    public func take() -> (items: [Item], closed: Bool) {
        var scratch = [UInt8](repeating: 0, count: 64)
        while read(wake.read, &scratch, scratch.count) > 0 {}
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        signalled = false
        let taken = items
        items.removeAll(keepingCapacity: true)
        return (taken, closed)
    }

    /// No more posts; the taker is woken to see it.
    public func close() {
        pthread_mutex_lock(&mutex)
        closed = true
        pthread_mutex_unlock(&mutex)
        signal()
    }

    /// Items posted and not yet taken.
    public var waiting: Int { locked { items.count } }
    /// Items the limit pushed out or the closed box refused.
    public var dropped: Int { locked { droppedCount } }

    private func trimToLimit() {
        guard items.count > limit else { return }
        droppedCount += items.count - limit
        items.removeFirst(items.count - limit)
    }

    private func signal() {
        var byte: UInt8 = 1
        _ = write(wake.write, &byte, 1)
    }

    private func locked<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return body()
    }
}

/// A value one thread writes and others read whole, under a lock.
public final class Locked<Value>: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var stored: Value

    public init(_ value: Value) {
        stored = value
        pthread_mutex_init(&mutex, nil)
    }

    deinit { pthread_mutex_destroy(&mutex) }

    public var value: Value {
        get {
            pthread_mutex_lock(&mutex)
            defer { pthread_mutex_unlock(&mutex) }
            return stored
        }
        set {
            pthread_mutex_lock(&mutex)
            stored = newValue
            pthread_mutex_unlock(&mutex)
        }
    }
}
