import AgentConfig
import Runtime

#if canImport(Glibc)
    import Glibc
#endif

/// `[output.syslog]`: delivers alerts to a syslog receiver from a thread of its own, so a slow
/// or absent receiver never holds up the audit stream.
///
/// The event loop hands built messages to `submit` through a `Mailbox`. The thread appends them
/// to the spool (durable before anything is sent), then a `SyslogSender` sends from the spool's
/// cursor, which passes a message only once the receiver has it. A connection that breaks, or
/// an agent that restarts, sends again what may not have arrived: at least once
/// (`Status.resent` counts what was sent again after a connection broke before the receiver
/// confirmed it). What it cannot keep it drops and counts (`Status.dropped`, reported as
/// `agent.health`): the oldest alerts of a spool past `spool_max_bytes`, messages too large for
/// a spool record, and hand-overs past the bound while the spool cannot be written.
public final class SyslogForwarder: @unchecked Sendable {
    public struct Status: Sendable {
        public var address: String
        public var connected = false
        /// Why the receiver is not reachable, while that lasts.
        public var problem: String?
        /// Why the spool cannot be written, while that lasts.
        public var spoolProblem: String?
        public var spool = Spool.Counters()
        /// Messages handed over and not yet in the spool.
        public var waiting = 0
        public var delivered = 0
        /// Connections made (the first included).
        public var connections = 0
        /// Dropped before reaching the spool (the spool could not be written and memory filled).
        public var droppedUnspooled = 0
        /// Datagrams the socket refused as too big even after truncation.
        public var droppedOversize = 0
        public var truncated = 0
        /// Sent again after a connection broke before the receiver confirmed them: the receiver
        /// may have these twice.
        public var resent = 0

        public var dropped: Int { spool.dropped + droppedUnspooled + droppedOversize }
    }

    public typealias Log = @Sendable (_ level: LogLevel, _ message: String) -> Void

    /// A message handed over, and whether the builder had to cut it.
    private struct Handed {
        let message: [UInt8]
        let truncated: Bool
    }

    /// Messages kept in memory while the spool cannot take them.
    static let waitingLimit = 10_000
    /// The spool's cursor is written (fdatasync) at most this often: a crash resends at most
    /// what was delivered in that time.
    private static let cursorSyncMilliseconds: Int64 = 100

    private let settings: AgentConfiguration.SyslogOutput
    private let spoolDirectory: String
    private let log: Log
    private let handedOver: Mailbox<Handed>
    /// What the thread last published, for the event loop.
    private let published: Locked<Status>
    private var thread: pthread_t?

    // Owned by the thread.
    private var status: Status
    private var spool: Spool?
    private var sender: SyslogSender?
    private var nextAttempt: Int64 = 0
    private var retryDelay: Int64
    private var nextSpoolAttempt: Int64 = 0
    private var lastCursorSync: Int64 = 0

    /// Starts the thread; nil when the system gives no thread or pipe. The spool lives in
    /// `spoolDirectory`; when it cannot be opened the forwarder keeps messages in memory
    /// (bounded, counted) and tries again.
    public static func start(settings: AgentConfiguration.SyslogOutput, spoolDirectory: String, log: @escaping Log) -> SyslogForwarder? {
        guard let mailbox = Mailbox<Handed>(limit: waitingLimit) else { return nil }
        let forwarder = SyslogForwarder(settings: settings, spoolDirectory: spoolDirectory, log: log, mailbox: mailbox)
        forwarder.openSpool()
        forwarder.thread = spawnThread { forwarder.run() }
        return forwarder.thread == nil ? nil : forwarder
    }

    private init(settings: AgentConfiguration.SyslogOutput, spoolDirectory: String, log: @escaping Log, mailbox: Mailbox<Handed>) {
        self.settings = settings
        self.spoolDirectory = spoolDirectory
        self.log = log
        handedOver = mailbox
        retryDelay = Int64(settings.retryInitialMilliseconds)
        status = Status(address: settings.address.description)
        published = Locked(status)
    }

    /// Hands one message over; it is in the spool within one turn of the thread.
    public func submit(_ message: [UInt8], truncated: Bool = false) {
        handedOver.post(Handed(message: message, truncated: truncated))
    }

    /// The spool's bound (spool_max_bytes).
    public var spoolLimit: Int { settings.spoolMaximumBytes }

    public var currentStatus: Status {
        var current = published.value
        current.waiting = handedOver.waiting
        current.droppedUnspooled = handedOver.dropped
        return current
    }

    /// Spools what was handed over, saves the cursor and ends the thread. What was sent but not
    /// confirmed is sent again by the next run.
    public func stop() {
        handedOver.close()
        if let thread {
            pthread_join(thread, nil)
            self.thread = nil
        }
    }

    // MARK: the thread

    private func run() {
        while true {
            let (batch, stopping) = handedOver.take()
            let now = monotonicMilliseconds()
            spoolMessages(batch, now: now)
            if stopping {
                if let sender, let spool {
                    do { try sender.close(spool, status: &status) } catch { fail(error.description, now: monotonicMilliseconds()) }
                }
                spool?.sync()
                sender?.connection.shutdown()
                sender = nil
                publish()
                return
            }
            if sender == nil && now >= nextAttempt { connect(now: now) }
            if let sender, let spool {
                do { try sender.deliver(spool, status: &status) } catch { fail(error.description, now: monotonicMilliseconds()) }
            }
            if let spool, now - lastCursorSync >= Self.cursorSyncMilliseconds {
                spool.sync()
                lastCursorSync = now
            }
            publish()
            waitForWork()
        }
    }

    private func spoolMessages(_ batch: [Handed], now: Int64) {
        status.truncated += batch.count { $0.truncated }
        if spool == nil && now >= nextSpoolAttempt { openSpool() }
        guard !batch.isEmpty else { return }
        guard let spool else { return handedOver.putBack(batch) }
        do {
            try spool.append(batch.map(\.message))
            status.spoolProblem = nil
        } catch {
            if status.spoolProblem != error.description { log(.error, "syslog spool: \(error); alerts wait in memory (at most \(Self.waitingLimit))") }
            status.spoolProblem = error.description
            handedOver.putBack(batch.map { Handed(message: $0.message, truncated: false) })
        }
    }

    private func openSpool() {
        do {
            let opened = try Spool(directory: spoolDirectory, maximumBytes: settings.spoolMaximumBytes)
            spool = opened
            status.spoolProblem = nil
            if opened.counters.records > 0 {
                log(.info, "syslog spool \(spoolDirectory): \(opened.counters.records) alerts from an earlier run to deliver")
            }
            if opened.counters.damagedBytes > 0 {
                log(.warning, "syslog spool \(spoolDirectory): cut off \(opened.counters.damagedBytes) bytes of a damaged record (an interrupted write)")
            }
        } catch {
            nextSpoolAttempt = monotonicMilliseconds() + 10_000
            status.spoolProblem = error.description
            log(.error, "syslog spool \(spoolDirectory): \(error); alerts wait in memory (at most \(Self.waitingLimit))")
        }
    }

    private func connect(now: Int64) {
        do {
            let connection = try SyslogConnection.open(settings, timeoutMilliseconds: 5000)
            log(.info, "syslog \(settings.address): connected")
            status.connected = true
            status.problem = nil
            status.connections += 1
            retryDelay = Int64(settings.retryInitialMilliseconds)
            sender = SyslogSender(connection: connection, settings: settings, log: log, now: now)
        } catch {
            fail(error.description, now: now)
        }
    }

    private func fail(_ reason: String, now: Int64) {
        if status.problem != reason {
            log(.warning, "syslog \(settings.address): \(reason); \(status.spool.records) alerts spooled, retrying in \(retryDelay) ms")
        }
        // What was written and not confirmed goes again on the next connection.
        status.resent += sender?.unconfirmedCount ?? 0
        sender = nil
        status.connected = false
        status.problem = reason
        nextAttempt = now + retryDelay
        retryDelay = min(retryDelay * 2, Int64(settings.retryMaximumMilliseconds))
    }

    private func publish() {
        if let spool { status.spool = spool.counters }
        published.value = status
    }

    /// Sleeps until a message is handed over, the socket can take more or sent bytes may have
    /// been confirmed, or something is due: a reconnection or spool attempt, the cursor's
    /// sync, a check of what the receiver confirmed. With nothing due it sleeps until woken:
    /// an idle agent's syslog thread costs nothing.
    private func waitForWork() {
        let now = monotonicMilliseconds()
        var timeout: Int64 = -1
        func due(in milliseconds: Int64) { timeout = timeout < 0 ? max(0, milliseconds) : min(timeout, max(0, milliseconds)) }
        if sender == nil { due(in: nextAttempt - now) }
        if let recheck = sender?.recheckMilliseconds { due(in: recheck) }
        if spool == nil { due(in: nextSpoolAttempt - now) }
        if spool?.hasUnsyncedCursor == true { due(in: lastCursorSync + Self.cursorSyncMilliseconds - now) }
        var fds = [pollfd(fd: handedOver.descriptor, events: Int16(POLLIN), revents: 0)]
        if let sender {
            // Readable also when the receiver closes the connection.
            var events = Int16(POLLIN)
            if sender.socketFull { events |= Int16(POLLOUT) }
            fds.append(pollfd(fd: sender.connection.fd, events: events, revents: 0))
        }
        _ = poll(&fds, nfds_t(fds.count), Int32(timeout))
    }
}
