import Foundation
import Testing

@testable import Agent

/// The loop's epoll set says what poll() would say of the same descriptors, turn after turn,
/// also when a source closes a descriptor and a new one takes its number.
@Suite struct DescriptorSetTests {
    /// A pipe: (read end, write end).
    func makePipe() throws -> (Int32, Int32) {
        var ends: [Int32] = [0, 0]
        try #require(pipe(&ends) == 0)
        return (ends[0], ends[1])
    }

    /// One turn as the loop makes it: `sources` are each source's descriptors and their count
    /// of closed ones; returns every descriptor's revents, in order.
    func turn(_ set: DescriptorSet, _ sources: [([Int32], Int)], events: Int16 = Int16(POLLIN)) -> [Int16] {
        var fds = sources.flatMap { $0.0.map { pollfd(fd: $0, events: events, revents: 0) } }
        set.update(fds, counts: sources.map(\.0.count), changes: sources.map(\.1))
        _ = set.wait(&fds, timeout: 0)
        return fds.map(\.revents)
    }

    @Test func readinessIsPollsTurnAfterTurn() throws {
        let set = try #require(DescriptorSet(sourceCount: 2))
        let (a, aIn) = try makePipe()
        let (b, bIn) = try makePipe()
        defer { for fd in [a, aIn, b, bIn] { close(fd) } }
        #expect(turn(set, [([a], 0), ([b], 0)]) == [0, 0])
        #expect(write(bIn, "x", 1) == 1)
        #expect(turn(set, [([a], 0), ([b], 0)]) == [0, Int16(POLLIN)])
        // Level-triggered, like poll: unread data is reported again.
        #expect(turn(set, [([a], 0), ([b], 0)]) == [0, Int16(POLLIN)])
        close(aIn)
        #expect(turn(set, [([a], 0), ([b], 0)]) == [Int16(POLLHUP), Int16(POLLIN)])
        // A negative descriptor is left out, as poll leaves it.
        #expect(turn(set, [([-1], 0), ([b], 0)]) == [0, Int16(POLLIN)])
    }

    /// A source closes a descriptor and gets a new one with the same number in the same turn:
    /// its count of closed descriptors moves, and the new one is the one waited on.
    @Test func aReusedNumberIsRegisteredAgain() throws {
        let set = try #require(DescriptorSet(sourceCount: 1))
        let (old, oldIn) = try makePipe()
        #expect(turn(set, [([old], 0)]) == [0])
        close(oldIn)
        // Another pipe takes the number at once (tests on other threads open descriptors too).
        let (new, newIn) = try makePipe()
        try #require(dup2(new, old) == old)
        close(new)
        defer { for fd in [old, newIn] { close(fd) } }
        #expect(write(newIn, "x", 1) == 1)
        #expect(turn(set, [([old], 1)]) == [Int16(POLLIN)])
    }

    /// A number one source closed is another's new descriptor in the same turn: the first's
    /// removal must not take the second's registration with it.
    @Test func aNumberMovingBetweenSourcesStaysRegistered() throws {
        let set = try #require(DescriptorSet(sourceCount: 2))
        let (first, firstIn) = try makePipe()
        let (other, otherIn) = try makePipe()
        defer { for fd in [other, otherIn] { close(fd) } }
        #expect(turn(set, [([first], 0), ([other], 0)]) == [0, 0])
        close(firstIn)
        let (new, movedIn) = try makePipe()
        let moved = first
        try #require(dup2(new, moved) == moved)
        close(new)
        defer { for fd in [moved, movedIn] { close(fd) } }
        #expect(write(movedIn, "x", 1) == 1)
        // The second source lists the number ahead of its own; the first lists nothing now.
        #expect(turn(set, [([], 1), ([moved, other], 0)]) == [Int16(POLLIN), 0])
        #expect(turn(set, [([], 1), ([moved, other], 0)]) == [Int16(POLLIN), 0])
    }

    /// Descriptors epoll refuses are what poll says of them: a regular file and /dev/null are
    /// always readable (and the wait does not sleep), a number not open is POLLNVAL.
    @Test func filesDevicesAndClosedNumbersAreAsPollSaysAtOnce() throws {
        let set = try #require(DescriptorSet(sourceCount: 1))
        let file = open("/etc/hostname", O_RDONLY)
        let null = open("/dev/null", O_RDONLY)
        let closed: Int32 = 999_999  // no test opens that many; a freed number may be reused at once
        try #require(fcntl(closed, F_GETFD) == -1)
        defer { for fd in [file, null] { close(fd) } }
        let started = Date()
        var fds = [file, null, closed].map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        set.update(fds, counts: [3], changes: [0])
        #expect(set.wait(&fds, timeout: 5000) == 3)
        #expect(Date().timeIntervalSince(started) < 4, "no wait while a descriptor is always ready")
        #expect(fds.map(\.revents) == [Int16(POLLIN), Int16(POLLIN), Int16(POLLNVAL)])
    }

    /// The wait sleeps until a descriptor is ready, as long as it is asked to at most.
    @Test func theWaitEndsWhenADescriptorBecomesReady() throws {
        let set = try #require(DescriptorSet(sourceCount: 1))
        let (read, write) = try makePipe()
        defer { for fd in [read, write] { close(fd) } }
        var fds = [pollfd(fd: read, events: Int16(POLLIN), revents: 0)]
        set.update(fds, counts: [1], changes: [0])
        let writer = Thread {
            usleep(50_000); _ = Glibc.write(write, "x", 1)
        }
        writer.start()
        #expect(set.wait(&fds, timeout: 30_000) == 1)
        #expect(fds[0].revents == Int16(POLLIN))
    }
}
