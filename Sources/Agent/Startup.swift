import AgentConfig
import Privileges
import Runtime

#if canImport(Glibc)
    import Glibc
#endif

/// Start-up as root: the account to become, the directories the agent writes (made for that
/// account), then the drop to it keeping only the capabilities the agent uses.
struct Startup {
    let configuration: AgentConfiguration
    let log: Logger

    /// The account `[agent] user` names; nil when staying root (or not started as root).
    func account() throws(PrivilegeError) -> PrivilegeDrop.Account? {
        guard getuid() == 0 && !configuration.agent.keepsRoot else { return nil }
        return try PrivilegeDrop.account(named: configuration.agent.user)
    }

    /// The directories the agent writes, made now (as root); those it makes are its user's.
    func prepareDirectories(for account: PrivilegeDrop.Account?) throws(PrivilegeError) {
        var directories = [(configuration.agent.stateDirectory, mode_t(0o750))]
        if configuration.output.file.enabled { directories.append((parentDirectory(configuration.output.file.path), 0o750)) }
        // Members of the control group must reach the socket through it.
        directories.append((parentDirectory(configuration.agent.controlSocket), 0o755))
        for (directory, mode) in directories where access(directory, F_OK) != 0 {
            if let problem = createDirectories(directory, mode: mode) { throw PrivilegeError("cannot create \(problem)") }
            if let account { try PrivilegeDrop.give(directory: directory, to: account, mode: mode) }
        }
    }

    /// Becomes `account` before any thread starts (capabilities are per thread); false after
    /// logging why it could not. `source` says which missing capability matters.
    func dropPrivileges(to account: PrivilegeDrop.Account?, source: AuditSourceMode) -> Bool {
        if configuration.agent.keepsRoot && getuid() == 0 {
            log.warning("staying root with every capability ([agent] user = \"root\")")
            return true
        }
        let missing: [KeptCapability]
        do { missing = try PrivilegeDrop.drop(to: account) } catch {
            log.error("cannot drop privileges: \(error)")
            return false
        }
        let now = ProcessPrivileges.current()
        log.info("running as \(now.user) (uid \(now.uid)) with \(now.effective.isEmpty ? "no capabilities" : now.effective.joined(separator: ", "))")
        for capability in missing {
            switch capability {
            case .auditControl where source == .unicast:
                log.warning("without CAP_AUDIT_CONTROL the agent cannot check or restore the audit rules and status")
            case .auditRead where source == .multicast:
                log.warning("without CAP_AUDIT_READ the multicast audit stream delivers nothing")
            case .sysPtrace:
                log.warning("without CAP_SYS_PTRACE other users' executables and sockets cannot be read from /proc")
            case .dacReadSearch:
                log.warning("without CAP_DAC_READ_SEARCH other users' /proc/<pid>/fd and unreadable executables are out of reach")
            case .netRaw where configuration.inspection.enabled:
                log.warning("without CAP_NET_RAW the packet tap cannot open: protocols are known by port and client name only")
            default:
                break
            }
        }
        return true
    }
}
