import CLinux

#if canImport(Glibc)
    import Glibc
#endif

/// The network interfaces of the agent's namespace, followed through rtnetlink: every link the
/// kernel lists when asked, then each one added or removed (a container's veth, a bridge).
public final class NetworkLinks {
    public struct Link: Equatable, Sendable {
        public var index: Int32
        public var name: String
        public var isLoopback: Bool
        /// Administratively up: a capture can be opened on it.
        public var isUp: Bool

        public init(index: Int32, name: String, isLoopback: Bool, isUp: Bool) {
            (self.index, self.name, self.isLoopback, self.isUp) = (index, name, isLoopback, isUp)
        }
    }

    public enum Change: Equatable, Sendable {
        /// A link listed or added (also sent again when a known link changes state).
        case present(Link)
        case removed(index: Int32)
    }

    public let fd: Int32
    private var receiveBuffer = [UInt8](repeating: 0, count: 32_768)
    private var sequence: UInt32 = 0

    /// Joins the link group and asks for the list; `drain` then hands over both.
    public init() throws(NetlinkError) {
        let created = socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), NETLINK_ROUTE)
        guard created >= 0 else { throw NetlinkError(operation: "socket(NETLINK_ROUTE)", code: errno) }
        fd = created
        var address = sockaddr_nl()
        address.nl_family = sa_family_t(AF_NETLINK)
        address.nl_groups = UInt32(RTMGRP_LINK)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_nl>.size)) }
        }
        guard bound == 0 else {
            let code = errno
            close(fd)
            throw NetlinkError(operation: "join the rtnetlink link group", code: code)
        }
        try requestList()
    }

    deinit { close(fd) }

    /// Asks the kernel for every link (again after an overrun lost some changes).
    private func requestList() throws(NetlinkError) {
        struct Request {
            var header = nlmsghdr()
            var body = ifinfomsg()
        }
        sequence &+= 1
        var request = Request()
        request.header.nlmsg_len = UInt32(MemoryLayout<Request>.size)
        request.header.nlmsg_type = UInt16(RTM_GETLINK)
        request.header.nlmsg_flags = UInt16(NLM_F_REQUEST | NLM_F_DUMP)
        request.header.nlmsg_seq = sequence
        request.body.ifi_family = UInt8(AF_UNSPEC)
        let sent = withUnsafeBytes(of: &request) { send(fd, $0.baseAddress, $0.count, 0) }
        guard sent == MemoryLayout<Request>.size else { throw NetlinkError(operation: "ask rtnetlink for the links", code: errno) }
    }

    /// Hands every change waiting to `body`; never blocks. Changes the kernel could not queue
    /// (an overrun) make it list every link again: `false` says some removals may be missed.
    @discardableResult
    public func drain(_ body: (Change) -> Void) -> Bool {
        var complete = true
        while true {
            let n = receiveBuffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == ENOBUFS {
                    complete = false
                    try? requestList()
                    continue
                }
                return complete
            }
            receiveBuffer.withUnsafeBytes { buffer in
                NetlinkMessages.forEach(UnsafeRawBufferPointer(rebasing: buffer[..<n])) { type, _, _, payload in
                    if let change = Self.parse(type: type, payload) { body(change) }
                }
            }
        }
    }

    /// An RTM_NEWLINK or RTM_DELLINK message's payload (ifinfomsg and its attributes); nil for
    /// other messages and for one too short or without a name.
    static func parse(type: UInt16, _ payload: UnsafeRawBufferPointer) -> Change? {
        let headerSize = MemoryLayout<ifinfomsg>.size
        guard type == UInt16(RTM_NEWLINK) || type == UInt16(RTM_DELLINK), payload.count >= headerSize else { return nil }
        let info = payload.loadUnaligned(as: ifinfomsg.self)
        if type == UInt16(RTM_DELLINK) { return .removed(index: info.ifi_index) }
        var offset = (headerSize + 3) & ~3
        while offset + 4 <= payload.count {
            let length = Int(payload.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
            let kind = payload.loadUnaligned(fromByteOffset: offset + 2, as: UInt16.self)
            guard length >= 4, offset + length <= payload.count else { return nil }
            if kind == UInt16(IFLA_IFNAME) {
                let value = UnsafeRawBufferPointer(rebasing: payload[(offset + 4)..<(offset + length)])
                let name = String(decoding: value.prefix { $0 != 0 }, as: UTF8.self)
                guard !name.isEmpty else { return nil }
                let flags = info.ifi_flags
                return .present(Link(index: info.ifi_index, name: name, isLoopback: flags & UInt32(IFF_LOOPBACK) != 0, isUp: flags & UInt32(IFF_UP) != 0))
            }
            offset += (length + 3) & ~3
        }
        return nil
    }
}
