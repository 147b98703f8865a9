import Foundation
import TestSupport
import Testing

@testable import Agent

/// Whether auditd starts at boot, read from a host's files: `auto` leaves the audit socket free
/// on such a host. Each case is a small root directory laid out as a Debian host would be.
@Suite struct AuditDaemonInstallationTests {
    /// A root with `files` (empty regular files, executable under sbin) and `links` (path -> target).
    func host(files: [String], links: [String: String] = [:]) throws -> String {
        let root = try makeTemporaryDirectory("xferwatch-root") + "/"
        for file in files {
            try FileManager.default.createDirectory(atPath: root + parentDirectory(file), withIntermediateDirectories: true)
            FileManager.default.createFile(atPath: root + file, contents: Data(), attributes: [.posixPermissions: 0o755])
        }
        for (path, target) in links {
            try FileManager.default.createDirectory(atPath: root + parentDirectory(path), withIntermediateDirectories: true)
            try FileManager.default.createSymbolicLink(atPath: root + path, withDestinationPath: target)
        }
        return root
    }

    func parentDirectory(_ path: String) -> String { (path as NSString).deletingLastPathComponent }

    func startsAtBoot(_ root: String) -> Bool {
        defer { try? FileManager.default.removeItem(atPath: root) }
        return AuditDaemonInstallation(root: root).startsAtBoot
    }

    @Test func systemdHostsAskTheirWantsLinks() throws {
        let unit = "/lib/systemd/system/auditd.service"
        let wanted = "etc/systemd/system/multi-user.target.wants/auditd.service"
        #expect(startsAtBoot(try host(files: ["usr/sbin/auditd", "run/systemd/system/.keep"], links: [wanted: unit])))
        // Installed, not enabled (systemctl disable removed the link): the init script links do not count under systemd.
        #expect(!startsAtBoot(try host(files: ["usr/sbin/auditd", "run/systemd/system/.keep"], links: ["etc/rc2.d/S01auditd": "../init.d/auditd"])))
        // Masked.
        #expect(
            !startsAtBoot(
                try host(files: ["usr/sbin/auditd", "run/systemd/system/.keep"], links: [wanted: unit, "etc/systemd/system/auditd.service": "/dev/null"])))
        // Enabled, but the package was removed.
        #expect(!startsAtBoot(try host(files: ["run/systemd/system/.keep"], links: [wanted: unit])))
    }

    @Test func hostsWithoutSystemdAskTheirInitScriptLinks() throws {
        #expect(startsAtBoot(try host(files: ["sbin/auditd"], links: ["etc/rc2.d/S01auditd": "../init.d/auditd"])))
        // update-rc.d disable turns S into K links.
        #expect(!startsAtBoot(try host(files: ["sbin/auditd"], links: ["etc/rc2.d/K01auditd": "../init.d/auditd"])))
        #expect(!startsAtBoot(try host(files: ["sbin/auditd"])))
    }
}
