import CCap

#if canImport(Glibc)
    import Glibc
#endif

/// The capabilities xferwatchd keeps once it runs, and why it needs each. Everything else is
/// dropped from the effective, permitted, inheritable, ambient and (as root) bounding sets.
public enum KeptCapability: CaseIterable, Sendable {
    /// Unicast mode: register as the audit daemon, install and remove its rules, read and reset
    /// the kernel's audit status (checked on every request, not only when the socket opens).
    case auditControl
    /// Multicast mode: read the audit stream beside auditd.
    case auditRead
    /// Other users' `/proc/<pid>/exe`, `fd/*` links and `ns/net` (ptrace read access), and
    /// pidfd_getfd for the byte counters of a socket a short-lived client leaves behind.
    case sysPtrace
    /// Other users' `/proc/<pid>/fd` directories (mode 0500), and executables YARA must read
    /// that the agent's user could not (mode 0711 binaries).
    case dacReadSearch
    /// The packet tap: an AF_PACKET socket (`[inspection]`).
    case netRaw
    /// The namespace helper only: setns into another network namespace to open sock_diag
    /// sockets there. The agent itself never keeps it.
    case sysAdmin

    /// What the agent keeps.
    public static let agent: [KeptCapability] = [.auditControl, .auditRead, .sysPtrace, .dacReadSearch, .netRaw]
    /// What the namespace helper keeps: setns (CAP_SYS_ADMIN) into the namespace of another
    /// user's process (CAP_SYS_PTRACE to open its /proc/<pid>/ns/net).
    public static let namespaceHelper: [KeptCapability] = [.sysAdmin, .sysPtrace]

    public var value: cap_value_t {
        switch self {
        case .auditControl: CAP_AUDIT_CONTROL
        case .auditRead: CAP_AUDIT_READ
        case .sysPtrace: CAP_SYS_PTRACE
        case .dacReadSearch: CAP_DAC_READ_SEARCH
        case .netRaw: CAP_NET_RAW
        case .sysAdmin: CAP_SYS_ADMIN
        }
    }
}

public struct PrivilegeError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ what: String, errno code: Int32? = nil) {
        description = code.map { "\(what): \(String(cString: strerror($0)))" } ?? what
    }
}

/// Who the process is and what it may do, as `agentctl status` shows it.
public struct ProcessPrivileges: Sendable {
    public var user: String
    public var uid: UInt32
    public var gid: UInt32
    /// Names as in capabilities(7), e.g. CAP_AUDIT_CONTROL.
    public var effective: [String]
    public var bounding: [String]
    public var noNewPrivileges: Bool

    /// The calling thread's view (all of the agent's threads share it: the drop happens before
    /// any thread starts).
    public static func current() -> ProcessPrivileges {
        let uid = geteuid()
        var effective: [String] = [], bounding: [String] = []
        let state = cap_get_proc()
        defer { if let state { cap_free(UnsafeMutableRawPointer(state)) } }
        for cap in 0..<cap_value_t(cap_max_bits()) {
            let name = capabilityName(cap)
            var flag = CAP_CLEAR
            if let state, cap_get_flag(state, cap, CAP_EFFECTIVE, &flag) == 0, flag == CAP_SET { effective.append(name) }
            if cap_get_bound(cap) == 1 { bounding.append(name) }
        }
        return ProcessPrivileges(
            user: userName(uid) ?? String(uid), uid: uid, gid: getegid(), effective: effective,
            bounding: bounding,
            noNewPrivileges: xw_prctl(PR_GET_NO_NEW_PRIVS, 0, 0) == 1)
    }
}

/// Sheds what xferwatchd does not need once its root-only setup is done (audit socket open,
/// rules installed, control socket bound).
public enum PrivilegeDrop {
    public struct Account: Sendable {
        public let name: String
        public let uid: uid_t
        public let gid: gid_t
    }

    /// The account named `name`, from the passwd database.
    public static func account(named name: String) throws(PrivilegeError) -> Account {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16_384)
        let status = getpwnam_r(name, &entry, &buffer, buffer.count, &result)
        guard status == 0, result != nil else {
            throw PrivilegeError("user \(name) does not exist" + (status == 0 ? "" : " (\(String(cString: strerror(status))))"))
        }
        return Account(name: name, uid: entry.pw_uid, gid: entry.pw_gid)
    }

    /// As root: becomes `account` (its primary group only) keeping `wanted` (the agent's set),
    /// with the bounding set cut to it so nothing can win the rest back. Not root (systemd's
    /// User= with AmbientCapabilities=): keeps only what it has of that set. Either way no new
    /// privileges (setuid binaries, file capabilities) and an empty ambient set for children.
    /// Must run before any thread starts: capabilities are per thread. Returns the kept
    /// capabilities the process does not have (what it will do without is the caller's to say).
    public static func drop(to account: Account?, keeping wanted: [KeptCapability] = KeptCapability.agent) throws(PrivilegeError) -> [KeptCapability] {
        let threads = threadCount()
        guard threads == 1 else { throw PrivilegeError("\(threads) threads are running; the drop must come before any starts") }
        let kept = Set(wanted.map(\.value))
        if geteuid() == 0, let account {
            for cap in 0..<cap_value_t(cap_max_bits()) where !kept.contains(cap) && cap_get_bound(cap) == 1 {
                guard cap_drop_bound(cap) == 0 else { throw PrivilegeError("cannot drop \(capabilityName(cap)) from the bounding set", errno: errno) }
            }
            guard xw_prctl(PR_SET_KEEPCAPS, 1, 0) == 0 else { throw PrivilegeError("prctl(PR_SET_KEEPCAPS)", errno: errno) }
            var groups = [account.gid]
            guard setgroups(1, &groups) == 0 else { throw PrivilegeError("setgroups", errno: errno) }
            guard xw_setresgid(account.gid, account.gid, account.gid) == 0 else { throw PrivilegeError("setresgid(\(account.gid))", errno: errno) }
            guard xw_setresuid(account.uid, account.uid, account.uid) == 0 else { throw PrivilegeError("setresuid(\(account.uid))", errno: errno) }
            _ = xw_prctl(PR_SET_KEEPCAPS, 0, 0)
        }
        let missing = try keepOnly(wanted)
        guard xw_prctl(PR_CAP_AMBIENT, UInt(PR_CAP_AMBIENT_CLEAR_ALL), 0) == 0 else { throw PrivilegeError("clear the ambient capabilities", errno: errno) }
        guard xw_prctl(PR_SET_NO_NEW_PRIVS, 1, 0) == 0 else { throw PrivilegeError("prctl(PR_SET_NO_NEW_PRIVS)", errno: errno) }
        // A drop that did not take must not pass for one.
        if let account, account.uid != 0, setuid(0) == 0 { throw PrivilegeError("still able to become root after the drop") }
        return missing
    }

    /// Sets effective and permitted to `wanted` ∩ permitted, inheritable to nothing.
    private static func keepOnly(_ wanted: [KeptCapability]) throws(PrivilegeError) -> [KeptCapability] {
        guard let current = cap_get_proc() else { throw PrivilegeError("cap_get_proc", errno: errno) }
        defer { cap_free(UnsafeMutableRawPointer(current)) }
        var have: [cap_value_t] = [], missing: [KeptCapability] = []
        for capability in wanted {
            var flag = CAP_CLEAR
            if cap_get_flag(current, capability.value, CAP_PERMITTED, &flag) == 0, flag == CAP_SET {
                have.append(capability.value)
            } else {
                missing.append(capability)
            }
        }
        guard let next = cap_init() else { throw PrivilegeError("cap_init", errno: errno) }
        defer { cap_free(UnsafeMutableRawPointer(next)) }
        if !have.isEmpty {
            guard cap_set_flag(next, CAP_PERMITTED, Int32(have.count), have, CAP_SET) == 0,
                cap_set_flag(next, CAP_EFFECTIVE, Int32(have.count), have, CAP_SET) == 0
            else { throw PrivilegeError("cap_set_flag", errno: errno) }
        }
        guard cap_set_proc(next) == 0 else { throw PrivilegeError("cap_set_proc", errno: errno) }
        return missing
    }

    /// Hands a directory the agent just created to `account`, so it can still write there
    /// after the drop.
    public static func give(directory path: String, to account: Account, mode: mode_t) throws(PrivilegeError) {
        guard chown(path, account.uid, account.gid) == 0, chmod(path, mode) == 0 else {
            throw PrivilegeError("cannot give \(path) to \(account.name)", errno: errno)
        }
    }

    private static func threadCount() -> Int {
        guard let dir = opendir("/proc/self/task") else { return 1 }
        defer { closedir(dir) }
        var count = 0
        while let entry = readdir(dir) {
            if entry.pointee.d_name.0 != CChar(UInt8(ascii: ".")) { count += 1 }
        }
        return count
    }
}

/// CAP_AUDIT_CONTROL for 30, as capabilities(7) spells it.
func capabilityName(_ cap: cap_value_t) -> String {
    guard let name = cap_to_name(cap) else { return String(cap) }
    defer { cap_free(UnsafeMutableRawPointer(name)) }
    return String(cString: name).uppercased()
}

func userName(_ uid: uid_t) -> String? {
    var entry = passwd()
    var result: UnsafeMutablePointer<passwd>?
    var buffer = [CChar](repeating: 0, count: 16_384)
    guard getpwuid_r(uid, &entry, &buffer, buffer.count, &result) == 0, result != nil, let name = entry.pw_name else { return nil }
    return String(cString: name)
}
