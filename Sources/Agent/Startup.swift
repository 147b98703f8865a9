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
        // node_exporter, another user, reads the metrics file.
        if configuration.output.metrics.enabled { directories.append((parentDirectory(configuration.output.metrics.path), 0o755)) }
        // Members of the control group must reach the socket through it.
        directories.append((parentDirectory(configuration.agent.controlSocket), 0o755))
        for (directory, mode) in directories where access(directory, F_OK) != 0 {
            if let problem = createDirectories(directory, mode: mode) { throw PrivilegeError("cannot create \(problem)") }
            if let account { try PrivilegeDrop.give(directory: directory, to: account, mode: mode) }
        }
    }

    /// After the drop: what the agent must write and cannot (state_dir and what an earlier run
    /// left in it, the alert file and its directory), each with the reason. Alerts with nowhere
    /// to go would wait in memory and be lost at the next stop, so the agent does not start.
    func unwritablePaths() -> [String] {
        var problems: [String] = []
        func check(_ path: String, mode: Int32) {
            if access(path, mode) != 0 && errno != ENOENT { problems.append("\(path) (\(String(cString: strerror(errno))))") }
        }
        var pending = [(configuration.agent.stateDirectory, 0)]
        while let (path, depth) = pending.popLast() {
            var info = stat()
            guard lstat(path, &info) == 0 else { continue }
            guard info.st_mode & S_IFMT == S_IFDIR else {
                if info.st_mode & S_IFMT == S_IFREG { check(path, mode: R_OK | W_OK) }
                continue
            }
            check(path, mode: R_OK | W_OK | X_OK)
            // state_dir holds a few files and the spool's directory: a short walk.
            guard depth < 3, let entries = directoryEntries(path) else { continue }
            pending += entries.map { (path + "/" + $0, depth + 1) }
        }
        if configuration.output.file.enabled {
            let path = configuration.output.file.path
            check(path, mode: W_OK)
            // Rotation renames the file within its directory and makes a new one there. Without
            // rotation (max_size = 0) a file already there is enough: see `warnings`.
            if configuration.output.file.maximumBytes > 0 || access(path, F_OK) != 0 { check(parentDirectory(path), mode: W_OK | X_OK) }
        }
        return problems
    }

    /// After the drop, what works only in part: an alert file whose directory is not writable
    /// (allowed with max_size = 0: logrotate must make the file again after a move), a metrics
    /// file that cannot be written at all.
    func warnings(user: String) -> [String] {
        var warnings: [String] = []
        let file = configuration.output.file
        if file.enabled, access(parentDirectory(file.path), W_OK | X_OK) != 0 {
            warnings.append(
                "\(user) cannot make files in \(parentDirectory(file.path)): after logrotate moves \(file.path), its create directive must make "
                    + "the new one (create 0640 \(user) adm), or alerts wait in memory until the file is there")
        }
        let metrics = configuration.output.metrics
        let metricsDirectory = parentDirectory(metrics.path)
        if metrics.enabled, access(metricsDirectory, W_OK | X_OK) != 0 {
            let reason = String(cString: strerror(errno))
            warnings.append(
                "\(user) cannot make files in \(metricsDirectory) (\(reason)): \(metrics.path) will not be written; give the directory to "
                    + "\(user) (under systemd, list it in ReadWritePaths= too)")
        }
        return warnings
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
            case .auditControl where source == .unicast || source == .auto:
                log.warning("without CAP_AUDIT_CONTROL the agent cannot check or restore the audit rules and status")
            case .auditRead where source == .multicast || source == .auto:
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
