import AuditIngest
import Hashing
import Runtime

/// One process image: what a process was between two execs (or since we first saw it).
/// A class so that children, flows and alerts can share it after the process is gone and
/// the table has dropped it: a dead parent lives on exactly as long as someone refers to it.
public final class ProcessRecord: @unchecked Sendable {
    // Mutable state (server marks, exit, LRU) is only touched by the agent's single event loop.
    public let pid: Int32
    public let ppid: Int32
    /// `/proc/<pid>/stat` start time in clock ticks after boot; nil when the process was gone
    /// before we could read it, or until it is read (`startedBy`). With the pid, this tells two
    /// processes apart across pid reuse.
    public internal(set) var startTicks: UInt64?
    /// While the start time of an execve'd process is unread: the boot-clock tick by which it
    /// had started (when its execve was read). A start time read later that is no later than
    /// this is its own; a later one is another process's that took the pid since.
    public internal(set) var startedBy: UInt64?
    /// When this image started, milliseconds since the epoch: the execve event's time, or the
    /// process start for processes found in /proc at start-up.
    public let startTime: Int64
    public let executable: String
    public let arguments: [String]
    public let workingDirectory: String?
    /// Real, effective and saved user ids (a setuid program differs in the last two).
    public let uid: UInt32?
    public let euid: UInt32?
    public let suid: UInt32?
    /// Real, effective and saved group ids.
    public let gid: UInt32?
    public let egid: UInt32?
    public let sgid: UInt32?
    /// The login uid; 4294967295 means unset (services started by init).
    public let auid: UInt32?
    public let sessionID: UInt32?
    /// The POSIX session (setsid) from /proc: a terminal session's processes share it.
    public internal(set) var terminalSession: Int32?
    /// The controlling terminal as audit names it (`pts0`), nil when there is none.
    public let tty: String?
    /// Read from /proc at execve for the programs `ProcessTable.eagerPrograms` names, for the
    /// rest when a flow or an alert first asks (`detailsPending` until then).
    public internal(set) var stdin: StdinKind
    public internal(set) var networkNamespace: UInt64?
    /// The container it runs in (its cgroup), read with stdin; a process gone before that
    /// takes its parent's.
    public internal(set) var container: ContainerIdentity?
    var detailsPending = false
    /// The time of the last event at which /proc showed this process running (`current`).
    var seenRunningAt: Int64?
    /// See `Source`.
    public let source: Source
    public internal(set) var parent: ProcessRecord?
    /// Recent peers it accepted connections from (bounded): its own connects back to them,
    /// like an FTP server's active-mode data connection, are the server's side of a session.
    public internal(set) var acceptedPeers: [IPAddress] = []
    public internal(set) var exited = false
    /// For LRU eviction.
    var lastUse: UInt64 = 0

    /// How we learned about it: an audited execve, /proc, or only the socket syscall's own record.
    public enum Source: String, Sendable { case execve, proc, syscall }

    public static let unsetLoginUID: UInt32 = 4_294_967_295

    public init(
        pid: Int32, ppid: Int32, startTicks: UInt64?, startTime: Int64, executable: String, arguments: [String],
        workingDirectory: String?, uid: UInt32?, euid: UInt32?, suid: UInt32?, gid: UInt32?, egid: UInt32?, sgid: UInt32?, auid: UInt32?, sessionID: UInt32?,
        terminalSession: Int32?, tty: String?, stdin: StdinKind, networkNamespace: UInt64?, source: Source, parent: ProcessRecord? = nil
    ) {
        self.pid = pid
        self.ppid = ppid
        self.startTicks = startTicks
        self.startTime = startTime
        self.executable = executable
        self.arguments = arguments
        self.workingDirectory = workingDirectory
        self.uid = uid
        self.euid = euid
        self.suid = suid
        self.gid = gid
        self.egid = egid
        self.sgid = sgid
        self.auid = auid
        self.sessionID = sessionID
        self.terminalSession = terminalSession
        self.tty = tty
        self.stdin = stdin
        self.networkNamespace = networkNamespace
        self.source = source
        self.parent = parent
    }

    public func accepted(from peer: IPAddress) {
        guard !acceptedPeers.contains(peer) else { return }
        if acceptedPeers.count >= 32 { acceptedPeers.removeFirst() }
        acceptedPeers.append(peer)
    }

    /// Itself and the ancestors that run the same program: a daemon and its forked workers.
    public var sameProgramLineage: [ProcessRecord] {
        var result = [self]
        var next = parent
        while let p = next, p.executableName == executableName, result.count < 16 {
            result.append(p)
            next = p.parent
        }
        return result
    }

    /// The last path component of the executable (computed once: rules ask often).
    public private(set) lazy var executableName = baseName(executable)

    /// The program the user meant: busybox applets and `-bash` login shells by their own name.
    public private(set) lazy var programName: String = {
        let first = argumentZeroName
        if (first.hasPrefix("busybox") || identity?.name == "busybox" && first == executableName) && arguments.count > 1 {
            return baseName(arguments[1])
        }
        return first.isEmpty ? executableName : first
    }()

    /// argv[0]'s base name, a login shell's `-` taken off.
    private var argumentZeroName: String {
        let first = arguments.first.map(baseName) ?? executableName
        return first.hasPrefix("-") ? String(first.dropFirst()) : first
    }

    /// The executable's file was deleted after the process started (`/proc/<pid>/exe` says so).
    public internal(set) var executableDeleted = false

    /// The process runs a binary with no file on disk: from memfd_create (fileless malware's
    /// way), deleted before the execve was read, or deleted since.
    public var executableHasNoFile: Bool {
        executable.hasPrefix("/memfd:") || executable.hasSuffix(" (deleted)") || executableDeleted
    }

    /// What the binary is when it is a known program (`ProgramCatalog`); nil when it is not,
    /// when it could not be read, and in a replay.
    public internal(set) var identity: ProgramIdentity?
    /// The host's file audit saw executed, as it was when identified: scanning's clean set
    /// answers from it without another stat. Nil when identified through /proc/<pid>/exe.
    public internal(set) var executableFile: FileVersion?

    /// Its binary's digests, once `ExecutableHashes` has them, and the file version hashed.
    public internal(set) var executableDigests: FileDigests?
    var hashedFile: FileVersion?

    /// The program it is, for the rules: a known binary by its identity (a renamed tnftp is
    /// `tnftp`), busybox by the applet it runs, anything else by its names.
    public var program: String {
        guard let identity, identity.name != "busybox" else { return programName }
        return identity.name
    }

    /// Whether `names` holds the program it is. Busybox runs the applet argv[0] names, or
    /// argv[1]'s when argv[0] is busybox itself, whatever the file is called.
    /// Whether `stat`, read now, is this process's and not that of a later process with its
    /// pid; nil when neither its start time nor a bound on it is known.
    func isSameProcess(as stat: ProcStat) -> Bool? {
        if let startTicks { return startTicks == stat.startTicks }
        if let startedBy { return stat.startTicks <= startedBy }
        return nil
    }

    /// Takes the start time and session left unread at execve from `stat`, its own.
    func adoptStart(from stat: ProcStat) {
        guard startTicks == nil else { return }
        startTicks = stat.startTicks
        terminalSession = stat.session
        startedBy = nil
    }

    public func isProgram(in names: Set<String>) -> Bool {
        if identity?.name == "busybox" { return names.contains(programName) || names.contains(argumentZeroName) }
        if identity != nil { return names.contains(program) }
        return names.contains(programName) || names.contains(executableName)
    }

    /// "/tmp/.x/kworker is a copy of /usr/bin/tnftp" when the binary is a known program under
    /// another path; nil otherwise.
    public var identityNote: String? {
        guard let identity, identity.path != executable else { return nil }
        return "\(executable) is \(executableName == identity.name ? "a copy" : "a renamed copy") of \(identity.path) (same ELF build-id)"
    }

    /// Parent, grandparent... up to pid 1 or the first unknown ancestor (at most `limit`).
    public func ancestors(limit: Int = 64) -> [ProcessRecord] {
        var result: [ProcessRecord] = []
        var next = parent
        while let p = next, result.count < limit {
            result.append(p)
            next = p.parent
        }
        return result
    }

    public private(set) lazy var commandLine = arguments.joined(separator: " ")
}
