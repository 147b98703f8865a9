import Foundation
import TestSupport
import Testing

/// The agent's log under systemd: it needs root (journald runs in a private mount namespace).
@Suite struct JournalEndToEndTests {
    /// Under systemd (JOURNAL_STREAM names the stream stderr is) each line carries its syslog
    /// priority, and journald (Debian's own, in a private mount namespace) files it there:
    /// `journalctl -p warning` shows the agent's warnings and errors, `-p err` its errors only.
    /// Stderr anywhere else stays plain.
    @Test func logLinesCarryTheirPriorityForTheJournal() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        _ = try runCommand("/bin/chmod", ["0755", directory])
        // A run that starts (info lines), warns (a metrics directory it cannot write) and ends
        // with its input (auditd's plugin stream), then one that cannot start (an error).
        let warns = directory + "/warns.conf"
        try """
        [agent]
        control_socket = "\(directory)/agent.sock"
        state_dir = "\(directory)/state"
        [audit]
        source = "audisp"
        [output.file]
        path = "\(directory)/log/alerts.jsonl"
        [output.metrics]
        enabled = true
        path = "/proc/xferwatch.prom"
        [output.syslog]
        enabled = false

        """.write(toFile: warns, atomically: true, encoding: .utf8)
        let fails = directory + "/fails.conf"
        try "[agent]\nuser = \"no-such-user-xw\"\ncontrol_socket = \"\(directory)/fails.sock\"\nstate_dir = \"\(directory)/state\"\n"
            .write(toFile: fails, atomically: true, encoding: .utf8)
        let agent = Repo.xferwatchd
        let journal = try runCommand(Repo.path("Tests/support/journal-lab"), ["\(agent) run --config \(warns) < /dev/null; \(agent) run --config \(fails)"])
        try #require(journal.status == 0, "\(journal)")
        let sections = Dictionary(
            uniqueKeysWithValues: journal.stdout.components(separatedBy: "== ").dropFirst().map { section in
                (String(section.prefix { $0 != "\n" }), section.split(separator: "\n").dropFirst().map(String.init))
            })
        let errors = sections["err"] ?? [], warnings = sections["warning"] ?? [], all = sections["all"] ?? []
        let error = "xferwatchd: error: user no-such-user-xw does not exist"
        let warning = "xferwatchd: warning: _xferwatch cannot make files in /proc"
        let info = "xferwatchd: info: running as _xferwatch"
        #expect(errors.contains { $0.hasPrefix(error) } && !errors.contains { $0.hasPrefix(warning) }, "journalctl -p err: \(errors)")
        #expect(warnings.contains { $0.hasPrefix(error) } && warnings.contains { $0.hasPrefix(warning) }, "journalctl -p warning: \(warnings)")
        #expect(!warnings.contains { $0.hasPrefix(info) }, "info lines are not warnings: \(warnings)")
        #expect(all.contains { $0.hasPrefix(info) }, "journalctl: \(all)")
        #expect(!all.contains { $0.hasPrefix("<") }, "journald took the prefixes off: \(all)")
        // Stderr that is not the journal gets no prefix.
        let plain = try runCommand(Repo.xferwatchd, ["run", "--config", fails])
        #expect(plain.stderr.hasPrefix(error), "\(plain.stderr)")
    }
}
