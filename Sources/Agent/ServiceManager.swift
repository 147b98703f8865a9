import CLinux
import Control

#if canImport(Glibc)
    import Glibc
#endif

/// systemd's readiness protocol (sd_notify, without libsystemd): one datagram of `KEY=VALUE`
/// lines to the socket `NOTIFY_SOCKET` names. Does nothing when not started by a service manager.
enum ServiceManager {
    static func notify(_ state: String) {
        guard let path = getenv("NOTIFY_SOCKET").map({ String(cString: $0) }), let address = UnixSocketAddress(path: path) else { return }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var message = Array(state.utf8)
        _ = address.withSockaddr { sendto(fd, &message, message.count, Int32(MSG_NOSIGNAL), $0, $1) }
    }
}
