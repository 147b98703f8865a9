import AgentConfig
import AuditIngest
import KernelAudit
import Runtime

#if canImport(Glibc)
    import Glibc
#endif

/// The kernel audit session and its watching: installs the rules and takes the stream, then
/// checks the kernel's counters (lost records, backlog, the enabled flag, who holds the audit
/// pid) and that our rules are still there. What it finds goes to the health channel.
final class AuditWatch {
    let session: AuditSession
    /// The source agent.conf asks for (`auto`, `unicast` or `multicast`).
    let configured: AuditSourceMode
    private let settings: AgentConfiguration.Audit
    private let health: HealthChannel
    private let log: Logger
    private(set) var firstStatus: AuditStatus?
    private(set) var lastStatus: AuditStatus?
    private(set) var reportedAuditPidLoss = false
    private var nextStatus: Int64 = 0
    private var nextRuleCheck: Int64
    /// When someone last added or removed rules; the check waits for that to settle so one
    /// `auditctl -D` (a removal per rule) is reinstalled and reported once.
    private var lastRuleChange: Int64?
    /// When the kernel first said one of our rules was removed (its event time), until they
    /// are back: the check then runs at once, and the alert says how long the host was unwatched.
    private var ownRulesRemovedAt: Int64?
    /// Rules put back while others' changes go on, reported once in one alert when they settle:
    /// how many, when the first of ours went (event time), when the last came back.
    private var reinstalledUnreported: (count: Int, removedAt: Int64?, reinstalledAt: Int64)?
    /// Others' rules that hide what ours ask for, as reported (reported again if they come back).
    private var reportedSuppressing: Set<[UInt8]> = []
    /// The last failure of the rule check, reported once.
    private var ruleCheckFailure: String?
    /// Who turned auditing off, from the kernel's CONFIG_CHANGE: reported even when auditing
    /// is back on by the next status check (`auditctl -e 0; ...; auditctl -e 1`).
    private var disabledBy: String?
    /// When a disabling was first noticed (monotonic) and not yet reported: the status can show
    /// it before its CONFIG_CHANGE arrives, and one alert should carry both.
    private var disabledNoticed: Int64?
    /// Whether the current stretch of disabled auditing was reported: once, not every poll.
    private var reportedDisabled = false
    /// `auto` on the multicast group: since when no live daemon holds the audit socket.
    private var noDaemonSince: Int64?
    /// `auto`: the audit socket is free for longer than `takeover_delay_ms` and no auditd is
    /// expected; the source takes it on its next turn.
    private var takeOverDue = false
    private let auditdExpected: Bool
    private static let disablingActorWaitMilliseconds: Int64 = 1000
    /// How long rule changes must stop before the rules are checked.
    private static let ruleChangeSettleMilliseconds: Int64 = 150

    /// The source in use now, `auto` resolved: in `auto` it moves to the multicast group when
    /// another daemon asks for the audit socket, and back when the socket stays free.
    var mode: AuditSourceMode { session.stream.mode == .unicast ? .unicast : .multicast }

    /// Installs the rules and opens the stream (unicast: as the audit daemon); nil after
    /// logging why not.
    /// `enabledBeforeKilledRun`: the enabled flag a killed earlier run found (its run marker).
    init?(settings: AgentConfiguration.Audit, health: HealthChannel, enabledBeforeKilledRun: UInt32?, log: Logger) {
        self.settings = settings
        self.configured = settings.source
        self.health = health
        self.log = log
        auditdExpected = AuditDaemonInstallation.onThisHost
        do {
            let current = try AuditControl().status()
            let mode = Self.resolve(settings.source, currentPid: current.pid, auditdExpected: auditdExpected)
            if settings.source == .auto && mode == .multicast && !Self.isAlive(current.pid) {
                log.info("auditd is installed and started at boot here: the audit socket is left to it, the stream read beside it")
            }
            let sessionSettings = AuditSession.Settings(
                backlogLimit: UInt32(settings.backlogLimit), rateLimit: UInt32(settings.rateLimit),
                receiveBufferBytes: settings.receiveBufferBytes)
            session = try AuditSession(
                mode: mode == .multicast ? .multicast : .unicast, settings: sessionSettings,
                specs: xferwatchRuleSpecs(key: settings.ruleKey, ownPid: getpid()), enabledBeforeKilledRun: enabledBeforeKilledRun,
                log: { [log] in log.warning($0) })
        } catch {
            log.error("cannot start the audit source: \(error)")
            return nil
        }
        nextRuleCheck = monotonicMilliseconds() + Int64(settings.ruleCheckIntervalMilliseconds)
        log.info("audit source \(mode.rawValue): \(session.rules.count) rules with key \(session.ruleKey) installed")
    }

    /// The source `auto` stands for: multicast beside a live audit daemon, or where auditd
    /// starts at boot (it may not have started yet: it must find the socket free), else unicast.
    static func resolve(_ mode: AuditSourceMode, currentPid: UInt32, auditdExpected: Bool) -> AuditSourceMode {
        guard mode == .auto else { return mode }
        return isAlive(currentPid) || auditdExpected ? .multicast : .unicast
    }

    /// The kernel keeps a dead daemon's pid until its next send fails.
    private static func isAlive(_ pid: UInt32) -> Bool { pid != 0 && kill(pid_t(pid), 0) == 0 }

    /// After each read of the stream: answers another daemon's request for the audit socket,
    /// and takes the socket when it is due. Records the old socket still holds go to `deliver`.
    func serviceRequests(time: LoopTime, deliver: (UInt16, UnsafeRawBufferPointer) -> Void) {
        if let asker = session.stream.reader.takeReplaceRequester(), asker != UInt32(getpid()) {
            answerRequest(from: asker, time: time, deliver: deliver)
        }
        guard takeOverDue else { return }
        takeOverDue = false
        noDaemonSince = nil
        do {
            try session.takeOver(deliver)
            log.info("no audit daemon held the audit socket for \(settings.takeoverDelayMilliseconds) ms: xferwatch holds it now (unicast)")
        } catch {
            log.warning("cannot take the free audit socket: \(error); staying on the multicast stream")
        }
    }

    /// In `auto` the socket goes to the asker at once and the stream goes on through the
    /// multicast group; an explicit `unicast` keeps it and says whom it refused.
    private func answerRequest(from asker: UInt32, time: LoopTime, deliver: (UInt16, UnsafeRawBufferPointer) -> Void) {
        let who = "pid \(asker) (\(Self.program(of: asker)))"
        guard configured == .auto else {
            let reason = "\(who) asked for the audit socket and was refused: source = \"unicast\" keeps it (source = \"auto\" hands it over)"
            log.warning(reason)
            health.report([reason], time: time.realtime)
            return
        }
        do {
            try session.handOver(deliver)
            noDaemonSince = nil
            let reason =
                "\(who) asked for the audit socket: xferwatch gave it up and reads the multicast stream beside it, no record lost "
                + "(the daemon's first attempt failed; its next one succeeds)"
            log.warning(reason)
            health.report([reason], time: time.realtime)
        } catch {
            let reason = "\(who) asked for the audit socket; giving it up failed: \(error)"
            log.error(reason)
            health.report([reason], time: time.realtime)
        }
    }

    /// The asker's executable, or its name while it is a zombie. A daemon the kernel refused
    /// exits within milliseconds and may be gone before the probe is read: then that is said.
    private static func program(of pid: UInt32) -> String {
        if let executable = symbolicLinkTarget("/proc/\(pid)/exe") { return executable }
        return readTextFile("/proc/\(pid)/comm", limit: 64)?.split(separator: "\n").first.map(String.init)
            ?? "exited before its program could be read"
    }

    /// Gives the kernel back what we took (audit pid, rules, settings).
    func close() {
        session.close()
        let n = session.stream.counters
        log.info(
            "netlink: \(n.messages) records, dropped \(n.notFromKernel) not sent by the kernel, \(n.malformed) malformed, \(n.truncated) truncated; "
                + "\(n.replaceRequests) requests for the audit socket, \(session.stream.switches) socket switches, "
                + "\(session.stream.duplicatesSkipped) records both sockets got")
    }

    /// Sees every event: a CONFIG_CHANGE that removes rules may have removed ours, one that adds
    /// rules may hide what ours ask for (both checked once the changes settle); one that sets
    /// `audit_enabled=0` names who disabled auditing.
    func watch(_ event: AuditEvent) {
        // By index: most events have none, and iterating would copy every record.
        for index in event.records.indices where event.records[index].type == .configChange {
            let record = event.records[index]
            if let op = record.rawValue("op"),
                op.elementsEqual("remove_rule".utf8) || op.elementsEqual("del_rule".utf8) || op.elementsEqual("add_rule".utf8)
            {
                lastRuleChange = monotonicMilliseconds()
                if ownRulesRemovedAt == nil, !op.elementsEqual("add_rule".utf8), record.string("key") == settings.ruleKey {
                    ownRulesRemovedAt = event.key.time.totalMilliseconds
                }
            }
            if let enabled = record.rawValue("audit_enabled"), enabled.elementsEqual("0".utf8) {
                disabledBy = Self.actor(of: event, change: record)
                if disabledNoticed == nil { disabledNoticed = monotonicMilliseconds() }
            }
        }
    }

    /// The login uid and session of a configuration change, with the program when the event
    /// carries its syscall.
    static func actor(of event: AuditEvent, change: AuditRecord) -> String {
        var parts = ["auid \(change.string("auid") ?? "?")", "ses \(change.string("ses") ?? "?")"]
        if let syscall = event.records.first(where: { $0.type == .syscall }) {
            parts.insert("pid \(syscall.string("pid") ?? "?") (\(syscall.string("exe") ?? syscall.string("comm") ?? "?"))", at: 0)
        }
        return parts.joined(separator: ", ")
    }

    /// The status every `status_interval_ms`, the rules every `rule_check_interval_ms` or once
    /// removals settle.
    func check(time: LoopTime) {
        if time.monotonic >= nextStatus {
            nextStatus = time.monotonic + Int64(settings.statusIntervalMilliseconds)
            checkStatus(time: time)
        }
        // Our own rules gone (augenrules begins with -D): put them back at once, before a
        // rule file that ends by locking the configuration (-e 2) shuts us out.
        let changesSettled = lastRuleChange.map { time.monotonic - $0 >= Self.ruleChangeSettleMilliseconds } ?? false
        guard changesSettled || ownRulesRemovedAt != nil || time.monotonic >= nextRuleCheck else { return }
        let stillChanging = lastRuleChange != nil && !changesSettled
        nextRuleCheck = time.monotonic + Int64(settings.ruleCheckIntervalMilliseconds)
        lastRuleChange = nil
        do {
            let reinstalled = try session.verifyRules()
            if reinstalled > 0 {
                let removedAt = [reinstalledUnreported?.removedAt, ownRulesRemovedAt].compactMap { $0 }.min()
                reinstalledUnreported = ((reinstalledUnreported?.count ?? 0) + reinstalled, removedAt, time.realtime)
            }
            ownRulesRemovedAt = nil
            if let put = reinstalledUnreported, !stillChanging {
                reinstalledUnreported = nil
                let gap = put.removedAt.map { " after \(max(0, put.reinstalledAt - $0)) ms without them" } ?? ""
                log.warning("\(put.count) of our audit rules were removed by someone else; reinstalled them\(gap)")
                health.report(["\(put.count) audit rules with key \(settings.ruleKey) were removed by someone else (reinstalled\(gap))"], time: time.realtime)
            }
            let suppressing = try session.suppressingRules()
            for (rule, hides) in suppressing where !reportedSuppressing.contains(rule.bytes) {
                let reason = "audit rule \"\(rule.summary)\" keeps events from xferwatch: \(hides) (ATT&CK T1562.012)"
                log.warning(reason)
                health.report([reason], time: time.realtime)
            }
            reportedSuppressing = Set(suppressing.map(\.rule.bytes))
            log.debug("audit rules checked: \(session.rules.count) of ours, \(suppressing.count) of others hiding events")
            ruleCheckFailure = nil
        } catch {
            log.error("cannot check the audit rules: \(error)")
            // Once per kind of failure: auditing locked (-e 2) after our rules were deleted
            // leaves the agent blind, and it must say so.
            if ruleCheckFailure != error.description {
                ruleCheckFailure = error.description
                health.report(["cannot check or put back the audit rules: \(error)"], time: time.realtime)
            }
        }
    }

    private func checkStatus(time: LoopTime) {
        let status: AuditStatus
        do { status = try session.control.status() } catch {
            log.warning("cannot read the audit status: \(error)")
            return
        }
        if firstStatus == nil { firstStatus = status }
        if let last = lastStatus, status.lost != last.lost {
            log.warning(
                "the kernel lost \(status.lost &- last.lost) audit records (lost counter \(status.lost), backlog \(status.backlog) of \(status.backlogLimit))")
            health.report(
                ["the kernel lost \(status.lost &- last.lost) audit records", "backlog \(status.backlog) of \(status.backlogLimit)"],
                time: time.realtime)
        }
        if status.backlogLimit > 0 && status.backlog * 5 > status.backlogLimit * 4 {
            log.warning("audit backlog at \(status.backlog) of \(status.backlogLimit)")
        }
        if status.enabled == 0 {
            if !reportedDisabled && disabledNoticed == nil { disabledNoticed = time.monotonic }
            do { try session.control.setEnabled(1) } catch { log.error("cannot enable auditing: \(error)") }
        } else if disabledNoticed == nil {
            reportedDisabled = false
        }
        if let noticed = disabledNoticed, disabledBy != nil || time.monotonic - noticed >= Self.disablingActorWaitMilliseconds {
            let who = disabledBy.map { " by \($0)" } ?? ""
            log.warning("auditing was disabled\(who); enabled it again")
            health.report(
                ["auditing was disabled\(who) (ATT&CK T1562.012, Disable or Modify Linux Audit System); xferwatch enabled it again"],
                time: time.realtime)
            disabledBy = nil
            disabledNoticed = nil
            reportedDisabled = true
        }
        watchForFreeSocket(status, time: time)
        if mode == .unicast && status.pid != UInt32(getpid()) {
            log.error("the audit pid is now \(status.pid): another audit daemon took the stream")
            if !reportedAuditPidLoss {
                reportedAuditPidLoss = true
                health.report(["audit pid \(status.pid) took the audit stream: no events reach xferwatch"], time: time.realtime)
            }
        }
        lastStatus = status
    }

    /// `auto` on the multicast group: when no daemon has held the audit socket for
    /// `takeover_delay_ms` (a restart takes less) and no auditd starts at boot here, the agent
    /// takes it back. Where auditd is expected, the socket stays free for it.
    private func watchForFreeSocket(_ status: AuditStatus, time: LoopTime) {
        guard configured == .auto, mode == .multicast, !auditdExpected else { return }
        guard !Self.isAlive(status.pid) else {
            noDaemonSince = nil
            return
        }
        let since = noDaemonSince ?? time.monotonic
        noDaemonSince = since
        if time.monotonic - since >= Int64(settings.takeoverDelayMilliseconds) { takeOverDue = true }
    }
}
