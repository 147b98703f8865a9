import AuditIngest

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
        /// Answered from /proc/<pid>/net because sock_diag could not.
        public var procNetFallbacks = 0
        public var sockDiagErrors = 0
        /// Sockets sock_diag returned for lookups: the cost of resolution.
        public var socketsScanned = 0
        /// Destroy notifications the kernel dropped (receive buffer overrun).
        public var destroyOverruns = 0
        public var namespacesOpened = 0
        public var namespacesClosed = 0
    }

    final class Namespace {
        let inode: UInt64
        let query: SockDiag
        let destroyed: SockDiag
        var lastUse: Int64

        init(inode: UInt64, query: SockDiag, destroyed: SockDiag, now: Int64) {
            self.inode = inode
            self.query = query
            self.destroyed = destroyed
            self.lastUse = now
        }
    }

    public let procfs: ProcFS
    public let ownNamespace: UInt64
    public private(set) var counters = Counters()
    private var namespaces: [UInt64: Namespace] = [:]
    private let log: (String) -> Void

    public init(procfs: ProcFS, log: @escaping (String) -> Void) throws(SockDiagError) {
        self.procfs = procfs
        self.log = log
        guard let own = procfs.networkNamespace(pid: getpid()) else {
            throw SockDiagError(operation: "read our own network namespace", code: errno)
        }
        ownNamespace = own
        let destroyed = try SockDiag()
        try destroyed.subscribeToDestroyed()
        namespaces[own] = Namespace(inode: own, query: try SockDiag(), destroyed: destroyed, now: 0)
        counters.namespacesOpened = 1
    }

    /// The descriptors to poll for destroy notifications (changes as namespaces come and go).
    public var destroyDescriptors: [Int32] { namespaces.values.map { $0.destroyed.fd } }

    /// Opens sock_diag sockets in the namespace of `pid` if we have none yet (a container's first
    /// process): its sockets' destroy notifications are only sent there.
    @discardableResult
    public func watchNamespace(_ inode: UInt64, of pid: Int32, now: Int64) -> Bool {
        if let known = namespaces[inode] {
            known.lastUse = now
            return true
        }
        let fd = open("\(procfs.root)/\(pid)/ns/net", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        // The process may have moved on; the file we opened is the namespace we join.
        var st = stat()
        guard fstat(fd, &st) == 0, UInt64(st.st_ino) == inode else { return false }
        do {
            let destroyed = try SockDiag(namespaceFD: fd)
            try destroyed.subscribeToDestroyed()
            namespaces[inode] = Namespace(inode: inode, query: try SockDiag(namespaceFD: fd), destroyed: destroyed, now: now)
            counters.namespacesOpened += 1
            return true
        } catch {
            counters.sockDiagErrors += 1
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

    /// Reads every pending destroy notification, with the namespace it came from.
    public func drainDestroyed(_ body: (UInt64, InetSocket) -> Void) {
        for ns in namespaces.values {
            if !ns.destroyed.drainDestroyed({ body(ns.inode, $0) }) {
                counters.destroyOverruns += 1
                log("sock_diag destroy notifications were dropped by the kernel in namespace \(ns.inode)")
            }
        }
    }

    /// The socket behind `fd` of `pid`, with its namespace. `remote` narrows the kernel-side
    /// search for connected TCP sockets; `transports` says which tables to try first.
    public func resolve(pid: Int32, fd: Int32, namespace: UInt64?, family: UInt8, remotePort: UInt16?,
                        transports: [Transport], now: Int64) -> (namespace: UInt64, socket: InetSocket)? {
        guard let inode = procfs.socketInode(pid: pid, fd: fd) else {
            counters.fdGone += 1
            return nil
        }
        guard let netns = namespace ?? procfs.networkNamespace(pid: pid) else {
            counters.fdGone += 1
            return nil
        }
        if watchNamespace(netns, of: pid, now: now), let ns = namespaces[netns] {
            do {
                for transport in transports {
                    let candidates = try ns.query.dump(family: family, transport: transport,
                                                       remotePort: transport == .tcp ? remotePort : nil)
                    counters.socketsScanned += candidates.count
                    if let socket = candidates.first(where: { $0.inode == inode }) {
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
