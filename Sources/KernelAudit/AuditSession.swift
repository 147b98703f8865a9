import AuditIngest

#if canImport(Glibc)
    import Glibc
#endif

/// The kernel state xferwatchd owns while it runs, and gives back when it stops: its rules,
/// and in unicast mode the audit pid and the enabled flag as they were found.
public final class AuditSession {
    public struct Settings: Sendable {
        public var backlogLimit: UInt32
        public var rateLimit: UInt32
        public var receiveBufferBytes: Int

        public init(backlogLimit: UInt32, rateLimit: UInt32, receiveBufferBytes: Int) {
            self.backlogLimit = backlogLimit
            self.rateLimit = rateLimit
            self.receiveBufferBytes = receiveBufferBytes
        }
    }

    public let stream: AuditStream
    public let control: AuditControl
    public let initialStatus: AuditStatus
    /// The enabled flag to give back at stop: as found, or as a killed earlier run found it
    /// (that run turned auditing on and could not turn it off again).
    public let enabledToRestore: UInt32
    public let ruleKey: String
    public private(set) var rules: [KernelRule] = []
    public private(set) var rulesReinstalled = 0
    /// Processes whose datagrams are not audited (`quietDatagrams`), with the rules that say so.
    public private(set) var quietedSenders: [Int32: [KernelRule]] = [:]
    /// The exclude rules for record types xferwatch never reads that it added, while it is the
    /// audit daemon.
    public private(set) var exclusions: [(recordType: String, rule: KernelRule)] = []
    /// Every audited syscall makes a PROCTITLE record, the caller's command line read from its
    /// memory and hex-encoded in its own context. xferwatch takes argv from EXECVE and the
    /// process from its table, so it reads none; beside another reader they are left alone.
    static let unreadRecordTypes = ["PROCTITLE"]
    private let settings: Settings
    private let log: (String) -> Void
    private var closed = false

    /// Takes the audit stream in `mode` and installs `specs`. On any failure the kernel is
    /// put back as it was before the error is thrown.
    public init(
        mode: NetlinkAuditReader.Mode, settings: Settings, specs: [AuditRuleSpec], enabledBeforeKilledRun: UInt32? = nil,
        log: @escaping (String) -> Void
    ) throws(KernelAuditError) {
        control = try AuditControl()
        initialStatus = try control.status()
        enabledToRestore = enabledBeforeKilledRun ?? initialStatus.enabled
        ruleKey = specs.first?.key ?? ""
        self.settings = settings
        self.log = log
        if mode == .unicast, initialStatus.pid != 0, kill(pid_t(initialStatus.pid), 0) == 0 {
            throw KernelAuditError(
                operation: "become the audit daemon: pid \(initialStatus.pid) holds the audit socket (use source = \"multicast\")", code: EBUSY)
        }
        stream = AuditStream(reader: try NetlinkAuditReader(mode: mode, receiveBufferBytes: settings.receiveBufferBytes))
        do {
            if mode == .unicast { try applyDaemonSettings() }
            try removeStaleRules()
            for spec in specs {
                let rule = try control.compile(spec)
                try control.add(rule)
                rules.append(rule)
            }
            if mode == .unicast { excludeUnreadRecords() }
            if initialStatus.enabled == 0 { try control.setEnabled(1) }
        } catch {
            close()
            throw error
        }
    }

    deinit { close() }

    /// Never make audited processes wait for us: a full backlog loses records (counted by the
    /// kernel) instead of stalling the host.
    private func applyDaemonSettings() throws(KernelAuditError) {
        try control.setBacklogWaitTime(0)
        try control.setBacklogLimit(settings.backlogLimit)
        try control.setRateLimit(settings.rateLimit)
    }

    /// Gives the audit socket up to whoever asks for it next, going on with the multicast
    /// group: it is joined before the audit pid is cleared, and what the unicast socket still
    /// holds goes to `handle`, so no record is lost or repeated.
    public func handOver(_ handle: (UInt16, UnsafeRawBufferPointer) -> Void) throws(KernelAuditError) {
        guard stream.mode == .unicast else { return }
        // Beside another daemon our exceptions would be its exceptions too.
        for pid in Array(quietedSenders.keys) { auditDatagrams(of: pid) }
        removeExclusions()
        let multicast = try NetlinkAuditReader(mode: .multicast, receiveBufferBytes: settings.receiveBufferBytes)
        try stream.switchTo(multicast, release: { () throws(KernelAuditError) in try control.clearAuditPid() }, handle: handle)
    }

    /// Becomes the audit daemon when no one holds the audit socket, leaving the multicast group
    /// once the unicast socket receives (throws EEXIST when a daemon holds it after all).
    public func takeOver(_ handle: (UInt16, UnsafeRawBufferPointer) -> Void) throws(KernelAuditError) {
        guard stream.mode == .multicast else { return }
        let unicast = try NetlinkAuditReader(mode: .unicast, receiveBufferBytes: settings.receiveBufferBytes)
        try stream.switchTo(unicast, release: { () throws(KernelAuditError) in try applyDaemonSettings() }, handle: handle)
        excludeUnreadRecords()
    }

    /// A rule already there carries our mark: a run that did not stop left it, and it is ours.
    /// Not fatal: an older kernel whose exclude list filters on the record type alone refuses
    /// the mark, and then makes the records, which the agent drops unread.
    private func excludeUnreadRecords() {
        guard exclusions.isEmpty else { return }
        for type in Self.unreadRecordTypes {
            do {
                let rule = try control.compileExclusion(recordType: type)
                do { try control.add(rule) } catch  where error.code == EEXIST {}
                exclusions.append((type, rule))
            } catch {
                log("cannot have the kernel leave out \(type) records, which xferwatch does not read: \(error)")
            }
        }
    }

    private func removeExclusions() {
        for (_, rule) in exclusions {
            do { try control.delete(rule) } catch { if error.code != ENOENT { log("could not remove an audit rule: \(error)") } }
        }
        exclusions.removeAll()
    }

    /// Rules with our key, and exclusions with our mark, left by a run that did not stop
    /// cleanly (killed, crashed, the host went down).
    private func removeStaleRules() throws(KernelAuditError) {
        let loaded = try control.listRules()
        for rule in loaded where rule.key == ruleKey {
            try control.delete(rule)
            log("removed a stale audit rule with key \(ruleKey) left by an earlier run")
        }
        for (type, rule) in try Self.ourExclusions(in: loaded, control: control) {
            try control.delete(rule)
            log("removed the exclusion of \(type) records left by an earlier run")
        }
    }

    /// The exclusions among `loaded` that carry our mark, with the record type each leaves out.
    static func ourExclusions(in loaded: [KernelRule], control: AuditControl) throws(KernelAuditError) -> [(String, KernelRule)] {
        var found: [(String, KernelRule)] = []
        for type in unreadRecordTypes {
            let ours = try control.compileExclusion(recordType: type).view
            found += loaded.filter { $0.view.filtersLike(ours) }.map { (type, $0) }
        }
        return found
    }

    /// Removes, without a session, what runs that did not stop left in the kernel: the rules
    /// with `key` unless one excludes a running agent (each run's rules exclude its own pid, so
    /// that run is live and they are its), and our exclusions unless a running agent holds the
    /// audit socket (only the audit daemon adds them). Returns each rule removed, summarised.
    public static func removeLeftovers(
        key: String, control: AuditControl, isRunningAgent: (UInt32) -> Bool
    ) throws(KernelAuditError) -> [String] {
        let loaded = try control.listRules()
        let keyed = loaded.filter { $0.key == key }
        var leftovers = keyed.contains { $0.view.excludedPid.map(isRunningAgent) == true } ? [] : keyed
        if !isRunningAgent(try control.status().pid) { leftovers += try ourExclusions(in: loaded, control: control).map(\.1) }
        var removed: [String] = []
        for rule in leftovers {
            do { try control.delete(rule) } catch  where error.code == ENOENT { continue }
            removed.append(rule.summary)
        }
        return removed
    }

    /// Puts back any of our rules that someone removed; returns how many.
    @discardableResult
    public func verifyRules() throws(KernelAuditError) -> Int {
        let loaded = try control.listRules()
        var reinstalled = 0
        for rule in rules + exclusions.map(\.rule) where !loaded.contains(rule) {
            // The kernel may list a rule in a form that differs from ours by a byte: it is there.
            do { try control.add(rule) } catch  where error.code == EEXIST { continue }
            reinstalled += 1
        }
        rulesReinstalled += reinstalled
        return reinstalled
    }

    /// Stops auditing `pid`'s sendto and sendmsg (both ABIs): `never` rules ahead of every
    /// other on the exit list. Only while we are the audit daemon, whose rules these are.
    public func quietDatagrams(of pid: Int32) throws(KernelAuditError) {
        guard stream.mode == .unicast, quietedSenders[pid] == nil, pid > 0 else { return }
        var added: [KernelRule] = []
        for (arch, calls) in [("b64", ["sendto", "sendmsg"]), ("b32", ["sendto", "sendmsg"])] {
            let rule = try control.compile(AuditRuleSpec(arch: arch, syscalls: calls, fields: ["pid=\(pid)"], key: ruleKey, never: true))
            do { try control.add(rule) } catch {
                for earlier in added { try? control.delete(earlier) }
                throw error
            }
            added.append(rule)
        }
        quietedSenders[pid] = added
    }

    /// Audits `pid`'s datagrams again (it exited, or it may speak TFTP after all).
    public func auditDatagrams(of pid: Int32) {
        for rule in quietedSenders.removeValue(forKey: pid) ?? [] {
            do { try control.delete(rule) } catch { if error.code != ENOENT { log("could not remove an audit rule: \(error)") } }
        }
    }

    /// Removes our rules and restores the enabled flag and audit pid found at start.
    public func close() {
        guard !closed else { return }
        closed = true
        for pid in Array(quietedSenders.keys) { auditDatagrams(of: pid) }
        removeExclusions()
        for rule in rules {
            do { try control.delete(rule) } catch { if error.code != ENOENT { log("could not remove an audit rule: \(error)") } }
        }
        rules.removeAll()
        do {
            let now = try control.status()
            // enabled = 2 means the configuration was locked (auditctl -e 2): nothing to restore.
            if now.enabled != enabledToRestore && now.enabled != 2 && enabledToRestore != 2 {
                try control.setEnabled(enabledToRestore)
            }
            if stream.mode == .unicast && now.pid == UInt32(getpid()) {
                try control.clearAuditPid()
            }
        } catch {
            log("could not restore the audit settings: \(error)")
        }
    }
}

/// The rules xferwatch needs, for both ABIs, excluding its own process when it installs them
/// (`ownPid`; auditd loads them for the audisp plugin, nil). Calls that pass an address
/// (sendto/sendmsg with saddr_fam) are audited, never every send: glibc's send() is sendto on
/// x86_64, so that would audit all TCP traffic.
public func xferwatchRuleSpecs(key: String, ownPid: Int32?) -> [AuditRuleSpec] {
    let exclude = ownPid.map { ["pid!=\($0)"] } ?? []
    var specs: [AuditRuleSpec] = []
    // i386 has no accept(2), only accept4 (and socketcall, which audit rules cannot filter).
    for (arch, socketCalls) in [
        ("b64", ["connect", "accept", "accept4", "sendto", "sendmsg"]),
        ("b32", ["connect", "accept4", "sendto", "sendmsg"]),
    ] {
        // listen: servers starting, whose executables are scanned (rare, so every family).
        specs.append(AuditRuleSpec(arch: arch, syscalls: ["execve", "execveat", "listen"], fields: exclude, key: key))
        // Only calls that pass an IPv4/IPv6 address: no AF_UNIX traffic, and sendto/sendmsg
        // only when unconnected (TFTP), not every TCP send.
        for family in [SocketAddress.familyInet, SocketAddress.familyInet6] {
            specs.append(AuditRuleSpec(arch: arch, syscalls: socketCalls, fields: exclude + ["saddr_fam=\(family)"], key: key))
        }
    }
    return specs
}
