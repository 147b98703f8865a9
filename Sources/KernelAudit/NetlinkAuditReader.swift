import CAudit
import CLinux

#if canImport(Glibc)
    import Glibc
#endif

/// Counters of what the reader refused: nothing is dropped without being counted.
public struct NetlinkCounters: Sendable, Equatable {
    public var messages = 0
    public var notFromKernel = 0
    public var malformed = 0
    public var truncated = 0
    /// AUDIT_REPLACE probes: another process asked the kernel for the audit socket we hold.
    public var replaceRequests = 0

    static func + (a: NetlinkCounters, b: NetlinkCounters) -> NetlinkCounters {
        NetlinkCounters(
            messages: a.messages + b.messages, notFromKernel: a.notFromKernel + b.notFromKernel, malformed: a.malformed + b.malformed,
            truncated: a.truncated + b.truncated, replaceRequests: a.replaceRequests + b.replaceRequests)
    }
}

/// Reads audit records from a netlink socket in batches (recvmmsg into a large buffer), and
/// checks each message: the sender must be the kernel (port id 0) and `nlmsg_len` must fit.
public final class NetlinkAuditReader {
    public enum Mode: Sendable {
        /// The socket that registered as the audit daemon: the kernel unicasts everything here.
        case unicast
        /// The read-only multicast group (AUDIT_NLGRP_READLOG), beside another audit daemon.
        case multicast
    }

    public let fd: Int32
    public let mode: Mode
    public private(set) var counters = NetlinkCounters()
    /// The pid of the last process that asked for the audit socket (an AUDIT_REPLACE probe the
    /// kernel sent this socket, its holder), until taken.
    private var replaceRequester: UInt32?

    private static let batch = 64
    /// The kernel's largest audit message (MAX_AUDIT_MESSAGE_LENGTH) plus headers.
    private static let slotSize = 9216
    private var buffer: UnsafeMutableRawPointer
    private var headers: UnsafeMutablePointer<xw_mmsghdr>
    private var vectors: UnsafeMutablePointer<iovec>
    private var senders: UnsafeMutablePointer<sockaddr_nl>

    /// Opens a socket for `mode`. In unicast mode the socket registers this process as the
    /// audit daemon, so the kernel sends records to it (needs CAP_AUDIT_CONTROL).
    public init(mode: Mode, receiveBufferBytes: Int) throws(KernelAuditError) {
        self.mode = mode
        let fd = socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), NETLINK_AUDIT)
        try KernelAuditError.check(fd, "open audit netlink socket")
        self.fd = fd
        buffer = UnsafeMutableRawPointer.allocate(byteCount: Self.batch * Self.slotSize, alignment: 16)
        headers = UnsafeMutablePointer<xw_mmsghdr>.allocate(capacity: Self.batch)
        vectors = .allocate(capacity: Self.batch)
        senders = .allocate(capacity: Self.batch)

        var size = Int32(receiveBufferBytes)
        // SO_RCVBUFFORCE goes past rmem_max when we have CAP_NET_ADMIN; otherwise the capped size.
        if setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, socklen_t(MemoryLayout<Int32>.size)) != 0 {
            _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var address = sockaddr_nl()
        address.nl_family = sa_family_t(AF_NETLINK)
        address.nl_groups = mode == .multicast ? UInt32(1) << (UInt32(AUDIT_NLGRP_READLOG.rawValue) - 1) : 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_nl>.size)) }
        }
        do {
            try KernelAuditError.check(bound, mode == .multicast ? "join the audit multicast group" : "bind audit socket")
            if mode == .unicast {
                try KernelAuditError.check(audit_set_pid(fd, UInt32(getpid()), WAIT_YES), "register as the audit daemon")
            }
        } catch {
            close(fd)
            throw error
        }
    }

    deinit {
        close(fd)
        buffer.deallocate()
        headers.deallocate()
        vectors.deallocate()
        senders.deallocate()
    }

    /// Who asked for the audit socket since the last call, if anyone.
    public func takeReplaceRequester() -> UInt32? {
        defer { replaceRequester = nil }
        return replaceRequester
    }

    /// Reads every message waiting (without blocking) and hands each record to `handle`
    /// as (type, body). Returns how many messages were read.
    @discardableResult
    public func drain(_ handle: (UInt16, UnsafeRawBufferPointer) -> Void) -> Int {
        var total = 0
        while true {
            for i in 0..<Self.batch {
                vectors[i] = iovec(iov_base: buffer + i * Self.slotSize, iov_len: Self.slotSize)
                headers[i] = xw_mmsghdr()
                headers[i].msg_hdr.msg_name = UnsafeMutableRawPointer(senders + i)
                headers[i].msg_hdr.msg_namelen = socklen_t(MemoryLayout<sockaddr_nl>.size)
                headers[i].msg_hdr.msg_iov = vectors + i
                headers[i].msg_hdr.msg_iovlen = 1
            }
            let received = xw_recvmmsg(fd, headers, UInt32(Self.batch), 0, nil)
            if received <= 0 {
                // EAGAIN: nothing left. ENOBUFS: the socket overflowed and the kernel says so; the
                // records are gone (the kernel's lost counter and serial gaps account for them).
                return total
            }
            for i in 0..<Int(received) {
                let length = Int(headers[i].msg_len)
                if senders[i].nl_pid != 0 { counters.notFromKernel += 1; continue }
                if headers[i].msg_hdr.msg_flags & Int32(MSG_TRUNC) != 0 { counters.truncated += 1; continue }
                parseDatagram(UnsafeRawBufferPointer(start: buffer + i * Self.slotSize, count: length), handle)
            }
            total += Int(received)
            if Int(received) < Self.batch { return total }
        }
    }

    /// The kernel sends each audit record as a datagram of its own, and sets `nlmsg_len` to
    /// the payload length *without* the header (a quirk kept for compatibility). So the
    /// datagram's real length bounds the record; `nlmsg_len` is only checked for sanity.
    private func parseDatagram(_ datagram: UnsafeRawBufferPointer, _ handle: (UInt16, UnsafeRawBufferPointer) -> Void) {
        let headerSize = MemoryLayout<nlmsghdr>.size
        guard datagram.count >= headerSize else { counters.malformed += 1; return }
        let header = datagram.loadUnaligned(as: nlmsghdr.self)
        guard Int(header.nlmsg_len) <= datagram.count else { counters.malformed += 1; return }
        let type = header.nlmsg_type
        // Replies and keepalives are not records.
        if type == UInt16(NLMSG_ERROR) || type == UInt16(NLMSG_DONE) || type == UInt16(NLMSG_NOOP) { return }
        // The kernel's probe of the audit daemon when another process asks to become it: the
        // payload is the asker's pid. Not a record; the holder decides what to do.
        if type == UInt16(AUDIT_REPLACE) {
            counters.replaceRequests += 1
            if datagram.count >= headerSize + 4 { replaceRequester = datagram.loadUnaligned(fromByteOffset: headerSize, as: UInt32.self) }
            return
        }
        counters.messages += 1
        handle(type, UnsafeRawBufferPointer(rebasing: datagram[headerSize...]))
    }
}
