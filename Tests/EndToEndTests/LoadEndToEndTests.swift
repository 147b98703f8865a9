import Foundation
import TestSupport
import Testing

/// bench/load.py, shortened: 2,000 execve/s with 500 loopback connects/s for 20 s (the script
/// runs 10 minutes by hand), xferwatchd as the package runs it: no kernel lost records, RSS flat
/// after warm-up, no userspace drops, a scripted FTP upload made during the storm attributed and
/// alerted, curl run from memfd_create alerted as a binary with no file; then a burst beyond capacity (the agent stopped for 2 s under a 256-record backlog):
/// the kernel's losses counted and raised as agent.health, the audited processes not held up,
/// the agent still running. The script brings up its own transfer lab, so it runs outside
/// FlowEndToEnd's.
extension KernelAuditTests {
    @Test func aLoadStormLosesNothingAndABurstBeyondCapacityIsCounted() throws {
        let run = try runCommand("/usr/bin/python3", [Repo.path("bench/load.py"), "20", "2000", "4", "--burst", "--no-build"], seconds: 240)
        #expect(run.status == 0 && run.stdout.contains("all targets met"), "\(run.stdout)\n\(run.stderr.suffix(3000))")
        #expect(run.stdout.contains("kernel lost during the load: 0"))
        #expect(run.stdout.contains("agent running: True"))
    }
}
