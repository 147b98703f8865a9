import AgentConfig
import KernelAudit

#if canImport(Glibc)
    import Glibc
#endif

/// `xferwatchd cleanup`, which systemd runs after every stop of the service: a run that did not
/// stop (SIGKILL, a crash) leaves its rules auditing the host and, as the audit daemon, its
/// exclusion keeping PROCTITLE out of auditd's log until the next start. This gives the kernel
/// back as that run found it; a running agent's rules and flag are left alone. Returns the
/// exit status.
public func removeLeftoversOfUnfinishedRuns(configuration: AgentConfiguration, log: Logger) -> Int32 {
    guard configuration.audit.source.isKernel else {
        log.info("source = \"\(configuration.audit.source.rawValue)\": the agent loads no audit rules, nothing to remove")
        return 0
    }
    let isRunningAgent = { (pid: UInt32) in pid != UInt32(getpid()) && RunMarker.isAgent(Int32(bitPattern: pid)) }
    do {
        let control = try AuditControl()
        let removed = try AuditSession.removeLeftovers(key: configuration.audit.ruleKey, control: control, isRunningAgent: isRunningAgent)
        for rule in removed { log.info("removed an audit rule left by a run that did not stop: \(rule)") }
        // The flag as the killed run found it (its marker says), unless a live daemon holds the
        // socket now: auditd may have turned auditing on for itself.
        if let before = RunMarker(stateDirectory: configuration.agent.stateDirectory).unfinishedRun()?.auditEnabledBefore {
            let now = try control.status()
            if now.enabled != before, now.enabled != 2, before != 2, now.pid == 0 || kill(pid_t(now.pid), 0) != 0 {
                try control.setEnabled(before)
                log.info("audit enabled flag set back to \(before), as the run that did not stop found it")
            }
        }
        if removed.isEmpty { log.info("no audit rule of an unfinished run is left") }
        return 0
    } catch {
        log.error("cannot remove what an unfinished run left in the kernel: \(error)")
        return 1
    }
}
