import CAudit

#if canImport(Glibc)
    import Glibc
#endif

public struct KernelAuditError: Error, CustomStringConvertible, Sendable {
    public var operation: String
    public var code: Int32

    public var description: String { "\(operation): \(String(cString: strerror(code)))" }

    static func check(_ result: Int32, _ operation: String) throws(KernelAuditError) {
        if result < 0 { throw KernelAuditError(operation: operation, code: result == -1 ? errno : -result) }
    }
}

/// The kernel's audit settings and counters (`auditctl -s`).
public struct AuditStatus: Sendable, Equatable {
    public var enabled: UInt32
    public var failure: UInt32
    public var pid: UInt32
    public var rateLimit: UInt32
    public var backlogLimit: UInt32
    public var lost: UInt32
    public var backlog: UInt32
    public var backlogWaitTime: UInt32
}

/// A syscall rule on the exit filter, as `auditctl -a always,exit -F arch=... -S ... -F ... -k KEY`.
public struct AuditRuleSpec: Sendable, Equatable, CustomStringConvertible {
    public var arch: String
    public var syscalls: [String]
    public var fields: [String]
    public var key: String
    /// A `never` rule goes ahead of every other on the exit list (auditctl -A): it keeps what
    /// it matches from the `always` rules behind it.
    public var never: Bool

    public init(arch: String, syscalls: [String], fields: [String] = [], key: String, never: Bool = false) {
        self.arch = arch
        self.syscalls = syscalls
        self.fields = fields
        self.key = key
        self.never = never
    }

    public var description: String {
        ([never ? "-A never,exit -F arch=\(arch)" : "-a always,exit -F arch=\(arch)", "-S " + syscalls.joined(separator: ",")]
            + fields.map { "-F \($0)" } + ["-k \(key)"])
            .joined(separator: " ")
    }
}

/// A rule in the kernel's binary form (struct audit_rule_data with its string buffer).
public struct KernelRule: Equatable, Sendable {
    public let bytes: [UInt8]

    static let headerSize = MemoryLayout<audit_rule_data>.size

    var header: audit_rule_data { bytes.withUnsafeBytes { $0.load(as: audit_rule_data.self) } }

    init(_ pointer: UnsafePointer<audit_rule_data>) {
        let length = Self.headerSize + Int(pointer.pointee.buflen)
        bytes = Array(UnsafeRawBufferPointer(start: pointer, count: length))
    }

    /// The rule's `key=` string, found by walking the string fields in order.
    public var key: String? {
        bytes.withUnsafeBytes { raw -> String? in
            let rule = raw.load(as: audit_rule_data.self)
            var offset = 0
            let fields = withUnsafeBytes(of: rule.fields) { Array($0.bindMemory(to: UInt32.self)) }
            let values = withUnsafeBytes(of: rule.values) { Array($0.bindMemory(to: UInt32.self)) }
            for index in 0..<Int(min(rule.field_count, UInt32(fields.count))) {
                let field = fields[index]
                guard Self.isStringField(field) else { continue }
                let length = Int(values[index])
                let start = Self.headerSize + offset
                guard start + length <= raw.count else { return nil }
                if field == UInt32(AUDIT_FILTERKEY) {
                    return String(decoding: raw[start..<(start + length)], as: UTF8.self)
                }
                offset += length
            }
            return nil
        }
    }

    /// Fields whose value is a length into the string buffer.
    static func isStringField(_ field: UInt32) -> Bool {
        switch Int32(field) {
        case AUDIT_SUBJ_USER...AUDIT_SUBJ_CLR, AUDIT_OBJ_USER...AUDIT_OBJ_LEV_HIGH,
            AUDIT_WATCH, AUDIT_DIR, AUDIT_FILTERKEY, AUDIT_EXE:
            return true
        default:
            return false
        }
    }
}

/// A control connection to the kernel audit subsystem through libaudit: settings, status,
/// rules. Replies come back on this socket, so it is never the one events are read from.
public final class AuditControl {
    public let fd: Int32

    public init() throws(KernelAuditError) {
        set_aumessage_mode(MSG_QUIET, DBG_NO)
        let fd = audit_open()
        try KernelAuditError.check(fd, "audit_open")
        self.fd = fd
    }

    deinit { audit_close(fd) }

    public func status() throws(KernelAuditError) -> AuditStatus {
        try KernelAuditError.check(audit_request_status(fd), "audit status request")
        while true {
            var reply = audit_reply()
            try receiveReply(&reply, "audit status reply")
            if reply.type == AUDIT_GET, let status = reply.status?.pointee {
                return AuditStatus(
                    enabled: status.enabled, failure: status.failure, pid: status.pid,
                    rateLimit: status.rate_limit, backlogLimit: status.backlog_limit,
                    lost: status.lost, backlog: status.backlog,
                    backlogWaitTime: status.backlog_wait_time)
            }
        }
    }

    public func setEnabled(_ enabled: UInt32) throws(KernelAuditError) {
        try KernelAuditError.check(audit_set_enabled(fd, enabled), "set audit enabled=\(enabled)")
    }

    public func setBacklogLimit(_ limit: UInt32) throws(KernelAuditError) {
        try KernelAuditError.check(audit_set_backlog_limit(fd, limit), "set backlog limit")
    }

    public func setBacklogWaitTime(_ time: UInt32) throws(KernelAuditError) {
        try KernelAuditError.check(audit_set_backlog_wait_time(fd, time), "set backlog_wait_time")
    }

    public func setRateLimit(_ limit: UInt32) throws(KernelAuditError) {
        try KernelAuditError.check(audit_set_rate_limit(fd, limit), "set rate limit")
    }

    /// Gives up the audit pid (only its holder may); the kernel then stops unicasting.
    public func clearAuditPid() throws(KernelAuditError) {
        try KernelAuditError.check(audit_set_pid(fd, 0, WAIT_YES), "clear audit pid")
    }

    /// Builds the kernel form of a rule with libaudit's own parsers (as auditctl does).
    public func compile(_ spec: AuditRuleSpec) throws(KernelAuditError) -> KernelRule {
        var rule: UnsafeMutablePointer<audit_rule_data>? = audit_rule_create_data()
        // libaudit's rule-building globals, set and reset the way auditctl does per rule.
        xw_audit_reset_rule_state()
        defer {
            audit_rule_free_data(rule)
            xw_audit_reset_rule_state()
        }
        func field(_ pair: String) throws(KernelAuditError) {
            let result = audit_rule_fieldpair_data(&rule, pair, AUDIT_FILTER_EXIT)
            if result != 0 { throw KernelAuditError(operation: "rule field \(pair) (libaudit error \(result))", code: EINVAL) }
        }
        // The arch must come first: libaudit resolves syscall names for the arch last set.
        try field("arch=\(spec.arch)")
        for name in spec.syscalls where audit_rule_syscallbyname_data(rule, name) != 0 {
            throw KernelAuditError(operation: "rule syscall \(name) on \(spec.arch)", code: EINVAL)
        }
        xw_audit_mark_syscall_added()
        for pair in spec.fields + ["key=\(spec.key)"] { try field(pair) }
        guard let rule else { throw KernelAuditError(operation: "allocate rule", code: ENOMEM) }
        // The list and action travel in the rule, as the kernel lists it.
        rule.pointee.flags = UInt32(AUDIT_FILTER_EXIT) | (spec.never ? UInt32(AUDIT_FILTER_PREPEND) : 0)
        rule.pointee.action = UInt32(spec.never ? AUDIT_NEVER : AUDIT_ALWAYS)
        return KernelRule(rule)
    }

    /// A rule on the exclude list: the kernel makes no record of `recordType` (a name such as
    /// PROCTITLE) for anyone, as `auditctl -a always,exclude -F msgtype=... -F uid>=0`. It can
    /// carry no key: the kernel's exclude filter gives up on a rule with a field it does not
    /// filter on, a key among them, and then excludes nothing. `uid>=0` is true of every
    /// process and marks the rule as xferwatch's, to tell it from one an administrator wrote.
    public func compileExclusion(recordType: String) throws(KernelAuditError) -> KernelRule {
        var rule: UnsafeMutablePointer<audit_rule_data>? = audit_rule_create_data()
        xw_audit_reset_rule_state()
        defer {
            audit_rule_free_data(rule)
            xw_audit_reset_rule_state()
        }
        for pair in ["msgtype=\(recordType)", "uid>=0"] {
            let result = audit_rule_fieldpair_data(&rule, pair, AUDIT_FILTER_EXCLUDE)
            if result != 0 { throw KernelAuditError(operation: "exclude rule \(pair) (libaudit error \(result))", code: EINVAL) }
        }
        guard let rule else { throw KernelAuditError(operation: "allocate rule", code: ENOMEM) }
        rule.pointee.flags = UInt32(AUDIT_FILTER_EXCLUDE)
        rule.pointee.action = UInt32(AUDIT_ALWAYS)
        return KernelRule(rule)
    }

    /// Adds `rule` to the list and with the action its bytes carry (as compiled or listed).
    public func add(_ rule: KernelRule) throws(KernelAuditError) {
        try KernelAuditError.check(withRule(rule) { audit_add_rule_data(fd, $0, Int32($0.pointee.flags), Int32($0.pointee.action)) }, "add audit rule")
    }

    /// The kernel keeps a rule without the prepend flag it was added with.
    public func delete(_ rule: KernelRule) throws(KernelAuditError) {
        let list = Int32(rule.header.flags & ~UInt32(AUDIT_FILTER_PREPEND))
        try KernelAuditError.check(withRule(rule) { audit_delete_rule_data(fd, $0, list, Int32($0.pointee.action)) }, "delete audit rule")
    }

    /// The rules loaded in the kernel now, every filter list, in the kernel's order (the list
    /// is in each rule's flags).
    public func listRules() throws(KernelAuditError) -> [KernelRule] {
        try KernelAuditError.check(audit_request_rules_list_data(fd), "list audit rules")
        var rules: [KernelRule] = []
        while true {
            var reply = audit_reply()
            try receiveReply(&reply, "audit rule list")
            if reply.type == NLMSG_DONE { return rules }
            if reply.type == AUDIT_LIST_RULES, let data = reply.ruledata { rules.append(KernelRule(data)) }
        }
    }

    private func withRule(_ rule: KernelRule, _ body: (UnsafeMutablePointer<audit_rule_data>) -> Int32) -> Int32 {
        var copy = rule.bytes
        return copy.withUnsafeMutableBytes { body($0.baseAddress!.assumingMemoryBound(to: audit_rule_data.self)) }
    }

    /// Waits up to two seconds for the next reply; errors the kernel sends become throws.
    private func receiveReply(_ reply: inout audit_reply, _ operation: String) throws(KernelAuditError) {
        var pollfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        while true {
            let ready = poll(&pollfd, 1, 2000)
            if ready < 0 && errno == EINTR { continue }
            if ready == 0 { throw KernelAuditError(operation: "\(operation) (no reply from the kernel)", code: ETIMEDOUT) }
            try KernelAuditError.check(ready, operation)
            let result = audit_get_reply(fd, &reply, GET_REPLY_NONBLOCKING, 0)
            if result == -EAGAIN || (result < 0 && errno == EAGAIN) { continue }
            try KernelAuditError.check(result, operation)
            if reply.type == NLMSG_ERROR, let error = reply.error?.pointee {
                if error.error == 0 { continue }  // an acknowledgement
                throw KernelAuditError(operation: operation, code: -error.error)
            }
            return
        }
    }
}
