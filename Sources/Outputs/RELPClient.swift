/// The client side of RELP (rsyslog's Reliable Event Logging Protocol) on bytes: the frames
/// it sends and the receiver's responses it reads, with no I/O of its own (the forwarder moves
/// the bytes over TCP or TLS).
///
/// A frame is `TXNR SP COMMAND SP DATALEN [SP DATA] LF`. The session opens with `open` and the
/// offers; each alert is a `syslog` command whose `rsp` with code 200 is the receiver's
/// application-level acknowledgement: it arrives once the receiver took the message, not when
/// its TCP stack did. Responses are the receiver's bytes and are parsed with bounds.
///
/// Why not librelp: its client (1.11) tells its caller nothing about which message the receiver
/// acknowledged (no callback, no count of unacknowledged frames; windows below 2 are refused, and
/// the result of its close is discarded), and it keeps and resends unacknowledged frames
/// itself. The spool would then let go of alerts on a guess. The protocol is small; the
/// receivers in the tests (rsyslog's imrelp) are librelp's server.
struct RELPClient {
    struct ProtocolError: Error, CustomStringConvertible {
        let description: String
    }

    enum Event: Equatable {
        /// The receiver accepted the session and the syslog command.
        case opened
        /// The receiver took the message sent with this transaction number.
        case accepted(Int)
        /// The receiver answered this transaction with an error code (its text).
        case refused(Int, String)
        /// The receiver answered the close command.
        case closed
        /// The receiver is closing the session (`serverclose`).
        case serverClosing
    }

    /// RELP transaction numbers run 1...999,999,999 and wrap to 1.
    static let maximumTransaction = 999_999_999
    /// Responses are short ("200 OK", the offers): a receiver announcing more is broken.
    static let maximumResponseBytes = 64 << 10
    /// The open command's transaction.
    private static let openTransaction = 1

    private(set) var isOpen = false
    /// Internal, not private: the tests start it near the wrap.
    var nextTransaction = 1
    private var closeTransaction: Int?
    private var inbound: [UInt8] = []

    /// The `open` command that starts every session, with our offers.
    mutating func openFrame(software: String) -> [UInt8] {
        (isOpen, nextTransaction, closeTransaction, inbound) = (false, Self.openTransaction, nil, [])
        let offers = Array("relp_version=0\nrelp_software=\(software)\ncommands=syslog".utf8)
        var frame: [UInt8] = []
        append(command: "open", data: offers[...], to: &frame)
        return frame
    }

    /// Appends a `syslog` frame carrying `message`; returns its transaction number.
    @discardableResult
    mutating func appendSyslog(_ message: [UInt8], to frame: inout [UInt8]) -> Int {
        append(command: "syslog", data: message[...], to: &frame)
    }

    /// The `close` command that ends a session politely.
    mutating func closeFrame() -> [UInt8] {
        var frame: [UInt8] = []
        closeTransaction = append(command: "close", data: [][...], to: &frame)
        return frame
    }

    @discardableResult
    private mutating func append(command: String, data: ArraySlice<UInt8>, to frame: inout [UInt8]) -> Int {
        let transaction = nextTransaction
        nextTransaction = transaction >= Self.maximumTransaction ? 1 : transaction + 1
        frame += "\(transaction) \(command) \(data.count)".utf8
        if !data.isEmpty {
            frame.append(0x20)
            frame += data
        }
        frame.append(0x0A)
        return transaction
    }

    /// Reads what the receiver sent; complete frames become events, a partial one waits for
    /// the rest. Anything that is not RELP ends the session.
    mutating func receive(_ bytes: some Collection<UInt8>) throws(ProtocolError) -> [Event] {
        inbound += bytes
        var events: [Event] = []
        var start = 0
        defer { inbound.removeFirst(start) }
        while let (frame, end) = try Self.frame(in: inbound, from: start) {
            start = end
            if let event = try event(for: frame) { events.append(event) }
        }
        return events
    }

    private struct Frame {
        var transaction: Int
        var command: ArraySlice<UInt8>
        var data: ArraySlice<UInt8>
    }

    /// The frame starting at `start`, and where the next begins; nil while incomplete.
    private static func frame(in bytes: [UInt8], from start: Int) throws(ProtocolError) -> (Frame, Int)? {
        var index = start
        guard let transaction = try number(in: bytes, at: &index, name: "transaction number") else { return nil }
        let commandStart = index
        while index < bytes.count, bytes[index] != 0x20 {
            guard bytes[index] >= 0x61 && bytes[index] <= 0x7A, index - commandStart < 32 else {
                throw ProtocolError(description: "RELP: malformed command in the receiver's frame")
            }
            index += 1
        }
        guard index < bytes.count else { return nil }
        let command = bytes[commandStart..<index]
        index += 1
        guard let length = try number(in: bytes, at: &index, name: "data length", terminators: [0x20, 0x0A]) else { return nil }
        guard length <= maximumResponseBytes else { throw ProtocolError(description: "RELP: the receiver announced \(length) bytes of data") }
        var data: ArraySlice<UInt8> = []
        if length > 0 {
            // After the length: a space, the data, then the trailer.
            guard bytes[index - 1] == 0x20 else { throw ProtocolError(description: "RELP: data length without data") }
            guard index + length < bytes.count else { return nil }
            data = bytes[index..<(index + length)]
            index += length
        } else {
            index -= 1  // the length's terminator is the trailer
        }
        guard bytes[index] == 0x0A else { throw ProtocolError(description: "RELP: frame without its trailer") }
        return (Frame(transaction: transaction, command: command, data: data), index + 1)
    }

    /// Decimal digits up to a terminator (a space by default), which is consumed; nil while the
    /// terminator has not arrived.
    private static func number(in bytes: [UInt8], at index: inout Int, name: String, terminators: [UInt8] = [0x20]) throws(ProtocolError) -> Int? {
        var value = 0
        var digits = 0
        while index < bytes.count {
            let byte = bytes[index]
            if terminators.contains(byte) {
                guard digits > 0 else { throw ProtocolError(description: "RELP: missing \(name)") }
                index += 1
                return value
            }
            guard byte >= 0x30 && byte <= 0x39, digits < 9 else { throw ProtocolError(description: "RELP: malformed \(name)") }
            value = value * 10 + Int(byte - 0x30)
            digits += 1
            index += 1
        }
        return nil
    }

    private mutating func event(for frame: Frame) throws(ProtocolError) -> Event? {
        if frame.command.elementsEqual("serverclose".utf8) { return .serverClosing }
        guard frame.command.elementsEqual("rsp".utf8) else {
            throw ProtocolError(description: "RELP: unexpected command \"\(String(decoding: frame.command, as: UTF8.self))\" from the receiver")
        }
        if frame.transaction == closeTransaction { return .closed }
        let line = frame.data.prefix { $0 != 0x0A }
        let code = Int(String(decoding: line.prefix(3), as: UTF8.self)) ?? 0
        let text = String(decoding: line.prefix(80), as: UTF8.self)
        guard frame.transaction == Self.openTransaction, !isOpen else {
            return code == 200 ? .accepted(frame.transaction) : .refused(frame.transaction, text)
        }
        guard code == 200 else { throw ProtocolError(description: "RELP: the receiver refused the session: \(text)") }
        let offers = frame.data.split(separator: 0x0A).dropFirst()
        let commands = offers.first { $0.starts(with: "commands=".utf8) }?.dropFirst(9).split(separator: 0x2C) ?? []
        guard commands.contains(where: { $0.elementsEqual("syslog".utf8) }) else {
            throw ProtocolError(description: "RELP: the receiver does not offer the syslog command")
        }
        isOpen = true
        return .opened
    }
}
