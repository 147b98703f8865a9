import AuditIngest
import CLinux
import CTCPInfo

#if canImport(Glibc)
    import Glibc
#endif

public enum Transport: String, Sendable {
    case tcp, udp

    var ipProtocol: UInt8 { self == .tcp ? UInt8(IPPROTO_TCP) : UInt8(IPPROTO_UDP) }
}

/// One TCP or UDP socket as sock_diag (or /proc/net) reports it.
public struct InetSocket: Sendable, Equatable {
    public var transport: Transport
    public var family: UInt8
    public var state: UInt8
    public var localAddress: IPAddress
    public var localPort: UInt16
    public var remoteAddress: IPAddress
    public var remotePort: UInt16
    /// 0 once the socket has no file (closed by its process, e.g. in destroy notifications).
    public var inode: UInt64
    public var uid: UInt32
    /// The kernel's socket cookie: unique for the socket's lifetime; nil from /proc/net.
    public var cookie: UInt64?
    /// TCP payload bytes, from tcp_info; nil for UDP and for /proc/net.
    public var bytesOut: UInt64?
    public var bytesIn: UInt64?

    public static let tcpListen: UInt8 = 10
    public static let tcpClose: UInt8 = 7
}

/// A NETLINK_SOCK_DIAG socket (what `ss` uses): dumps filtered in the kernel, exact lookups by
/// socket id, and the TCP/UDP destroy notifications that carry a socket's final counters.
/// A socket answers for the network namespace it was created in.
public final class SockDiag {
    public let fd: Int32
    private var sequence: UInt32 = 0
    /// Allocated at the first read: a namespace's socket that is never asked costs nothing. A
    /// dump's datagram holds at most 32 KiB (the kernel caps what it learns of the reader's
    /// buffer there); a destroy notification is one short message per datagram.
    private var receiveBuffer: [UInt8] = []
    private var receiveBytes = 32_768

    /// Opens the socket in the caller's network namespace, or in the one `namespaceFD` names.
    public init(namespaceFD: Int32? = nil) throws(NetlinkError) {
        var created: Int32 = -1
        var failure: NetlinkError?
        if let namespaceFD {
            let own = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)
            guard own >= 0 else { throw NetlinkError(operation: "open own network namespace", code: errno) }
            defer { close(own) }
            guard xw_setns(namespaceFD, xw_clone_newnet) == 0 else { throw NetlinkError(operation: "setns", code: errno) }
            created = socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), NETLINK_SOCK_DIAG)
            if created < 0 { failure = NetlinkError(operation: "socket(NETLINK_SOCK_DIAG)", code: errno) }
            // Going back must not fail silently: every later socket would land in the wrong namespace.
            if xw_setns(own, xw_clone_newnet) != 0 {
                fatalError("cannot return to our own network namespace: \(String(cString: strerror(errno)))")
            }
        } else {
            created = socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), NETLINK_SOCK_DIAG)
            if created < 0 { failure = NetlinkError(operation: "socket(NETLINK_SOCK_DIAG)", code: errno) }
        }
        if let failure { throw failure }
        fd = created
    }

    /// A sock_diag socket opened elsewhere (in another namespace, by the namespace helper).
    public init(adopting fd: Int32) { self.fd = fd }

    deinit { close(fd) }

    /// Subscribes this socket to destroy notifications (any user may: no CAP_NET_ADMIN) and
    /// makes it non-blocking; read them with `drainDestroyed`.
    public func subscribeToDestroyed(receiveBufferBytes: Int32 = 4 << 20) throws(NetlinkError) {
        try hearDestroyed(true)
        receiveBytes = 8192
        var size = receiveBufferBytes
        if setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, socklen_t(MemoryLayout<Int32>.size)) != 0 {
            _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
    }

    /// Joins or leaves the TCP and UDP destroy groups. While nobody in a namespace has joined,
    /// the kernel frees its sockets at once; while somebody has, it hands each one's
    /// destruction to a workqueue that builds the notification first.
    public func hearDestroyed(_ joined: Bool) throws(NetlinkError) {
        // Joined through bind(): NETLINK_ADD_MEMBERSHIP is accepted but delivers nothing here.
        // Binding again (with the port id the first bind got) replaces the groups.
        var address = sockaddr_nl()
        var length = socklen_t(MemoryLayout<sockaddr_nl>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        address.nl_family = sa_family_t(AF_NETLINK)
        address.nl_groups = 0
        if joined {
            for group in [SKNLGRP_INET_TCP_DESTROY, SKNLGRP_INET6_TCP_DESTROY, SKNLGRP_INET_UDP_DESTROY, SKNLGRP_INET6_UDP_DESTROY] {
                address.nl_groups |= 1 << (group.rawValue - 1)
            }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_nl>.size)) }
        }
        if bound != 0 { throw NetlinkError(operation: joined ? "join sock_diag destroy groups" : "leave sock_diag destroy groups", code: errno) }
    }

    // MARK: requests

    /// Every socket of a family and transport, all decoded, optionally only those whose remote
    /// port is `remotePort` (filtered by the kernel). The agent uses `find`; bench/flows compares.
    public func dump(family: UInt8, transport: Transport, remotePort: UInt16? = nil) throws(NetlinkError) -> [InetSocket] {
        var request = inet_diag_req_v2()
        request.sdiag_family = family
        request.sdiag_protocol = transport.ipProtocol
        request.idiag_ext = UInt8(1 << (INET_DIAG_INFO - 1))
        request.idiag_states = ~0
        let attribute = remotePort.map(Self.remotePortFilter) ?? []
        var result: [InetSocket] = []
        try send(request, flags: UInt16(NLM_F_REQUEST | NLM_F_DUMP), attribute: attribute)
        try receive { socket in result.append(socket) }
        return result
    }

    /// The socket with this inode among those a dump returns, and how many the kernel sent;
    /// only the match is decoded in full.
    public func find(inode: UInt64, family: UInt8, transport: Transport, remotePort: UInt16?) throws(NetlinkError) -> (socket: InetSocket?, scanned: Int) {
        var request = inet_diag_req_v2()
        request.sdiag_family = family
        request.sdiag_protocol = transport.ipProtocol
        request.idiag_ext = UInt8(1 << (INET_DIAG_INFO - 1))
        request.idiag_states = ~0
        var found: InetSocket?
        var scanned = 0
        try send(request, flags: UInt16(NLM_F_REQUEST | NLM_F_DUMP), attribute: remotePort.map(Self.remotePortFilter) ?? [])
        let isWanted = { (payload: UnsafeRawBufferPointer) -> Bool in
            scanned += 1
            let offset = MemoryLayout<inet_diag_msg>.offset(of: \inet_diag_msg.idiag_inode)!
            return payload.count >= MemoryLayout<inet_diag_msg>.size && UInt64(payload.loadUnaligned(fromByteOffset: offset, as: UInt32.self)) == inode
        }
        try receive(match: isWanted) { found = $0 }
        return (found, scanned)
    }

    /// Bytecode for "remote port == P", else jump past the end (reject).
    static func remotePortFilter(_ port: UInt16) -> [UInt8] {
        let ops: [UInt8] = [UInt8(INET_DIAG_BC_D_EQ), 8, 12, 0, 0, 0] + withUnsafeBytes(of: port.littleEndian, Array.init)
        return withUnsafeBytes(of: UInt16(4 + ops.count).littleEndian, Array.init)
            + withUnsafeBytes(of: UInt16(INET_DIAG_REQ_BYTECODE).littleEndian, Array.init) + ops
    }

    /// The current state of one socket, by its id (addresses, ports, cookie); nil if it is gone.
    public func lookup(_ socket: InetSocket) throws(NetlinkError) -> InetSocket? {
        var request = inet_diag_req_v2()
        request.sdiag_family = socket.family
        request.sdiag_protocol = socket.transport.ipProtocol
        request.idiag_ext = UInt8(1 << (INET_DIAG_INFO - 1))
        request.idiag_states = ~0
        request.id.idiag_sport = socket.localPort.bigEndian
        request.id.idiag_dport = socket.remotePort.bigEndian
        withUnsafeMutableBytes(of: &request.id.idiag_src) { $0.copyBytes(from: socket.localAddress.bytes.prefix(16)) }
        withUnsafeMutableBytes(of: &request.id.idiag_dst) { $0.copyBytes(from: socket.remoteAddress.bytes.prefix(16)) }
        let cookie = socket.cookie ?? UInt64.max
        request.id.idiag_cookie = (UInt32(truncatingIfNeeded: cookie), UInt32(truncatingIfNeeded: cookie >> 32))
        var found: InetSocket?
        try send(request, flags: UInt16(NLM_F_REQUEST), attribute: [])
        do {
            try receive { found = $0 }
        } catch  where error.code == ENOENT {
            return nil
        }
        return found
    }

    private func send(_ request: inet_diag_req_v2, flags: UInt16, attribute: [UInt8]) throws(NetlinkError) {
        sequence &+= 1
        let bodySize = MemoryLayout<inet_diag_req_v2>.size + attribute.count
        var header = nlmsghdr(
            nlmsg_len: UInt32(MemoryLayout<nlmsghdr>.size + bodySize), nlmsg_type: UInt16(SOCK_DIAG_BY_FAMILY),
            nlmsg_flags: flags, nlmsg_seq: sequence, nlmsg_pid: 0)
        var message = withUnsafeBytes(of: &header, Array.init)
        withUnsafeBytes(of: request) { message.append(contentsOf: $0) }
        message.append(contentsOf: attribute)
        var kernel = sockaddr_nl()
        kernel.nl_family = sa_family_t(AF_NETLINK)
        let sent = message.withUnsafeBytes { bytes in
            withUnsafePointer(to: &kernel) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, bytes.baseAddress, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_nl>.size))
                }
            }
        }
        if sent < 0 { throw NetlinkError(operation: "sock_diag request", code: errno) }
    }

    /// Reads replies to the last request until NLMSG_DONE (dumps) or the one answer (lookups);
    /// `match` picks which messages are decoded.
    private func receive(match: (UnsafeRawBufferPointer) -> Bool = { _ in true }, _ body: (InetSocket) -> Void) throws(NetlinkError) {
        while true {
            if receiveBuffer.isEmpty { receiveBuffer = [UInt8](repeating: 0, count: receiveBytes) }
            let n = receiveBuffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 {
                if errno == EINTR { continue }
                throw NetlinkError(operation: "sock_diag reply", code: errno)
            }
            var finished = false
            var failure: Int32 = 0
            receiveBuffer.withUnsafeBytes { buffer in
                NetlinkMessages.forEach(UnsafeRawBufferPointer(rebasing: buffer[..<n])) { type, flags, seq, payload in
                    guard seq == sequence else { return }
                    switch Int32(type) {
                    case NLMSG_DONE: finished = true
                    case NLMSG_ERROR:
                        let code = payload.count >= 4 ? payload.loadUnaligned(as: Int32.self) : -EIO
                        if code != 0 { failure = -code }
                        finished = true
                    default:
                        if match(payload), let socket = Self.parse(payload) { body(socket) }
                        if flags & UInt16(NLM_F_MULTI) == 0 { finished = true }
                    }
                }
            }
            if failure != 0 { throw NetlinkError(operation: "sock_diag request", code: failure) }
            if finished { return }
        }
    }

    /// Destroy notifications waiting on a subscribed socket. Returns false when the kernel
    /// dropped some (ENOBUFS): the caller should then poll what it tracks.
    public func drainDestroyed(_ body: (InetSocket) -> Void) -> Bool {
        var complete = true
        while true {
            if receiveBuffer.isEmpty { receiveBuffer = [UInt8](repeating: 0, count: receiveBytes) }
            let n = receiveBuffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == ENOBUFS { complete = false; continue }
                return complete
            }
            receiveBuffer.withUnsafeBytes { buffer in
                NetlinkMessages.forEach(UnsafeRawBufferPointer(rebasing: buffer[..<n])) { type, _, _, payload in
                    if type == UInt16(SOCK_DIAG_BY_FAMILY), let socket = Self.parse(payload) { body(socket) }
                }
            }
        }
    }

    // MARK: parsing

    /// An inet_diag_msg and its attributes; nil when too short.
    static func parse(_ payload: UnsafeRawBufferPointer) -> InetSocket? {
        let size = MemoryLayout<inet_diag_msg>.size
        guard payload.count >= size else { return nil }
        let message = payload.loadUnaligned(as: inet_diag_msg.self)
        let family = message.idiag_family
        let addressSize = family == UInt8(AF_INET6) ? 16 : 4
        let src = withUnsafeBytes(of: message.id.idiag_src) { IPAddress(bytes: $0.prefix(addressSize)) }
        let dst = withUnsafeBytes(of: message.id.idiag_dst) { IPAddress(bytes: $0.prefix(addressSize)) }
        let cookie = UInt64(message.id.idiag_cookie.0) | UInt64(message.id.idiag_cookie.1) << 32
        var socket = InetSocket(
            transport: .udp, family: family, state: message.idiag_state,
            localAddress: src, localPort: UInt16(bigEndian: message.id.idiag_sport),
            remoteAddress: dst, remotePort: UInt16(bigEndian: message.id.idiag_dport),
            inode: UInt64(message.idiag_inode), uid: message.idiag_uid,
            cookie: cookie == UInt64.max ? nil : cookie, bytesOut: nil, bytesIn: nil)
        var offset = (size + 3) & ~3
        while offset + 4 <= payload.count {
            let length = Int(payload.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
            let type = payload.loadUnaligned(fromByteOffset: offset + 2, as: UInt16.self)
            guard length >= 4, offset + length <= payload.count else { break }
            if type == UInt16(INET_DIAG_INFO) {
                var counters = xw_tcp_counters()
                if xw_tcp_counters(payload.baseAddress! + offset + 4, length - 4, &counters) != 0 {
                    socket.transport = .tcp
                    (socket.bytesOut, socket.bytesIn) = payloadBytes(counters, state: message.idiag_state)
                }
            }
            offset += (length + 3) & ~3
        }
        return socket
    }

    /// Payload bytes from the kernel's counters. bytes_sent minus retransmissions counts only
    /// payload; bytes_acked would also count our SYN and FIN. bytes_received counts the peer's
    /// FIN as one byte once it has arrived: in the closing states and at destroy (graceful
    /// close assumed; a connection reset by the peer reads one byte low).
    static func payloadBytes(_ c: xw_tcp_counters, state: UInt8) -> (out: UInt64, in: UInt64) {
        let out: UInt64
        if c.has_sent != 0 {
            out = c.bytes_sent >= c.bytes_retrans ? c.bytes_sent - c.bytes_retrans : 0
        } else {
            out = c.bytes_acked >= 2 ? c.bytes_acked - 2 : 0
        }
        // TCP states: 7 CLOSE, 8 CLOSE_WAIT, 9 LAST_ACK, 11 CLOSING, 6 TIME_WAIT.
        let finReceived = [6, 7, 8, 9, 11].contains(Int(state))
        let received = finReceived && c.bytes_received > 0 ? c.bytes_received - 1 : c.bytes_received
        return (out, received)
    }
}
