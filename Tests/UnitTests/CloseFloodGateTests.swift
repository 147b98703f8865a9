import HostState
import Testing

/// When socket closes stop being heard and when they are heard again: windows of 250 ms
/// against the configured rate, the pause, and a flood that goes on.
@Suite struct CloseFloodGateTests {
    /// The gate's verdict on `closes` at `now`, and whether it opens at `opens`.
    final class Gate {
        var gate: CloseFloodGate
        init(perSecond: Int, pauseMilliseconds: Int64) { gate = CloseFloodGate(perSecond: perSecond, pauseMilliseconds: pauseMilliseconds) }
        func heard(_ closes: Int, at now: Int64) -> CloseFloodGate.Verdict { gate.heard(closes, now: now) }
        func opens(at now: Int64) -> Bool { gate.opens(now: now) }
    }

    @Test func closesUnderTheRateKeepTheGateOpen() {
        let g = Gate(perSecond: 1000, pauseMilliseconds: 5000)
        // 250 in each 250 ms window is 1,000 a second: not past it.
        for window in 0..<8 {
            for step in 0..<5 { #expect(g.heard(50, at: Int64(window * 250 + step * 40)) == .open) }
        }
        #expect(!g.gate.isShut)
    }

    @Test func aFloodShutsTheGateForThePauseThenItMeasuresAgain() {
        let g = Gate(perSecond: 1000, pauseMilliseconds: 5000)
        #expect(g.heard(200, at: 1000) == .open)
        #expect(g.heard(51, at: 1100) == .shut(continuing: false))
        #expect(g.gate.isShut && g.gate.shutUntil == 6100)
        // Shut: nothing more is counted, and it stays shut until the pause is over.
        #expect(g.heard(10_000, at: 2000) == .open)
        #expect(!g.opens(at: 6099))
        #expect(g.opens(at: 6100))
        #expect(!g.gate.isShut)
        // The flood goes on: shut again in the first window after the pause.
        #expect(g.heard(300, at: 6200) == .shut(continuing: true))
        #expect(g.opens(at: 11_200))
        // A quiet while, then a new flood.
        #expect(g.heard(10, at: 11_300) == .open)
        #expect(g.heard(10, at: 12_000) == .open)
        #expect(g.heard(300, at: 12_100) == .shut(continuing: false))
    }

    @Test func closesInAnEarlierWindowDoNotAddUp() {
        let g = Gate(perSecond: 1000, pauseMilliseconds: 5000)
        #expect(g.heard(200, at: 0) == .open)
        #expect(g.heard(200, at: 250) == .open)
        #expect(g.heard(200, at: 499) == .shut(continuing: false))
    }

    @Test func aRateOfZeroNeverShuts() {
        let g = Gate(perSecond: 0, pauseMilliseconds: 5000)
        #expect(g.heard(1_000_000, at: 0) == .open)
        #expect(!g.gate.isShut)
    }

    @Test func aGateThatCouldNotOpenTriesAfterAnotherPause() {
        let g = Gate(perSecond: 100, pauseMilliseconds: 1000)
        #expect(g.heard(100, at: 0) == .shut(continuing: false))
        #expect(g.opens(at: 1000))
        g.gate.staysShut(now: 1000)
        #expect(g.gate.isShut)
        #expect(!g.opens(at: 1999))
        #expect(g.opens(at: 2000))
    }
}
