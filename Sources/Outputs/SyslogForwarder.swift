import AgentConfig
import Runtime

#if canImport(Glibc)
    import Glibc
#endif

/// `[output.syslog]`: delivers alerts to a syslog receiver from a thread of its own, so a slow
/// or absent receiver never holds up the audit stream.
///
/// The event loop hands built messages to `submit`. The thread appends them to the spool
/// (durable before anything is sent), then sends from the spool's cursor. A datagram counts as
/// delivered once the socket took it; a tcp or tls message once the receiver's TCP stack
/// acknowledged its last byte; a RELP message once the receiver answered it with 200. Only then
/// does the cursor pass it, so a connection that breaks, or an agent that restarts, sends
/// again what may not have arrived: at least once (`Status.resent` counts what was sent again
/// after a connection broke before the receiver confirmed it). What it
/// cannot keep it drops and counts (`Status.dropped`, reported as `agent.health`): the oldest
/// alerts of a spool past `spool_max_bytes`, messages too large for a spool record, and
/// hand-overs past the bound while the spool cannot be written.
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

    private let settings: AgentConfiguration.SyslogOutput
    private let spoolDirectory: String
    private let log: Log
    private var mutex = pthread_mutex_t()
    private var pending: [[UInt8]] = []
    private var shared: Status
    private var stopping = false
    private let wake: (read: Int32, write: Int32)
    private var thread: pthread_t?
    /// Messages kept in memory while the spool cannot take them.
    static let waitingLimit = 10_000

    // Owned by the thread.
    private var spool: Spool?
    private var connection: SyslogConnection?
    private var nextAttempt: Int64 = 0
    private var retryDelay: Int64
    private var nextSpoolAttempt: Int64 = 0
    private var lastCursorSync: Int64 = 0
    /// Stream: the next record to send, bytes framed and not yet written, and records written
    /// whose acknowledgement is awaited (by their last byte's position on the wire).
    private var sendPosition: Spool.Position?
    private var outgoing: [UInt8] = []
    private var outgoingWritten = 0
    /// `transaction`: the RELP transaction number of the record's frame (0 otherwise).
    private var outgoingRecords: [(end: Int, next: Spool.Position, transaction: Int)] = []
    /// `mark`: the wire position of the record's last byte (tcp, tls), or its RELP transaction
    /// number; `confirmed` once the receiver answered it (RELP answers may skip ahead of the
    /// cursor, which only passes a confirmed prefix).
    private var unacknowledged: [(mark: UInt64, next: Spool.Position, confirmed: Bool)] = []
    private var wireAtBatchStart: UInt64 = 0
    /// The socket refused more for now: wait until it is writable.
    private var socketFull = false
    /// A turn sends at most this much, so what the event loop hands over reaches the spool
    /// between turns even while a backlog drains to a fast receiver.
    private static let turnBytes = 1 << 20
    /// The spool's cursor is written (fdatasync) at most this often: a crash resends at most
    /// what was delivered in that time.
    private static let cursorSyncMilliseconds: Int64 = 100
    private var turnBudgetSpent = false
    private var status: Status
    /// RELP: the session's protocol state, when its first answer or the oldest unanswered
    /// frame is waited for, and frames in flight at most.
    private var relp: RELPClient?
    private var relpWaitingSince: Int64 = 0
    /// Stopping: the receiver answered the close command.
    private var relpClosed = false
    private static let relpWindow = 1024
    /// RELP: a receiver that answers nothing for this long is treated as gone (its frames go again).
    private static let relpAnswerMilliseconds: Int64 = 30_000

    /// Starts the thread; nil when the system gives no thread or pipe. The spool lives in
    /// `spoolDirectory`; when it cannot be opened the forwarder keeps messages in memory
    /// (bounded, counted) and tries again.
    public static func start(settings: AgentConfiguration.SyslogOutput, spoolDirectory: String, log: @escaping Log) -> SyslogForwarder? {
        guard let wake = wakePipe() else { return nil }
        let forwarder = SyslogForwarder(settings: settings, spoolDirectory: spoolDirectory, log: log, wake: wake)
        forwarder.openSpool()
        forwarder.thread = spawnThread { forwarder.run() }
        return forwarder.thread == nil ? nil : forwarder
    }

    private init(settings: AgentConfiguration.SyslogOutput, spoolDirectory: String, log: @escaping Log, wake: (read: Int32, write: Int32)) {
        self.settings = settings
        self.spoolDirectory = spoolDirectory
        self.log = log
        self.wake = wake
        retryDelay = Int64(settings.retryInitialMilliseconds)
        status = Status(address: settings.address.description)
        shared = status
        pthread_mutex_init(&mutex, nil)
    }

    deinit {
        close(wake.read)
        close(wake.write)
        pthread_mutex_destroy(&mutex)
    }

    /// Hands one message over; it is in the spool within one turn of the thread.
    public func submit(_ message: [UInt8], truncated: Bool = false) {
        pthread_mutex_lock(&mutex)
        pending.append(message)
        if truncated { shared.truncated += 1 }
        if pending.count > Self.waitingLimit {
            // Only while the spool cannot be written: keep the newest, count the rest.
            pending.removeFirst(pending.count - Self.waitingLimit)
            shared.droppedUnspooled += 1
        }
        shared.waiting = pending.count
        pthread_mutex_unlock(&mutex)
        var byte: UInt8 = 1
        _ = Glibc.write(wake.write, &byte, 1)
    }

    /// The spool's bound (spool_max_bytes).
    public var spoolLimit: Int { settings.spoolMaximumBytes }

    public var currentStatus: Status {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return shared
    }

    /// Spools what was handed over, saves the cursor and ends the thread. What was sent but not
    /// acknowledged is sent again by the next run.
    public func stop() {
        pthread_mutex_lock(&mutex)
        stopping = true
        pthread_mutex_unlock(&mutex)
        var byte: UInt8 = 1
        _ = Glibc.write(wake.write, &byte, 1)
        if let thread {
            pthread_join(thread, nil)
            self.thread = nil
        }
    }

    // MARK: the thread

    private func run() {
        while true {
            pthread_mutex_lock(&mutex)
            let batch = pending
            pending.removeAll(keepingCapacity: true)
            shared.waiting = 0
            let stop = stopping
            pthread_mutex_unlock(&mutex)

            let now = monotonicMilliseconds()
            spoolMessages(batch, now: now)
            if stop {
                if let connection, let spool, relp?.isOpen == true { closeRELP(connection, spool) }
                spool?.sync()
                connection?.shutdown()
                connection = nil
                publish()
                return
            }
            if connection == nil && now >= nextAttempt { connect(now: now) }
            if connection != nil { deliver() }
            if let spool, now - lastCursorSync >= Self.cursorSyncMilliseconds {
                spool.sync()
                lastCursorSync = now
            }
            publish()
            waitForWork()
        }
    }

    private func spoolMessages(_ batch: [[UInt8]], now: Int64) {
        if spool == nil && now >= nextSpoolAttempt { openSpool() }
        guard !batch.isEmpty else { return }
        guard let spool else { return requeue(batch) }
        do {
            try spool.append(batch)
            status.spoolProblem = nil
        } catch {
            if status.spoolProblem != error.description { log(.error, "syslog spool: \(error); alerts wait in memory (at most \(Self.waitingLimit))") }
            status.spoolProblem = error.description
            requeue(batch)
        }
    }

    /// Puts messages the spool refused back in front of newer ones, within the memory bound.
    private func requeue(_ batch: [[UInt8]]) {
        pthread_mutex_lock(&mutex)
        pending = batch + pending
        if pending.count > Self.waitingLimit {
            shared.droppedUnspooled += pending.count - Self.waitingLimit
            pending.removeFirst(pending.count - Self.waitingLimit)
        }
        shared.waiting = pending.count
        pthread_mutex_unlock(&mutex)
    }

    private func openSpool() {
        do {
            spool = try Spool(directory: spoolDirectory, maximumBytes: settings.spoolMaximumBytes)
            status.spoolProblem = nil
            if let spool, spool.counters.records > 0 {
                log(.info, "syslog spool \(spoolDirectory): \(spool.counters.records) alerts from an earlier run to deliver")
            }
            if let spool, spool.counters.damagedBytes > 0 {
                log(.warning, "syslog spool \(spoolDirectory): cut off \(spool.counters.damagedBytes) bytes of a damaged record (an interrupted write)")
            }
        } catch {
            nextSpoolAttempt = monotonicMilliseconds() + 10_000
            status.spoolProblem = error.description
            log(.error, "syslog spool \(spoolDirectory): \(error); alerts wait in memory (at most \(Self.waitingLimit))")
        }
    }

    private func connect(now: Int64) {
        do {
            connection = try SyslogConnection.open(settings, timeoutMilliseconds: 5000)
            log(.info, "syslog \(settings.address): connected")
            status.connected = true
            status.problem = nil
            status.connections += 1
            retryDelay = Int64(settings.retryInitialMilliseconds)
            sendPosition = nil
            outgoing.removeAll(keepingCapacity: true)
            outgoingWritten = 0
            outgoingRecords.removeAll()
            unacknowledged.removeAll()
            relp = nil
            if settings.address.transport.isRELP {
                // Alerts follow once the receiver accepted the session.
                var client = RELPClient()
                outgoing = client.openFrame(software: "xferwatch,\(XferwatchVersion.current)")
                relp = client
                relpWaitingSince = now
            }
        } catch {
            fail(error.description, now: now)
        }
    }

    private func fail(_ reason: String, now: Int64) {
        if status.problem != reason {
            log(.warning, "syslog \(settings.address): \(reason); \(status.spool.records) alerts spooled, retrying in \(retryDelay) ms")
        }
        connection = nil
        relp = nil
        // What was written and not confirmed goes again on the next connection.
        status.resent += unacknowledged.count
        unacknowledged.removeAll()
        status.connected = false
        status.problem = reason
        nextAttempt = now + retryDelay
        retryDelay = min(retryDelay * 2, Int64(settings.retryMaximumMilliseconds))
    }

    private func deliver() {
        guard let connection, let spool else { return }
        socketFull = false
        turnBudgetSpent = false
        var answers: [UInt8] = []
        let closed = connection.receive { answers += $0 }
        if relp != nil {
            guard readRELPAnswers(answers, spool) else { return }
            if let stalled = relpStall() { return fail(stalled, now: monotonicMilliseconds()) }
        }
        if let closed { return fail(closed, now: monotonicMilliseconds()) }
        if connection.isStream { deliverStream(connection, spool) } else { deliverDatagrams(connection, spool) }
    }

    private func deliverDatagrams(_ connection: SyslogConnection, _ spool: Spool) {
        var sent = 0
        while true {
            guard sent < Self.turnBytes else {
                turnBudgetSpent = true
                return
            }
            let records = spool.read(from: spool.cursor, maximumBytes: 256 << 10)
            guard !records.isEmpty else { return }
            sent += records.reduce(0) { $0 + $1.message.count }
            var delivered: [Spool.Position] = []
            defer {
                spool.acknowledge(delivered)
                status.delivered += delivered.count
            }
            for record in records {
                switch record.message.withUnsafeBytes({ connection.write($0) }) {
                case .wrote:
                    delivered.append(record.next)
                case .tooBig:
                    // Cut to max_message_size and still refused: the socket's own limit is lower.
                    delivered.append(record.next)
                    status.droppedOversize += 1
                    log(
                        .error, "syslog \(settings.address): a \(record.message.count)-byte message is too big for the socket; dropped (lower max_message_size)"
                    )
                case .wouldBlock:
                    socketFull = true
                    return
                case .failed(let reason):
                    return fail(reason, now: monotonicMilliseconds())
                }
            }
        }
    }

    private func deliverStream(_ connection: SyslogConnection, _ spool: Spool) {
        var framed = 0
        while true {
            if outgoing.isEmpty {
                guard framed < Self.turnBytes else {
                    turnBudgetSpent = true
                    break
                }
                if let relp, !relp.isOpen || unacknowledged.count >= Self.relpWindow { break }
                guard frameBatch(spool) else { break }
                framed += outgoing.count
            }
            guard writeOutgoing(connection) else {
                if self.connection == nil { return }
                break
            }
        }
        acknowledgeStream(connection, spool)
    }

    /// Writes what is framed; a record whose last byte went awaits its acknowledgement. False
    /// when the socket takes no more for now, or the connection failed.
    private func writeOutgoing(_ connection: SyslogConnection) -> Bool {
        let result = outgoing.withUnsafeBytes { connection.write(UnsafeRawBufferPointer(rebasing: $0[outgoingWritten...])) }
        switch result {
        case .wrote(let count):
            outgoingWritten += count
            // Plain TCP: a record is on the wire once its last byte is; TLS writes the batch whole.
            let wire = connection.wireBytesWritten
            while let first = outgoingRecords.first, first.end <= outgoingWritten {
                outgoingRecords.removeFirst()
                let mark: UInt64
                switch settings.address.transport {
                case .relp, .relpTLS:
                    if unacknowledged.isEmpty { relpWaitingSince = monotonicMilliseconds() }
                    mark = UInt64(first.transaction)
                case .tls: mark = wire
                case .tcp, .udp, .unix: mark = wireAtBatchStart + UInt64(first.end)
                }
                unacknowledged.append((mark, first.next, false))
            }
            if outgoingWritten == outgoing.count {
                outgoing.removeAll(keepingCapacity: true)
                outgoingWritten = 0
            }
            return true
        case .wouldBlock, .tooBig:
            socketFull = true
            return false
        case .failed(let reason):
            fail(reason, now: monotonicMilliseconds())
            return false
        }
    }

    /// Frames the next records after those already written (RFC 6587 octet counting or LF;
    /// RELP frames).
    private func frameBatch(_ spool: Spool) -> Bool {
        let from = sendPosition.map { max($0, spool.cursor) } ?? spool.cursor
        let room = relp == nil ? Int.max : Self.relpWindow - unacknowledged.count
        let records = spool.read(from: from, maximumBytes: 256 << 10).prefix(room)
        guard let last = records.last else { return false }
        for record in records {
            if var client = relp {
                let transaction = client.appendSyslog(record.message, to: &outgoing)
                relp = client
                outgoingRecords.append((outgoing.count, record.next, transaction))
                continue
            }
            if settings.framing == .octetCounting {
                outgoing += "\(record.message.count) ".utf8
                outgoing += record.message
            } else {
                outgoing += record.message
                outgoing.append(0x0A)
            }
            outgoingRecords.append((outgoing.count, record.next, 0))
        }
        sendPosition = last.next
        wireAtBatchStart = connection?.wireBytesWritten ?? 0
        outgoingWritten = 0
        return true
    }

    private func acknowledgeStream(_ connection: SyslogConnection, _ spool: Spool) {
        // RELP: the receiver's answers acknowledge (readRELPAnswers).
        guard relp == nil else { return }
        // Unknown is not acknowledged: the messages stay and are sent again after a reconnect.
        guard !unacknowledged.isEmpty, let pending = connection.unacknowledgedBytes else { return }
        let acknowledged = connection.wireBytesWritten &- UInt64(pending)
        // Wire positions only grow: the confirmed records are a prefix, and the walk stops at the first that is not.
        for index in unacknowledged.indices {
            guard unacknowledged[index].mark <= acknowledged else { break }
            unacknowledged[index].confirmed = true
        }
        releaseConfirmed(spool)
    }

    /// Lets the spool's cursor pass the confirmed records at the head.
    private func releaseConfirmed(_ spool: Spool) {
        let count = unacknowledged.prefix { $0.confirmed }.count
        guard count > 0 else { return }
        spool.acknowledge(unacknowledged.prefix(count).map(\.next))
        unacknowledged.removeFirst(count)
        status.delivered += count
    }

    // MARK: RELP

    /// Applies the receiver's answers; false when they ended the connection.
    private func readRELPAnswers(_ answers: [UInt8], _ spool: Spool) -> Bool {
        guard !answers.isEmpty, var client = relp else { return true }
        let events: [RELPClient.Event]
        do {
            events = try client.receive(answers)
            relp = client
        } catch {
            fail(error.description, now: monotonicMilliseconds())
            return false
        }
        relpWaitingSince = monotonicMilliseconds()
        for event in events {
            switch event {
            case .opened:
                log(.info, "syslog \(settings.address): RELP session open")
            case .accepted(let transaction):
                confirm(transaction)
            case .refused(_, let reason):
                // Kept and sent again: a refusal may be passing (a full queue at the receiver).
                releaseConfirmed(spool)
                fail("the receiver refused an alert: \(reason)", now: monotonicMilliseconds())
                return false
            case .serverClosing:
                releaseConfirmed(spool)
                fail("the receiver closed the RELP session", now: monotonicMilliseconds())
                return false
            case .closed:
                relpClosed = true
            }
        }
        releaseConfirmed(spool)
        return true
    }

    private func confirm(_ transaction: Int) {
        if let index = unacknowledged.firstIndex(where: { $0.mark == UInt64(transaction) }) { unacknowledged[index].confirmed = true }
    }

    /// Why the session is stuck: no answer to the open, or none to the oldest frame in flight.
    private func relpStall() -> String? {
        guard let relp, !relp.isOpen || !unacknowledged.isEmpty else { return nil }
        guard monotonicMilliseconds() - relpWaitingSince > Self.relpAnswerMilliseconds else { return nil }
        return relp.isOpen ? "no RELP answer for \(Self.relpAnswerMilliseconds / 1000) s" : "no answer to the RELP open command"
    }

    /// Stopping: sends what the window allows, then closes the session, waiting at most a
    /// second for the answers, so the spool keeps only what the receiver did not confirm.
    private func closeRELP(_ connection: SyslogConnection, _ spool: Spool) {
        deliverStream(connection, spool)
        guard self.connection != nil, var client = relp else { return }
        outgoing += client.closeFrame()
        relp = client
        relpClosed = false
        let deadline = monotonicMilliseconds() + 1000
        while !relpClosed, monotonicMilliseconds() < deadline {
            if !outgoing.isEmpty, !writeOutgoing(connection), self.connection == nil { return }
            var answers: [UInt8] = []
            let gone = connection.receive { answers += $0 }
            guard readRELPAnswers(answers, spool), gone == nil else { return }
            if !relpClosed { _ = waitReady(connection.fd, events: Int16(POLLIN), deadline: min(deadline, monotonicMilliseconds() + 50)) }
        }
    }

    private func publish() {
        if let spool { status.spool = spool.counters }
        pthread_mutex_lock(&mutex)
        let waiting = shared.waiting
        let truncated = shared.truncated
        let unspooled = shared.droppedUnspooled
        shared = status
        shared.waiting = waiting
        shared.truncated = truncated
        shared.droppedUnspooled = unspooled
        pthread_mutex_unlock(&mutex)
    }

    /// Sleeps until a message is handed over, the socket can take more or sent bytes may have
    /// been acknowledged, or something is due: a reconnection or spool attempt, the cursor's
    /// sync, a check of what the receiver acknowledged. With nothing due it sleeps until woken:
    /// an idle agent's syslog thread costs nothing.
    private func waitForWork() {
        let now = monotonicMilliseconds()
        var timeout: Int64 = -1
        func due(in milliseconds: Int64) { timeout = timeout < 0 ? max(0, milliseconds) : min(timeout, max(0, milliseconds)) }
        if connection == nil { due(in: nextAttempt - now) }
        // tcp, tls: SIOCOUTQ is polled; RELP answers wake the poll, a stalled receiver is checked.
        if !unacknowledged.isEmpty { due(in: relp == nil ? 10 : 1000) }
        if turnBudgetSpent { due(in: 0) }
        if spool == nil { due(in: nextSpoolAttempt - now) }
        if spool?.hasUnsyncedCursor == true { due(in: lastCursorSync + Self.cursorSyncMilliseconds - now) }
        var fds = [pollfd(fd: wake.read, events: Int16(POLLIN), revents: 0)]
        if let connection {
            // Readable also when the receiver closes the connection.
            var events = Int16(POLLIN)
            if socketFull { events |= Int16(POLLOUT) }
            fds.append(pollfd(fd: connection.fd, events: events, revents: 0))
        }
        _ = poll(&fds, nfds_t(fds.count), Int32(timeout))
        var scratch = [UInt8](repeating: 0, count: 256)
        while read(wake.read, &scratch, scratch.count) > 0 {}
    }
}
