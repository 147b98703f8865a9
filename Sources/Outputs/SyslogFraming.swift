import Runtime

/// How alerts go on a stream to the receiver, and how the receiver says it has them.
protocol SyslogFraming {
    /// Sent first on every connection; alerts follow once `isOpen`.
    mutating func opening() -> [UInt8]
    var isOpen: Bool { get }
    /// How many more alerts may go while `unconfirmed` wait for the receiver.
    func room(unconfirmed: Int) -> Int
    /// Appends `message` framed; the mark the receiver's answer will carry, or nil when the
    /// receiver's TCP acknowledgement of its last byte is the confirmation.
    mutating func append(_ message: [UInt8], to frame: inout [UInt8]) -> UInt64?
    /// What the receiver's bytes say.
    mutating func read(_ answers: [UInt8]) -> SyslogAnswers
    /// Why the receiver is taken as gone after waiting since `waitingSince` with `unconfirmed`
    /// alerts in flight; nil while it is not.
    func stall(waitingSince: Int64, unconfirmed: Int, now: Int64) -> String?
    /// Sent at a stop to end the session politely (RELP's close, answered by `closed`); nil
    /// when the stream just ends.
    mutating func closing() -> [UInt8]?
}

/// The receiver's answers: the marks it confirmed, and whether it ended the session.
struct SyslogAnswers {
    var confirmed: [UInt64] = []
    var opened = false
    var closed = false
    /// The receiver refused or ended the session, or sent what the protocol does not allow.
    var failure: String?
}

/// RFC 6587: octet counting or LF-terminated messages; TCP's acknowledgement confirms them.
struct PlainFraming: SyslogFraming {
    let octetCounting: Bool

    mutating func opening() -> [UInt8] { [] }
    var isOpen: Bool { true }
    func room(unconfirmed: Int) -> Int { .max }

    mutating func append(_ message: [UInt8], to frame: inout [UInt8]) -> UInt64? {
        if octetCounting {
            frame += "\(message.count) ".utf8
            frame += message
        } else {
            frame += message
            frame.append(0x0A)
        }
        return nil
    }

    /// A plain receiver says nothing: what arrives is ignored.
    mutating func read(_ answers: [UInt8]) -> SyslogAnswers { SyslogAnswers() }
    func stall(waitingSince: Int64, unconfirmed: Int, now: Int64) -> String? { nil }
    mutating func closing() -> [UInt8]? { nil }
}

/// RELP: each alert is a transaction the receiver answers once it took the message.
struct RELPFraming: SyslogFraming {
    private var client = RELPClient()
    /// Frames in flight at most.
    static let window = 1024
    /// A receiver that answers nothing for this long is treated as gone (its frames go again).
    static let answerMilliseconds: Int64 = 30_000

    mutating func opening() -> [UInt8] { client.openFrame(software: "xferwatch,\(XferwatchVersion.current)") }
    var isOpen: Bool { client.isOpen }
    func room(unconfirmed: Int) -> Int { client.isOpen ? max(0, Self.window - unconfirmed) : 0 }

    mutating func append(_ message: [UInt8], to frame: inout [UInt8]) -> UInt64? {
        UInt64(client.appendSyslog(message, to: &frame))
    }

    mutating func read(_ answers: [UInt8]) -> SyslogAnswers {
        var result = SyslogAnswers()
        guard !answers.isEmpty else { return result }
        let events: [RELPClient.Event]
        do { events = try client.receive(answers) } catch {
            result.failure = error.description
            return result
        }
        for event in events {
            switch event {
            case .opened: result.opened = true
            case .accepted(let transaction): result.confirmed.append(UInt64(transaction))
            case .refused(_, let reason):
                // Kept and sent again: a refusal may be passing (a full queue at the receiver).
                result.failure = "the receiver refused an alert: \(reason)"
                return result
            case .serverClosing:
                result.failure = "the receiver closed the RELP session"
                return result
            case .closed: result.closed = true
            }
        }
        return result
    }

    func stall(waitingSince: Int64, unconfirmed: Int, now: Int64) -> String? {
        guard !client.isOpen || unconfirmed > 0, now - waitingSince > Self.answerMilliseconds else { return nil }
        return client.isOpen ? "no RELP answer for \(Self.answerMilliseconds / 1000) s" : "no answer to the RELP open command"
    }

    mutating func closing() -> [UInt8]? { client.closeFrame() }
}
