import CLinux
import Privileges
import Runtime

#if canImport(Glibc)
    import Glibc
#endif

/// Privilege separation for other network namespaces, in the spirit of OpenSSH's: sock_diag
/// answers only for the namespace its socket was created in, and entering another namespace
/// (setns) needs CAP_SYS_ADMIN, which the agent gives up. Before the drop the agent forks this
/// helper, which keeps only CAP_SYS_ADMIN and CAP_SYS_PTRACE, runs as the agent's user, holds no
/// descriptor but its end of a socket pair, and does one thing: given a pid and the inode of its
/// network namespace, it opens /proc/<pid>/ns/net itself (checked against that inode: the agent
/// never names a path), and hands back two sock_diag sockets created there (SCM_RIGHTS). Each
/// request is served by a fresh child of the helper: a request that crashes it costs that child
/// only, and the next request gets a new one.
final class NamespaceHelper {
    enum Failure: Error, CustomStringConvertible {
        /// The helper said why (the process exited, another namespace by now...).
        case refused(Int32)
        /// The helper is gone: no other namespace can be opened any more.
        case gone(String)

        var description: String {
            switch self {
            case .refused(let code): String(cString: strerror(code))
            case .gone(let why): "the namespace helper is gone (\(why))"
            }
        }
    }

    private var socket: Int32
    let pid: pid_t
    private(set) var alive = true
    /// Told once when the helper dies or a request crashed its child.
    var onTrouble: (String) -> Void = { _ in }

    private init(socket: Int32, pid: pid_t) {
        self.socket = socket
        self.pid = pid
    }

    deinit { if socket >= 0 { close(socket) } }

    /// Ends the helper and waits for it: it leaves when its socket closes. Not by a signal:
    /// the agent, dropped to its user, may not signal a helper that has not dropped yet.
    func stop() {
        guard socket >= 0 else { return }
        close(socket)
        socket = -1
        waitpid(pid, nil, 0)
    }

    /// Forks the helper; call as root (or with CAP_SYS_ADMIN), before the privilege drop and
    /// before any thread starts. nil when it cannot.
    static func spawn(account: PrivilegeDrop.Account?, log: Logger) -> NamespaceHelper? {
        var pair: [Int32] = [-1, -1]
        guard socketpair(AF_UNIX, Int32(SOCK_SEQPACKET.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &pair) == 0 else {
            log.error("namespace helper: socketpair: \(String(cString: strerror(errno)))")
            return nil
        }
        let child = fork()
        if child < 0 {
            log.error("namespace helper: fork: \(String(cString: strerror(errno)))")
            close(pair[0])
            close(pair[1])
            return nil
        }
        if child == 0 {
            close(pair[0])
            serve(socket: pair[1], account: account)
        }
        close(pair[1])
        log.info("namespace helper: pid \(child), keeping CAP_SYS_ADMIN and CAP_SYS_PTRACE only")
        return NamespaceHelper(socket: pair[0], pid: child)
    }

    /// Two sock_diag sockets (queries, destroy notifications) in the network namespace
    /// `inode` of process `pid`.
    func open(namespace inode: UInt64, of pid: Int32) -> Result<(query: Int32, destroyed: Int32), Failure> {
        guard alive else { return .failure(.gone("it exited earlier")) }
        var request = [UInt8](repeating: 0, count: 12)
        withUnsafeBytes(of: pid.littleEndian) { request.replaceSubrange(0..<4, with: $0) }
        withUnsafeBytes(of: inode.littleEndian) { request.replaceSubrange(4..<12, with: $0) }
        guard request.withUnsafeBytes({ xw_send_with_fds(socket, $0.baseAddress, 12, nil, 0) }) == 12 else { return gone("send: \(errnoText())") }
        var ready = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
        guard poll(&ready, 1, 2000) == 1 else { return gone("no answer within 2 s") }
        var status: Int32 = 0
        var fds: [Int32] = [-1, -1, -1, -1]
        var count: Int32 = 0
        let received = withUnsafeMutableBytes(of: &status) { xw_receive_with_fds(socket, $0.baseAddress, 4, &fds, &count) }
        guard received == 4 else { return gone(received == 0 ? "it exited" : "receive: \(errnoText())") }
        if status == EIO { onTrouble("the namespace helper's child crashed opening namespace \(inode) of pid \(pid); the next request gets a new one") }
        guard status == 0, count == 2 else {
            for fd in fds.prefix(Int(count)) { close(fd) }
            return .failure(.refused(status == 0 ? EPROTO : status))
        }
        return .success((fds[0], fds[1]))
    }

    private func gone(_ why: String) -> Result<(query: Int32, destroyed: Int32), Failure> {
        if alive {
            alive = false
            onTrouble("the namespace helper (pid \(pid)) is gone: \(why); flows in other network namespaces lose their exact byte counts")
        }
        return .failure(.gone(why))
    }

    private func errnoText() -> String { String(cString: strerror(errno)) }

    // MARK: the helper process

    /// The helper's life: no descriptors but `socket` (and stdio), the agent's user with
    /// CAP_SYS_ADMIN and CAP_SYS_PTRACE, then requests until the agent closes its end.
    private static func serve(socket: Int32, account: PrivilegeDrop.Account?) -> Never {
        // The agent blocks its stop signals for its signalfd; the helper takes them plainly,
        // even if whoever started the agent ignored them (an ignored signal stays ignored across
        // exec, and the agent's stop waits for the helper to end).
        var none = sigset_t()
        sigemptyset(&none)
        sigprocmask(SIG_SETMASK, &none, nil)
        for stop in [SIGTERM, SIGINT, SIGHUP] { signal(stop, SIG_DFL) }
        closeDescriptors(except: socket)
        let null = Glibc.open("/dev/null", O_RDONLY)
        if null >= 0 { dup2(null, 0); close(null) }
        do {
            let missing = try PrivilegeDrop.drop(to: account, keeping: KeptCapability.namespaceHelper)
            if !missing.isEmpty { printError("namespace helper: without \(missing) it cannot open other namespaces") }
        } catch {
            printError("namespace helper: cannot drop privileges: \(error)")
            _exit(1)
        }
        var request = [UInt8](repeating: 0, count: 16)
        while true {
            let n = request.withUnsafeMutableBytes { read(socket, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { _exit(0) }
            guard n == 12 else {
                reply(socket, status: EINVAL, fds: [])
                continue
            }
            let pid = request.withUnsafeBytes { Int32(littleEndian: $0.loadUnaligned(fromByteOffset: 0, as: Int32.self)) }
            let inode = request.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: 4, as: UInt64.self)) }
            let worker = fork()
            if worker == 0 { _exit(openSockets(socket, pid: pid, inode: inode) ? 0 : 3) }
            var status: Int32 = 0
            if worker < 0 || waitpid(worker, &status, 0) != worker || status != 0 {
                // The child crashed or never answered: the agent must not wait for it.
                reply(socket, status: EIO, fds: [])
            }
        }
    }

    /// In the helper's child: joins the namespace (its inode checked on the file the helper
    /// opened itself) and answers with two sock_diag sockets made there.
    private static func openSockets(_ socket: Int32, pid: Int32, inode: UInt64) -> Bool {
        guard pid > 0 else { return reply(socket, status: EINVAL, fds: []) }
        let namespace = Glibc.open("/proc/\(pid)/ns/net", O_RDONLY | O_CLOEXEC)
        guard namespace >= 0 else { return reply(socket, status: errno, fds: []) }
        var info = stat()
        guard fstat(namespace, &info) == 0, UInt64(info.st_ino) == inode else { return reply(socket, status: ESRCH, fds: []) }
        guard xw_setns(namespace, xw_clone_newnet) == 0 else { return reply(socket, status: errno, fds: []) }
        let query = Glibc.socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), NETLINK_SOCK_DIAG)
        let destroyed = Glibc.socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), NETLINK_SOCK_DIAG)
        guard query >= 0, destroyed >= 0 else { return reply(socket, status: errno, fds: []) }
        return reply(socket, status: 0, fds: [query, destroyed])
    }

    @discardableResult
    private static func reply(_ socket: Int32, status: Int32, fds: [Int32]) -> Bool {
        var status = status
        return withUnsafeBytes(of: &status) { bytes in
            fds.withUnsafeBufferPointer { xw_send_with_fds(socket, bytes.baseAddress, 4, $0.baseAddress, Int32($0.count)) }
        } == 4
    }

    private static func closeDescriptors(except keep: Int32) {
        guard let directory = opendir("/proc/self/fd") else { return }
        var open: [Int32] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if let fd = Int32(name), fd > 2, fd != keep { open.append(fd) }
        }
        let own = dirfd(directory)
        closedir(directory)
        for fd in open where fd != own { close(fd) }
    }
}
