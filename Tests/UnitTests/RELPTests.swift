import TestSupport
import Testing

@testable import Outputs

/// The RELP client on bytes: the frames it writes, and what rsyslog's imrelp (librelp 1.11)
/// answered in a recorded session, fed whole and cut at every byte.
@Suite struct RELPTests {
    /// imrelp's answers to `open`, two `syslog` commands and `close`, as they arrived.
    static let recordedAnswers = [
        "1 rsp 93 200 OK\nrelp_version=0\nrelp_software=librelp,1.11.0,http://librelp.adiscon.com\ncommands=syslog\n",
        "2 rsp 6 200 OK\n3 rsp 6 200 OK\n",
        "4 rsp 0\n0 serverclose 0\n",
    ]

    @Test func framesCarryTransactionNumbersCommandsAndLengths() {
        var client = RELPClient()
        #expect(
            String(decoding: client.openFrame(software: "xferwatch,1"), as: UTF8.self)
                == "1 open 56 relp_version=0\nrelp_software=xferwatch,1\ncommands=syslog\n")
        var frames: [UInt8] = []
        #expect(client.appendSyslog(Array("<86>1 - h a - - - héllo".utf8), to: &frames) == 2)
        #expect(client.appendSyslog([], to: &frames) == 3)
        #expect(String(decoding: frames, as: UTF8.self) == "2 syslog 24 <86>1 - h a - - - héllo\n3 syslog 0\n")
        #expect(String(decoding: client.closeFrame(), as: UTF8.self) == "4 close 0\n")
    }

    @Test func aRecordedSessionGivesTheSameEventsHoweverItIsCut() throws {
        let whole = Array(Self.recordedAnswers.joined().utf8)
        let expected: [RELPClient.Event] = [.opened, .accepted(2), .accepted(3), .closed, .serverClosing]
        for cut in 0...whole.count {
            var client = Self.clientAfterSendingTheRecordedCommands()
            var events = try client.receive(whole[..<cut])
            events += try client.receive(whole[cut...])
            #expect(events == expected, "cut at \(cut)")
        }
        var client = Self.clientAfterSendingTheRecordedCommands()
        var events: [RELPClient.Event] = []
        for byte in whole { events += try client.receive([byte]) }
        #expect(events == expected && client.isOpen)
    }

    @Test func anErrorAnswerIsARefusalOfThatMessage() throws {
        var client = Self.clientAfterSendingTheRecordedCommands()
        _ = try client.receive(Array(Self.recordedAnswers[0].utf8))
        #expect(try client.receive(Array("2 rsp 21 500 queue full, sorry\n".utf8)) == [.refused(2, "500 queue full, sorry")])
    }

    /// The receiver's bytes are not trusted: each of these ends the session with a reason.
    @Test func malformedAnswersEndTheSession() {
        let hostile = [
            "x rsp 6 200 OK\n",  // transaction number
            "1234567890 rsp 6 200 OK\n",  // ten digits
            "1 RSP 6 200 OK\n",  // command
            "1 rsp 99999999 ",  // announced length
            "1 rsp 6x200 OK\n",  // length
            "1 rsp 6 200 OKX",  // trailer
            "1 rsp 6\n",  // a length without data
            "1 hello 0\n",  // a command a client never gets
            "1 rsp 24 200 OK\nrelp_version=0\n\n\n\n\n\n\n\n",  // no syslog command offered
            "1 rsp 20 500 not you, not now\n",  // the open refused
        ]
        for text in hostile {
            var client = Self.clientAfterSendingTheRecordedCommands()
            #expect(throws: RELPClient.ProtocolError.self, "\(text.debugDescription)") { try client.receive(Array(text.utf8)) }
        }
    }

    @Test func transactionNumbersWrapAfterNineDigits() {
        var client = RELPClient()
        _ = client.openFrame(software: "x")
        client.nextTransaction = RELPClient.maximumTransaction - 1
        var frames: [UInt8] = []
        #expect(client.appendSyslog([], to: &frames) == RELPClient.maximumTransaction - 1)
        #expect(client.appendSyslog([], to: &frames) == RELPClient.maximumTransaction)
        #expect(client.appendSyslog([], to: &frames) == 1)
        #expect(String(decoding: frames, as: UTF8.self) == "999999998 syslog 0\n999999999 syslog 0\n1 syslog 0\n")
    }

    static func clientAfterSendingTheRecordedCommands() -> RELPClient {
        var client = RELPClient()
        _ = client.openFrame(software: "xferwatch,1")
        var frames: [UInt8] = []
        client.appendSyslog(Array("one".utf8), to: &frames)
        client.appendSyslog(Array("two".utf8), to: &frames)
        _ = client.closeFrame()
        return client
    }
}
