import AuditIngest
import TestSupport
import Testing

@testable import Agent

/// Logs other kernels and distributions wrote (`Tests/Fixtures/hosts`, from go-libaudit's test
/// data): what the parser and the graph make of records this lab's kernel never writes. Their
/// whole replay output is in the golden files; these are the facts that matter most.
@Suite struct HostFixtureTests {
    /// RHEL 7 (3.10): SELinux contexts, hex-encoded `exe` of deleted binaries, records without
    /// EOE, auditd 2.4's DAEMON_CONFIG (no colon after its stamp, read as ausearch reads it) and
    /// a line that is no record (`UNKNOWN[1329] msg=?`), counted.
    @Test func rhel7sRecordsAreReadAndItsBrokenLinesCounted() throws {
        let replayed = try replayFixture("hosts/rhel7-linux-3.10.log")
        let ingest = replayed.graph.pipeline.ingest
        #expect(ingest.malformedByReason == ["no msg=audit(...) stamp": 1])
        let logind = try parse(try #require(try lines(ofFile: Repo.fixture("hosts/rhel7-linux-3.10.log")).first { $0.contains("key=\"specialfiles\"") }))
        #expect(logind.string("exe") == "/usr/lib/systemd/systemd-logind;58f98c85 (deleted)")
        #expect(logind.string("subj") == "system_u:system_r:systemd_logind_t:s0")
        #expect(replayed.flows.isEmpty && replayed.alerts.isEmpty)
    }

    /// Ubuntu 16.10 (4.8): an execve with its argv, a connect in progress to a link-local
    /// address, an accept by sshd; nothing there is a transfer.
    @Test func ubuntu1610sExecAndSocketCallsAreRead() throws {
        let replayed = try replayFixture("hosts/ubuntu16.10-linux-4.8.log")
        #expect(replayed.graph.pipeline.ingest.malformed == 0)
        let uname = try #require(replayed.graph.processes.record(pid: 10043))
        #expect(uname.executable == "/bin/uname" && uname.arguments == ["uname", "-a"] && uname.ppid == 10027)
        #expect(uname.workingDirectory == "/home/andrew_kroh")
        let all = try lines(ofFile: Repo.fixture("hosts/ubuntu16.10-linux-4.8.log"))
        let connect = try parse(try #require(all.first { $0.contains("syscall=42") }))
        #expect(SyscallCatalog.standard.kind(of: connect) == .connect)
        let address = try parse(try #require(all.first { $0.contains("audit(1492753107.096:9004): saddr=") }))
        #expect(SocketAddress(hex: try #require(address.rawValue("saddr"))) == .inet(address: IPAddress(bytes: [169, 254, 169, 254]), port: 80))
        #expect(replayed.flows.isEmpty && replayed.alerts.isEmpty)
    }

    /// Ubuntu 20.04 (5.15): PATH records with file capability fields, an event without EOE, a
    /// set-uid shell run by a user.
    @Test func ubuntu2004sSetUIDShellIsAProcess() throws {
        let replayed = try replayFixture("hosts/ubuntu20.04-linux-5.15.log")
        #expect(replayed.graph.pipeline.ingest.malformed == 0)
        let dash = try #require(replayed.graph.processes.record(pid: 2_380_168))
        #expect(dash.executable == "/usr/bin/dash" && dash.arguments == ["dash", "-p"])
        #expect(dash.uid == 1005 && dash.euid == 0 && dash.auid == 1005)
    }

    /// Ubuntu 24.04 on aarch64 (6.8): the arch is read, and syscall 37 there (linkat) is none
    /// the agent acts on, while on x86_64 it would be alarm.
    @Test func aarch64RecordsAreNumberedForTheirArchitecture() throws {
        let replayed = try replayFixture("hosts/ubuntu24.04-linux-6.8-aarch64.log")
        #expect(replayed.graph.pipeline.ingest.malformed == 0)
        let line = try #require(try lines(ofFile: Repo.fixture("hosts/ubuntu24.04-linux-6.8-aarch64.log")).first)
        let syscall = try parse(line)
        #expect(syscall.hexInteger("arch") == 0xc000_00b7)
        #expect(SyscallCatalog.standard.kind(of: syscall) == nil)
        #expect(replayed.graph.processes.count == 0)
    }
}
