import Runtime

#if canImport(Glibc)
    import Glibc
#endif

/// Whether this host starts auditd at boot: the daemon is installed and enabled, by systemd
/// (a `*.wants/auditd.service` link, not masked) or, without systemd, by an init script link
/// (`/etc/rc?.d/S*auditd`). Such a host's auditd must find the audit socket free whenever it
/// starts, even after the agent.
struct AuditDaemonInstallation {
    /// Where the host's file system is, "/" but in tests.
    var root = "/"

    /// This host's answer. `XFERWATCH_AUDITD_AT_BOOT=yes|no` stands in for the probe, for
    /// tests only: the test machine's own auditd links must not decide what the agent does.
    static var onThisHost: Bool {
        switch getenv("XFERWATCH_AUDITD_AT_BOOT").map({ String(cString: $0) }) {
        case "yes": true
        case "no": false
        default: AuditDaemonInstallation().startsAtBoot
        }
    }

    var startsAtBoot: Bool {
        guard ["sbin/auditd", "usr/sbin/auditd"].contains(where: { access(root + $0, X_OK) == 0 }) else { return false }
        if access(root + "run/systemd/system", F_OK) == 0 {
            if symbolicLinkTarget(root + "etc/systemd/system/auditd.service") == "/dev/null" { return false }  // masked
            let wants = (directoryEntries(root + "etc/systemd/system") ?? []).filter { $0.hasSuffix(".wants") }
            return wants.contains { access(root + "etc/systemd/system/\($0)/auditd.service", F_OK) == 0 }
        }
        return ["rc2.d", "rc3.d", "rc4.d", "rc5.d", "rcS.d"].contains { directory in
            (directoryEntries(root + "etc/" + directory) ?? []).contains { $0.hasPrefix("S") && $0.hasSuffix("auditd") }
        }
    }
}
