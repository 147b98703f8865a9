import AuditIngest
import CLinux
import CTCPInfo

#if canImport(Glibc)
    import Glibc
#endif

/// Finds the socket behind a process's file descriptor, in whatever network namespace the
/// process lives, and hears when sockets are destroyed. Keeps one pair of sock_diag sockets
/// (queries, destroy notifications) per network namespace in use.
public final class HostSockets {
    public struct Counters: Sendable, Equatable {
        public var resolved = 0
        /// The fd was closed or the process gone before we looked.
        public var fdGone = 0
        /// The inode was not in the namespace's tables (closed in between).
        public var notFound = 0
        /// Read straight from a copy of the process's descriptor (pidfd_getfd): no table walk.
        public var fromDescriptor = 0
        /// Answered from /proc/<pid>/net because sock_diag could not.
        public var procNetFallbacks = 0
        public var sockDiagErrors = 0
        /// Sockets sock_diag returned for lookups: the cost of resolution.
        public var socketsScanned = 0
        /// Destroy notifications the kernel dropped (receive buffer overrun).
        public var destroyOverruns = 0
        /// Times a namespace's socket closes came too fast and stopped being heard for a while.
        public var closeFloods = 0
        public var namespacesOpened = 0
        public var namespacesClosed = 0
    }

    final class Namespace {
        let inode: UInt64
        let query: SockDiag
        let destroyed: SockDiag
        var lastUse: Int64
        var closes: CloseFloodGate

        init(inode: UInt64, query: SockDiag, destroyed: SockDiag, now: Int64, closes: CloseFloodGate) {
            self.inode = inode
            self.query = query
            self.destroyed = destroyed
            self.lastUse = now
            self.closes = closes
        }
    }

    public let procfs: ProcFS
    public let ownNamespace: UInt64
    public private(set) var counters = Counters()
    private var namespaces: [UInt64: Namespace] = [:]
    private var failedNamespaces: [UInt64: Int64] = [:]
    private let log: (String) -> Void
    private let closeFlood: CloseFloodGate
    /// Opens the two sock_diag sockets (queries, destroy notifications) in another namespace
    /// when the agent may not enter it itself (it gave up CAP_SYS_ADMIN): the namespace helper.
    public var openElsewhere: ((_ inode: UInt64, _ pid: Int32) -> Result<(query: Int32, destroyed: Int32), any Error>)?
    /// Descriptors the namespaces hold, for the status: two each.
    public var namespaceCount: Int { namespaces.count }

    /// `closeFlood`: each namespace's gate on its socket closes, as configured.
    public init(procfs: ProcFS, closeFlood: CloseFloodGate, log: @escaping (String) -> Void) throws(NetlinkError) {
        self.procfs = procfs
        self.closeFlood = closeFlood
        self.log = log
        guard let own = procfs.networkNamespace(pid: getpid()) else {
            throw NetlinkError(operation: "read our own network namespace", code: errno)
        }
        ownNamespace = own
        let destroyed = try SockDiag()
        try destroyed.subscribeToDestroyed()
        namespaces[own] = Namespace(inode: own, query: try SockDiag(), destroyed: destroyed, now: 0, closes: closeFlood)
        counters.namespacesOpened = 1
    }

    /// The descriptors to poll for destroy notifications, one per watched namespace (they come
    /// and go), handed over in turn: the loop asks every turn, and an array each time cost more.
    public func forEachDestroyDescriptor(_ body: (Int32) -> Void) {
        for namespace in namespaces.values { body(namespace.destroyed.fd) }
    }

    /// Opens sock_diag sockets in the namespace of `pid` if we have none yet (a container's first
    /// process): its sockets' destroy notifications are only sent there.
    @discardableResult
    public func watchNamespace(_ inode: UInt64, of pid: Int32, now: Int64) -> Bool {
        if let known = namespaces[inode] {
            known.lastUse = now
            return true
        }
        // A namespace that could not be opened is not asked again for a while (one fork of the
        // helper per attempt).
        if let failed = failedNamespaces[inode], now - failed < 10_000 { return false }
        do {
            let query: SockDiag, destroyed: SockDiag
            if let openElsewhere {
                let (queryFD, destroyedFD) = try openElsewhere(inode, pid).get()
                (query, destroyed) = (SockDiag(adopting: queryFD), SockDiag(adopting: destroyedFD))
            } else {
                let fd = open("\(procfs.root)/\(pid)/ns/net", O_RDONLY | O_CLOEXEC)
                guard fd >= 0 else { return false }
                defer { close(fd) }
                // The process may have moved on; the file we opened is the namespace we join.
                var st = stat()
                guard fstat(fd, &st) == 0, UInt64(st.st_ino) == inode else { return false }
                (query, destroyed) = (try SockDiag(namespaceFD: fd), try SockDiag(namespaceFD: fd))
            }
            try destroyed.subscribeToDestroyed()
            namespaces[inode] = Namespace(inode: inode, query: query, destroyed: destroyed, now: now, closes: closeFlood)
            counters.namespacesOpened += 1
            return true
        } catch {
            counters.sockDiagErrors += 1
            if failedNamespaces.count > 1024 { failedNamespaces.removeAll() }
            failedNamespaces[inode] = now
            log("cannot watch network namespace \(inode) of pid \(pid): \(error)")
            return false
        }
    }

    /// Closes namespaces nobody used for `idleMilliseconds` (our own stays): a netlink socket
    /// keeps a dead container's namespace alive.
    public func closeIdleNamespaces(now: Int64, idleMilliseconds: Int64, inUse: Set<UInt64>) {
        for (inode, ns) in namespaces where inode != ownNamespace && !inUse.contains(inode) && now - ns.lastUse > idleMilliseconds {
            namespaces[inode] = nil
            counters.namespacesClosed += 1
        }
    }

    /// Reads every pending destroy notification, with the namespace it came from; a namespace
    /// whose closes come past the gate's rate stops being heard for its pause.
    public func drainDestroyed(now: Int64, _ body: (UInt64, InetSocket) -> Void) {
        for ns in namespaces.values {
            var heard = 0
            if !ns.destroyed.drainDestroyed({
                heard += 1
                body(ns.inode, $0)
            }) {
                counters.destroyOverruns += 1
                log("sock_diag destroy notifications were dropped by the kernel in namespace \(ns.inode)")
            }
            guard case .shut(let continuing) = ns.closes.heard(heard, now: now) else { continue }
            do { try ns.destroyed.hearDestroyed(false) } catch {
                log("cannot stop hearing socket closes in namespace \(ns.inode): \(error)")
                continue
            }
            if continuing { continue }
            counters.closeFloods += 1
            log(
                "sockets close in network namespace \(ns.inode) faster than \(ns.closes.perSecond) a second: their closes are not "
                    + "heard for \(ns.closes.pauseMilliseconds) ms (the flows that end meanwhile keep the counters last polled)")
        }
    }

    /// Namespaces whose pause is over hear their closes again; call every loop turn.
    public func reopenCloseGates(now: Int64) {
        for ns in namespaces.values where ns.closes.opens(now: now) {
            do { try ns.destroyed.hearDestroyed(true) } catch {
                ns.closes.staysShut(now: now)
                log("cannot hear socket closes in namespace \(ns.inode) again: \(error)")
            }
        }
    }

    /// Namespaces whose socket closes are not heard now (a flood).
    public var closesUnheard: [UInt64] { namespaces.values.filter(\.closes.isShut).map(\.inode).sorted() }

    /// Whether any namespace's socket closes are not heard now.
    public var anyClosesUnheard: Bool { namespaces.values.contains { $0.closes.isShut } }

    /// Whether the socket closes of `namespace` are not heard now: a flow there gets no
    /// notification when its socket is destroyed.
    public func closesUnheard(in namespace: UInt64) -> Bool { namespaces[namespace]?.closes.isShut ?? false }

    /// The socket behind `fd` of `pid`, with its namespace. `remote` narrows the kernel-side
    /// search for connected TCP sockets; `transports` says which tables to try first.
    public func resolve(
        pid: Int32, fd: Int32, namespace: UInt64?, family: UInt8, remotePort: UInt16?,
        transports: [Transport], now: Int64
    ) -> (namespace: UInt64, socket: InetSocket)? {
        guard let inode = procfs.socketInode(pid: pid, fd: fd) else {
            counters.fdGone += 1
            return nil
        }
        guard let netns = namespace ?? procfs.networkNamespace(pid: pid) else {
            counters.fdGone += 1
            return nil
        }
        let watched = watchNamespace(netns, of: pid, now: now)
        if let socket = Self.inspect(pid: pid, fd: fd, inode: inode) {
            counters.fromDescriptor += 1
            counters.resolved += 1
            return (netns, socket)
        }
        if watched, let ns = namespaces[netns] {
            do {
                for transport in transports {
                    let (socket, scanned) = try ns.query.find(
                        inode: inode, family: family, transport: transport,
                        remotePort: transport == .tcp ? remotePort : nil)
                    counters.socketsScanned += scanned
                    if let socket {
                        counters.resolved += 1
                        return (netns, socket)
                    }
                }
                counters.notFound += 1
                return nil
            } catch {
                counters.sockDiagErrors += 1
            }
        }
        // No sock_diag in that namespace: the process's own view of /proc/net.
        for transport in transports {
            let ipv6 = family == UInt8(AF_INET6)
            let table: ArraySlice<UInt8>?
            switch (transport, ipv6) {
            case (.tcp, false): table = procfs.read(pid: pid, "net/tcp")
            case (.tcp, true): table = procfs.read(pid: pid, "net/tcp6")
            case (.udp, false): table = procfs.read(pid: pid, "net/udp")
            case (.udp, true): table = procfs.read(pid: pid, "net/udp6")
            }
            guard let table else { continue }
            if let socket = ProcNetTable.parse(table, transport: transport, ipv6: ipv6).first(where: { $0.inode == inode }) {
                counters.procNetFallbacks += 1
                counters.resolved += 1
                return (netns, socket)
            }
        }
        counters.notFound += 1
        return nil
    }

    /// The socket behind another process's descriptor, read through a copy of it: address,
    /// port, protocol, cookie and TCP counters in a few syscalls, whatever the number of sockets
    /// on the host. nil when the copy is refused (no ptrace access, kernel before 5.6) or the
    /// descriptor now holds another socket.
    public static func inspect(pid: Int32, fd: Int32, inode: UInt64) -> InetSocket? {
        let copy = xw_copy_descriptor(pid, fd)
        guard copy >= 0 else { return nil }
        defer { close(copy) }
        var st = stat()
        guard fstat(copy, &st) == 0, UInt64(st.st_ino) == inode else { return nil }
        func option<T: BitwiseCopyable>(_ level: Int32, _ name: Int32, _ value: inout T) -> Bool {
            var length = socklen_t(MemoryLayout<T>.size)
            return getsockopt(copy, level, name, &value, &length) == 0
        }
        var proto: Int32 = 0
        var cookie: UInt64 = 0
        guard option(SOL_SOCKET, xw_so_protocol, &proto), proto == IPPROTO_TCP || proto == IPPROTO_UDP,
            option(SOL_SOCKET, xw_so_cookie, &cookie)
        else { return nil }
        var local = sockaddr_storage()
        var peer = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let named = withUnsafeMutablePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(copy, $0, &length) } }
        guard named == 0, let (family, localAddress, localPort) = Self.endpoint(local) else { return nil }
        // A connect still in SYN_SENT has no peer yet: the caller knows the remote end.
        length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let connected = withUnsafeMutablePointer(to: &peer) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(copy, $0, &length) } }
        let remote = connected == 0 ? Self.endpoint(peer) : nil
        var socket = InetSocket(
            transport: proto == IPPROTO_TCP ? .tcp : .udp, family: family, state: 0,
            localAddress: localAddress, localPort: localPort,
            remoteAddress: remote?.1 ?? IPAddress(bytes: [UInt8](repeating: 0, count: family == UInt8(AF_INET6) ? 16 : 4)),
            remotePort: remote?.2 ?? 0, inode: inode, uid: st.st_uid, cookie: cookie, bytesOut: nil, bytesIn: nil)
        if proto == IPPROTO_TCP {
            var info = [UInt8](repeating: 0, count: 512)
            var size = socklen_t(info.count)
            if getsockopt(copy, Int32(IPPROTO_TCP), xw_tcp_info, &info, &size) == 0 {
                var counters = xw_tcp_counters()
                if xw_tcp_counters(info, Int(size), &counters) != 0 {
                    socket.state = counters.state
                    (socket.bytesOut, socket.bytesIn) = SockDiag.payloadBytes(counters, state: counters.state)
                }
            }
        }
        return socket
    }

    static func endpoint(_ storage: sockaddr_storage) -> (UInt8, IPAddress, UInt16)? {
        let family = Int32(storage.ss_family)
        return withUnsafeBytes(of: storage) { raw in
            switch family {
            case AF_INET: return (UInt8(AF_INET), IPAddress(bytes: raw[4..<8]), UInt16(raw[2]) << 8 | UInt16(raw[3]))
            case AF_INET6: return (UInt8(AF_INET6), IPAddress(bytes: raw[8..<24]), UInt16(raw[2]) << 8 | UInt16(raw[3]))
            default: return nil
            }
        }
    }

    /// The socket's current counters; nil when it no longer exists (or its namespace is gone).
    public func refresh(_ socket: InetSocket, namespace: UInt64) -> InetSocket? {
        guard let ns = namespaces[namespace], socket.cookie != nil else { return nil }
        do {
            return try ns.query.lookup(socket)
        } catch {
            counters.sockDiagErrors += 1
            return nil
        }
    }
}
