#if canImport(Glibc)
    import Glibc
#endif

/// agentctl's side of the control socket: a blocking connection that sends a request line and
/// reads answer lines, each read bounded by a timeout (none while following alerts).
public final class ControlConnection {
    public enum Failure: Error, Equatable {
        /// No socket, or no one listening on it.
        case notRunning(String)
        /// The socket's permissions keep us out.
        case denied(String)
        /// No answer in time.
        case timedOut(String)
        case failed(String)
    }

    private let fd: Int32
    private var buffer: [UInt8] = []
    private var start = 0

    private init(fd: Int32) { self.fd = fd }

    public static func open(path: String) -> Result<ControlConnection, Failure> {
        guard let address = UnixSocketAddress(path: path) else { return .failure(.failed("\(path): too long for a Unix socket path")) }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return .failure(.failed("socket: \(String(cString: strerror(errno)))")) }
        if address.withSockaddr({ connect(fd, $0, $1) }) != 0 {
            let code = errno
            Glibc.close(fd)
            let reason = "\(path): \(String(cString: strerror(code)))"
            switch code {
            case ENOENT, ECONNREFUSED, ENOTDIR: return .failure(.notRunning(reason))
            case EACCES, EPERM: return .failure(.denied(reason))
            default: return .failure(.failed(reason))
            }
        }
        return .success(ControlConnection(fd: fd))
    }

    public func close() { Glibc.close(fd) }

    /// Each later read waits at most this long; nil waits for ever (following alerts).
    public func setTimeout(seconds: Int?) {
        var limit = timeval(tv_sec: seconds ?? 0, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
    }

    public func send(_ request: ControlRequest) throws(Failure) {
        let line = ControlProtocol.line(request)
        var sent = 0
        while sent < line.count {
            let count = line.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if count < 0 {
                if errno == EINTR { continue }
                throw errno == EAGAIN ? .timedOut("the agent did not take the request") : .failed("send: \(String(cString: strerror(errno)))")
            }
            sent += count
        }
    }

    /// The next line without its newline; nil when the agent closed the connection.
    public func readLine() throws(Failure) -> [UInt8]? {
        while true {
            if let newline = buffer[start...].firstIndex(of: UInt8(ascii: "\n")) {
                let line = Array(buffer[start..<newline])
                start = newline + 1
                if start == buffer.count { buffer.removeAll(keepingCapacity: true); start = 0 }
                return line
            }
            var chunk = [UInt8](repeating: 0, count: 65_536)
            let count = recv(fd, &chunk, chunk.count, 0)
            if count == 0 { return nil }
            if count < 0 {
                if errno == EINTR { continue }
                throw errno == EAGAIN ? .timedOut("no answer from the agent in time") : .failed("receive: \(String(cString: strerror(errno)))")
            }
            if start > 0 {
                buffer.removeFirst(start)
                start = 0
            }
            buffer += chunk[..<count]
        }
    }
}
