import CAudit

#if canImport(Glibc)
    import Glibc
#endif

/// Rules of others that keep from the agent what its own rules ask for (ATT&CK T1562.012,
/// without disabling auditing): the kernel reads them before ours, or before any record is
/// made. Found in the kernel's own list, in its evaluation order.
extension AuditSession {
    /// The record types the agent reads.
    static let recordTypesRead: [UInt32] = [1300, 1302, 1305, 1306, 1307, 1309, 1320]  // SYSCALL PATH CONFIG_CHANGE SOCKADDR CWD EXECVE EOE

    /// Each rule that hides something the agent needs, with what it hides:
    /// - `never` on the task list: tasks it matches are not audited at all;
    /// - `never` on the exit list ahead of our first rule, for a syscall we audit;
    /// - any rule on the exclude list that may match a record type we read.
    public func suppressingRules() throws(KernelAuditError) -> [(rule: KernelRule, hides: String)] {
        var found: [(KernelRule, String)] = []
        var oursSeen = false
        for rule in try control.listRules() {
            let view = rule.view
            switch view.list {
            case UInt32(AUDIT_FILTER_TASK) where view.action == UInt32(AUDIT_NEVER):
                found.append((rule, "no syscall of the tasks it matches is audited"))
            case UInt32(AUDIT_FILTER_EXIT):
                if rule.key == ruleKey { oursSeen = true }
                guard !oursSeen, view.action == UInt32(AUDIT_NEVER) else { continue }
                let hidden = Self.auditedSyscalls.filter { view.covers(syscall: $0) }
                if !hidden.isEmpty { found.append((rule, "placed before ours, it hides \(hidden.joined(separator: ", "))")) }
            case UInt32(AUDIT_FILTER_EXCLUDE):
                let hidden = Self.recordTypesRead.filter { view.mayMatch(recordType: $0) }
                if !hidden.isEmpty {
                    found.append((rule, "it drops records of types \(hidden.map(KernelRuleView.typeName).joined(separator: ", "))"))
                }
            default:
                continue
            }
        }
        return found
    }

    /// The syscalls our rules ask for.
    static let auditedSyscalls = ["execve", "execveat", "connect", "accept", "accept4", "sendto", "sendmsg", "listen"]
}

/// A kernel rule's fixed part, read from its bytes.
struct KernelRuleView {
    let list: UInt32
    let action: UInt32
    let mask: [UInt32]
    /// (field, operator, value); string fields carry their text.
    let fields: [(field: UInt32, op: UInt32, value: UInt32, text: String?)]

    init(_ rule: KernelRule) {
        let header = rule.bytes.withUnsafeBytes { $0.load(as: audit_rule_data.self) }
        list = header.flags & ~UInt32(AUDIT_FILTER_PREPEND)
        action = header.action
        mask = withUnsafeBytes(of: header.mask) { Array($0.bindMemory(to: UInt32.self)) }
        let names = withUnsafeBytes(of: header.fields) { Array($0.bindMemory(to: UInt32.self)) }
        let values = withUnsafeBytes(of: header.values) { Array($0.bindMemory(to: UInt32.self)) }
        let flags = withUnsafeBytes(of: header.fieldflags) { Array($0.bindMemory(to: UInt32.self)) }
        var fields: [(UInt32, UInt32, UInt32, String?)] = []
        var offset = KernelRule.headerSize
        for index in 0..<Int(min(header.field_count, UInt32(names.count))) {
            var text: String?
            if KernelRule.isStringField(names[index]) {
                let end = min(offset + Int(values[index]), rule.bytes.count)
                text = String(decoding: rule.bytes[min(offset, end)..<end], as: UTF8.self)
                offset = end
            }
            fields.append((names[index], flags[index], values[index], text))
        }
        self.fields = fields
    }

    /// The machine the rule's syscall numbers are for: its arch field, else this host's.
    private var machine: Int32 {
        if let arch = fields.first(where: { $0.field == UInt32(AUDIT_ARCH) && $0.op == UInt32(AUDIT_EQUAL) }) {
            return audit_elf_to_machine(arch.value)
        }
        return audit_detect_machine()
    }

    func covers(syscall name: String) -> Bool {
        let number = audit_name_to_syscall(name, machine)
        guard number >= 0, Int(number) / 32 < mask.count else { return false }
        return mask[Int(number) / 32] & (UInt32(1) << (UInt32(number) % 32)) != 0
    }

    /// The same list, action and conditions: the same filter outside the syscall lists, where
    /// the kernel reads no syscall mask (auditctl sets one anyway).
    func filtersLike(_ other: KernelRuleView) -> Bool {
        list == other.list && action == other.action && fields.count == other.fields.count
            && zip(fields, other.fields).allSatisfy { $0.field == $1.field && $0.op == $1.op && $0.value == $1.value && $0.text == $1.text }
    }

    /// The process a `pid!=N` condition leaves out.
    var excludedPid: UInt32? {
        fields.first { $0.field == UInt32(AUDIT_PID) && $0.op == UInt32(AUDIT_NOT_EQUAL) }?.value
    }

    /// Whether the rule's msgtype conditions let `type` through (other fields may match too).
    func mayMatch(recordType type: UInt32) -> Bool {
        fields.filter { $0.field == UInt32(AUDIT_MSGTYPE) }.allSatisfy { condition in
            switch condition.op {
            case UInt32(AUDIT_EQUAL): type == condition.value
            case UInt32(AUDIT_NOT_EQUAL): type != condition.value
            case UInt32(AUDIT_LESS_THAN): type < condition.value
            case UInt32(AUDIT_LESS_THAN_OR_EQUAL): type <= condition.value
            case UInt32(AUDIT_GREATER_THAN): type > condition.value
            case UInt32(AUDIT_GREATER_THAN_OR_EQUAL): type >= condition.value
            default: true
            }
        }
    }

    static func typeName(_ type: UInt32) -> String {
        audit_msg_type_to_name(Int32(type)).map { String(cString: $0) } ?? String(type)
    }

    /// As auditctl -l would say it, roughly: `never,exit arch=b64 uid=0 syscalls 59,42`.
    var description: String {
        let lists = [0: "user", 1: "task", 4: "exit", 5: "exclude", 6: "filesystem", 7: "io_uring"]
        var parts = ["\(action == UInt32(AUDIT_NEVER) ? "never" : "always"),\(lists[Int(list)] ?? String(list))"]
        for field in fields {
            let name = audit_field_to_name(Int32(field.field)).map { String(cString: $0) } ?? "field\(field.field)"
            let op = audit_operator_to_symbol(Int32(field.op)).map { String(cString: $0) } ?? "?"
            let value: String
            if let text = field.text {
                value = text
            } else if field.field == UInt32(AUDIT_ARCH) {
                value = [0xC000_003E: "b64", 0x4000_0003: "b32"][field.value] ?? "0x" + String(field.value, radix: 16)
            } else if field.field == UInt32(AUDIT_MSGTYPE) {
                value = Self.typeName(field.value)
            } else {
                value = String(Int32(bitPattern: field.value))
            }
            parts.append("\(name)\(op)\(value)")
        }
        if list == UInt32(AUDIT_FILTER_EXIT) {
            parts.append(
                mask.allSatisfy { $0 == UInt32.max } ? "all syscalls" : "syscalls " + AuditSession.auditedSyscalls.filter(covers).joined(separator: ","))
        }
        return parts.joined(separator: " ")
    }
}

extension KernelRule {
    var view: KernelRuleView { KernelRuleView(self) }
    public var summary: String { view.description }
}
