import TestSupport
import Testing

@testable import Agent

/// Destroy notifications wait for the audit stream (`HeldDestroys`): a session's close must not
/// reach the flow tracker before the data connect the kernel audited earlier.
@Suite struct HeldDestroysTests {
    @Test func notificationsWaitForTheAuditStreamOrTheirTimeAndKeepTheirOrder() {
        var held = HeldDestroys<String>(maximumWait: 50, capacity: 3)
        held.hold("control closed", arrival: 1_000)
        held.hold("data closed", arrival: 1_004)
        var released: [String] = []
        // The newest audit event read is older than both: kauditd has not caught up.
        held.release(auditTime: 999, now: 1_010) { notification, _ in released.append(notification) }
        #expect(released.isEmpty && held.count == 2)
        // An event stamped at the first's arrival: everything before that close has been read.
        held.release(auditTime: 1_000, now: 1_012) { notification, arrival in released.append("\(notification) at \(arrival)") }
        #expect(released == ["control closed at 1000"] && held.count == 1)
        // A quiet stream: the second goes on after its wait.
        held.release(auditTime: 1_000, now: 1_053) { notification, _ in released.append(notification) }
        #expect(released.last == "control closed at 1000" && held.count == 1)
        held.release(auditTime: 1_000, now: 1_054) { notification, _ in released.append(notification) }
        #expect(released.last == "data closed" && held.count == 0)
    }

    @Test func aBurstBeyondCapacityAndTheStopLetEverythingGoInOrder() {
        var held = HeldDestroys<Int>(maximumWait: 50, capacity: 3)
        for n in 0..<5 { held.hold(n, arrival: 2_000) }
        var released: [Int] = []
        held.release(auditTime: 0, now: 2_001) { n, _ in released.append(n) }
        #expect(released == [0, 1] && held.count == 3, "the oldest beyond capacity go on at once")
        for n in 5..<2_000 { held.hold(n, arrival: 2_002) }
        held.releaseAll { n, _ in released.append(n) }
        #expect(released == Array(0..<2_000) && held.count == 0)
        held.hold(7, arrival: 3_000)
        #expect(held.count == 1, "usable after a release of everything")
    }
}
