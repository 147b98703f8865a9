import Foundation
import TestSupport
import Testing

/// The tests' child processes: every end-to-end test runs its agent and clients through them,
/// many at once while the unit tests run in parallel.
@Suite struct ChildTests {
    /// Foundation's Process crashed the runner when children started and ended on several
    /// threads at once (a CI run lost its whole suite to it). Each child here must keep its
    /// own output and status.
    @Test func childrenStartedOnManyThreadsAtOnceKeepTheirOwnOutputAndStatus() async throws {
        let threads = 8
        let each = 150
        let failures = try await withThrowingTaskGroup(of: [String].self) { group in
            for thread in 0..<threads {
                group.addTask {
                    var failures: [String] = []
                    for run in 0..<each {
                        let tag = "\(thread)-\(run)"
                        let child = try Child("/bin/sh", ["-c", "echo out \(tag); echo err \(tag) >&2; exit \(run % 7)"])
                        child.waitUntilExit()
                        let status = child.stop()
                        if status != Int32(run % 7) || child.stdout != "out \(tag)\n" || child.stderr != "err \(tag)\n" {
                            failures.append("\(tag): status \(status), stdout \(child.stdout.debugDescription), stderr \(child.stderr.debugDescription)")
                        }
                    }
                    return failures
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        #expect(failures.isEmpty, "\(failures.prefix(5))")
    }

    /// Ignored signals survive exec and a blocked mask is inherited: the runner's must not reach
    /// the child (auditd never finished shutting down under an ignored SIGALRM).
    @Test func theChildStartsWithNoSignalIgnoredOrBlockedAndASignalEndingItIsItsStatus() throws {
        var alarm = sigset_t()
        var before = sigset_t()
        sigemptyset(&alarm)
        sigaddset(&alarm, SIGALRM)
        sigaddset(&alarm, SIGUSR2)
        pthread_sigmask(SIG_BLOCK, &alarm, &before)
        let disposition = signal(SIGALRM, SIG_IGN)
        let child = try Child("/bin/sh", ["-c", "grep -E '^Sig(Ign|Blk)' /proc/self/status; kill -ALRM $$; sleep 30"])
        signal(SIGALRM, disposition)
        pthread_sigmask(SIG_SETMASK, &before, nil)
        child.waitUntilExit()
        #expect(child.stop() == SIGALRM)
        let masks = Dictionary(
            uniqueKeysWithValues: child.stdout.split(separator: "\n").map { line in
                let parts = line.split(separator: "\t")
                return (String(parts[0]), UInt64(parts.last ?? "", radix: 16) ?? .max)
            })
        // glibc keeps its own two real-time signals (32, 33) out of every full set.
        #expect(masks["SigBlk:"] == 0)
        #expect(masks["SigIgn:"].map { $0 & 0x7fff_ffff } == 0, "\(child.stdout)")
    }

    @Test func theChildInheritsNoDescriptorButItsOwnThree() throws {
        let held = Pipe()
        let child = try Child("/bin/sh", ["-c", "ls /proc/self/fd"], stdin: FileHandle(forReadingAtPath: "/dev/null"))
        child.waitUntilExit()
        #expect(child.stop() == 0)
        // 0, 1, 2 and the directory ls reads.
        #expect(child.stdout.split(separator: "\n").count == 4, "\(child.stdout)")
        try held.fileHandleForWriting.close()
    }

    @Test func aMissingExecutableIsAnError() {
        #expect(throws: Child.SpawnError.self) { try Child("/nonexistent/xferwatch-test", []) }
    }
}
