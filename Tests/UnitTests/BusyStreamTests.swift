import TestSupport
import Testing

@testable import Agent

/// When the audit stream counts as busy (reads are batched only then).
@Suite struct BusyStreamTests {
    @Test func busyOnlyWhileTheRecordRateIsHigh() {
        var stream = BusyStream()
        // A few processes a second: never busy.
        for time in stride(from: Int64(0), to: 1_000, by: 20) { stream.note(records: 6, now: time) }
        #expect(!stream.isBusy)
        // A storm: busy within its first window, and while it lasts.
        stream.note(records: 60, now: 1_000)
        #expect(!stream.isBusy)
        stream.note(records: 60, now: 1_050)
        #expect(stream.isBusy)
        stream.note(records: 10, now: 1_120)
        #expect(stream.isBusy, "the window just ended held 120 records")
        // The window after a busy one was quiet: no longer busy.
        stream.note(records: 1, now: 1_230)
        #expect(!stream.isBusy)
        // A quiet spell of seconds after a busy window: its first record is read at once.
        for time in stride(from: Int64(2_000), to: 2_100, by: 1) { stream.note(records: 2, now: time) }
        #expect(stream.isBusy)
        stream.note(records: 1, now: 5_000)
        #expect(!stream.isBusy)
    }
}
