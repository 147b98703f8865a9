import AgentConfig
import Runtime

#if canImport(Glibc)
    import Glibc
#endif

/// One connection's delivery from the spool, on the forwarder's thread: what is framed and
/// written, what waits for the receiver's confirmation, and the spool's cursor, which passes
/// only a confirmed prefix. A datagram is delivered once the socket took it; a tcp or tls
/// message once the receiver's TCP stack acknowledged its last byte; a RELP message once the
/// receiver answered it with 200. A failure ends the sender: the forwarder connects again and
/// a new sender starts from the cursor.
final class SyslogSender {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    let connection: SyslogConnection
    private let address: SyslogAddress
    private let log: SyslogForwarder.Log
    /// Nil for datagrams, which go one per message.
    private var framing: (any SyslogFraming)?
    /// The next record to frame after those already written.
    private var sendPosition: Spool.Position?
    /// Bytes framed and not yet written, and where each record in them ends.
    private var outgoing: [UInt8] = []
    private var outgoingWritten = 0
    private var outgoingRecords: [(end: Int, next: Spool.Position, mark: UInt64?)] = []
    private var wireAtBatchStart: UInt64 = 0
    /// Written and waiting: `mark` is the wire position of the record's last byte (tcp, tls) or
    /// the framing's own mark (RELP's transaction); `confirmed` once the receiver has it (RELP
    /// answers may skip ahead of the cursor, which only passes a confirmed prefix).
    private var unconfirmed: [(mark: UInt64, next: Spool.Position, confirmed: Bool)] = []
    /// Since when an answer is awaited: the opening, the last answer, or the first record written.
    private var waitingSince: Int64
    /// Stopping: the receiver answered the closing.
    private var closedByReceiver = false
    /// The socket refused more for now: wait until it is writable.
    private(set) var socketFull = false
    /// A turn sends at most this much, so what the event loop hands over reaches the spool
    /// between turns even while a backlog drains to a fast receiver.
    private static let turnBytes = 1 << 20
    private(set) var turnBudgetSpent = false

    init(connection: SyslogConnection, settings: AgentConfiguration.SyslogOutput, log: @escaping SyslogForwarder.Log, now: Int64) {
        self.connection = connection
        self.address = settings.address
        self.log = log
        waitingSince = now
        guard connection.isStream else { return }
        var framing: any SyslogFraming =
            settings.address.transport.isRELP ? RELPFraming() : PlainFraming(octetCounting: settings.framing == .octetCounting)
        outgoing = framing.opening()
        self.framing = framing
    }

    /// Records written whose confirmation has not come: sent again after a failure.
    var unconfirmedCount: Int { unconfirmed.count }

    /// How soon to look again with nothing else happening: tcp and tls confirmations are
    /// polled (SIOCOUTQ); RELP answers wake the poll, and a stall is checked once a second.
    var recheckMilliseconds: Int64? {
        if turnBudgetSpent { return 0 }
        guard !unconfirmed.isEmpty || framing?.isOpen == false else { return nil }
        return framing is RELPFraming ? 1000 : 10
    }

    /// One turn: the receiver's answers, then what the socket takes, then confirmations.
    func deliver(_ spool: Spool, status: inout SyslogForwarder.Status) throws(Failure) {
        socketFull = false
        turnBudgetSpent = false
        var answers: [UInt8] = []
        let closed = connection.receive { answers += $0 }
        try read(answers, spool, status: &status)
        if let closed { throw Failure(description: closed) }
        if framing == nil { try deliverDatagrams(spool, status: &status) } else { try deliverStream(spool, status: &status) }
    }

    /// Stopping: sends what the window allows, then the framing's closing, waiting at most a
    /// second for its answer, so the spool keeps only what the receiver did not confirm.
    func close(_ spool: Spool, status: inout SyslogForwarder.Status) throws(Failure) {
        guard framing?.isOpen == true else { return }
        try deliverStream(spool, status: &status)
        guard let closing = framing?.closing() else { return }
        outgoing += closing
        let deadline = monotonicMilliseconds() + 1000
        while !closedByReceiver, monotonicMilliseconds() < deadline {
            if !outgoing.isEmpty { _ = try writeOutgoing() }
            var answers: [UInt8] = []
            let gone = connection.receive { answers += $0 }
            try read(answers, spool, status: &status)
            if let gone { throw Failure(description: gone) }
            if !closedByReceiver { _ = waitReady(connection.fd, events: Int16(POLLIN), deadline: min(deadline, monotonicMilliseconds() + 50)) }
        }
    }

    private func read(_ answers: [UInt8], _ spool: Spool, status: inout SyslogForwarder.Status) throws(Failure) {
        guard var framing else { return }
        let now = monotonicMilliseconds()
        if !answers.isEmpty {
            let said = framing.read(answers)
            self.framing = framing
            waitingSince = now
            if said.opened { log(.info, "syslog \(address): RELP session open") }
            if said.closed { closedByReceiver = true }
            for mark in said.confirmed {
                if let index = unconfirmed.firstIndex(where: { $0.mark == mark }) { unconfirmed[index].confirmed = true }
            }
            releaseConfirmed(spool, status: &status)
            if let failure = said.failure { throw Failure(description: failure) }
        }
        if let stalled = framing.stall(waitingSince: waitingSince, unconfirmed: unconfirmed.count, now: now) {
            throw Failure(description: stalled)
        }
    }

    private func deliverDatagrams(_ spool: Spool, status: inout SyslogForwarder.Status) throws(Failure) {
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
                    log(.error, "syslog \(address): a \(record.message.count)-byte message is too big for the socket; dropped (lower max_message_size)")
                case .wouldBlock:
                    socketFull = true
                    return
                case .failed(let reason):
                    throw Failure(description: reason)
                }
            }
        }
    }

    private func deliverStream(_ spool: Spool, status: inout SyslogForwarder.Status) throws(Failure) {
        var framed = 0
        while true {
            if outgoing.isEmpty {
                guard framed < Self.turnBytes else {
                    turnBudgetSpent = true
                    break
                }
                guard frameBatch(spool) else { break }
                framed += outgoing.count
            }
            guard try writeOutgoing() else { break }
        }
        acknowledgeByWire(spool, status: &status)
    }

    /// Frames the next records after those already written, as many as the framing has room for.
    private func frameBatch(_ spool: Spool) -> Bool {
        guard var framing else { return false }
        let room = framing.room(unconfirmed: unconfirmed.count)
        guard room > 0 else { return false }
        let from = sendPosition.map { max($0, spool.cursor) } ?? spool.cursor
        let records = spool.read(from: from, maximumBytes: 256 << 10).prefix(room)
        guard let last = records.last else { return false }
        for record in records {
            let mark = framing.append(record.message, to: &outgoing)
            outgoingRecords.append((outgoing.count, record.next, mark))
        }
        self.framing = framing
        sendPosition = last.next
        wireAtBatchStart = connection.wireBytesWritten
        outgoingWritten = 0
        return true
    }

    /// Writes what is framed; a record whose last byte went waits for its confirmation. False
    /// when the socket takes no more for now.
    private func writeOutgoing() throws(Failure) -> Bool {
        let result = outgoing.withUnsafeBytes { connection.write(UnsafeRawBufferPointer(rebasing: $0[outgoingWritten...])) }
        switch result {
        case .wrote(let count):
            outgoingWritten += count
            // Plain TCP: a record is on the wire once its last byte is; TLS writes the batch whole.
            let wire = connection.wireBytesWritten
            while let first = outgoingRecords.first, first.end <= outgoingWritten {
                outgoingRecords.removeFirst()
                if unconfirmed.isEmpty { waitingSince = monotonicMilliseconds() }
                let mark = first.mark ?? (address.transport.usesTLS ? wire : wireAtBatchStart + UInt64(first.end))
                unconfirmed.append((mark, first.next, false))
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
            throw Failure(description: reason)
        }
    }

    /// tcp, tls: the records whose last byte the receiver's TCP stack acknowledged.
    private func acknowledgeByWire(_ spool: Spool, status: inout SyslogForwarder.Status) {
        guard framing is PlainFraming else { return }
        // Unknown is not acknowledged: the messages stay and are sent again after a reconnect.
        guard !unconfirmed.isEmpty, let pending = connection.unacknowledgedBytes else { return }
        let acknowledged = connection.wireBytesWritten &- UInt64(pending)
        // Wire positions only grow: the confirmed records are a prefix.
        for index in unconfirmed.indices {
            guard unconfirmed[index].mark <= acknowledged else { break }
            unconfirmed[index].confirmed = true
        }
        releaseConfirmed(spool, status: &status)
    }

    /// Lets the spool's cursor pass the confirmed records at the head.
    private func releaseConfirmed(_ spool: Spool, status: inout SyslogForwarder.Status) {
        let count = unconfirmed.prefix { $0.confirmed }.count
        guard count > 0 else { return }
        spool.acknowledge(unconfirmed.prefix(count).map(\.next))
        unconfirmed.removeFirst(count)
        status.delivered += count
    }
}
