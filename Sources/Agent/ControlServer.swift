import AgentConfig
import CLinux
import Control
import Runtime

#if canImport(Glibc)
    import Glibc
#endif

/// What the control server asks of the running agent (on the event loop's thread).
protocol ControlHandler: AnyObject {
    func status() -> AgentStatus
    /// Active flows, then recently finished ones: JSON lines as `--flows` writes them.
    func flowLines() -> [[UInt8]]
    func reload() -> ControlResponse
    func rulesReport() -> RulesReport
    /// The counters in the Prometheus text format, a line each (newline included).
    func metricsLines() -> [[UInt8]]
}

/// xferwatchd's side of agentctl: a Unix stream socket served from the event loop. Each peer
/// is authorised by its kernel credentials (root, or the control group as its primary or a
/// supplementary group); requests and responses are `Control` JSON lines; `alerts --follow`
/// peers stay connected and get each alert as it is raised. Nothing here blocks, and no peer
/// holds the agent's descriptors for long: a request must arrive, and an answer be read,
/// within 5 s; a follower that stops reading is cut off once a bounded amount waits for it;
/// at most 32 peers are served, a new one taking the place of the oldest that has not sent a
/// whole request, and connections past that are answered "busy" or, in a flood, closed at once.
final class ControlServer: AlertFollower {
    private struct Peer {
        let fd: Int32
        let uid: UInt32
        var input: [UInt8] = []
        var output: [UInt8] = []
        var sent = 0
        var following = false
        /// Closed once the output is sent.
        var finished = false
        /// A request must arrive by then; once answered, the answer must be read by then.
        var deadline: Int64
        /// Decided at connect, said once the request has arrived: closing a Unix socket with
        /// the request unread would turn the peer's read of our answer into ECONNRESET.
        var refusal: ControlResponse?
    }

    let path: String
    private let listener: Int32
    /// The socket file's inode: on stop it is removed only if no one replaced it.
    private let socketInode: UInt64
    private let groupID: gid_t?
    private let groupName: String
    private let log: Logger
    private var peers: [Peer] = []
    /// Connections closed so far (the loop registers the descriptors again when it moves).
    private(set) var peersClosed = 0
    /// Who answers the requests, once the agent runs.
    var handler: ControlHandler?
    let recentAlerts = RecentLines(capacity: ControlProtocol.recentAlertsKept, byteLimit: 4 << 20)
    private static let maximumPeers = 32
    /// Refused peers waiting for their request line before hearing why (see `Peer.refusal`).
    private static let maximumRefusedPeers = 16
    private static let requestTimeoutMilliseconds: Int64 = 5000
    /// A flood: silent peers that made room for new ones, connections closed at once, and
    /// when that was last logged.
    private var evicted = 0
    private var closedInFlood = 0
    private var floodLogged: Int64 = 0
    /// What may wait for one peer before a follower is cut off (a response is sent whole).
    private static let followerBacklogBytes = 8 << 20

    /// Binds `path` (mode 0660, group `group`), replacing a stale socket left by a crash. nil,
    /// with the reason logged, when it cannot: the agent runs on without control.
    static func open(path: String, group: String, log: Logger) -> ControlServer? {
        guard let address = UnixSocketAddress(path: path) else {
            log.error("control socket \(path): the path is too long for a Unix socket")
            return nil
        }
        if let problem = prepare(path) {
            log.error("control socket \(path): \(problem); agentctl cannot reach this agent")
            return nil
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else {
            log.error("control socket: \(String(cString: strerror(errno)))")
            return nil
        }
        // Created 0600, then given to the group: never more open than asked, not even briefly.
        let mask = umask(0o177)
        let bound = address.withSockaddr { bind(fd, $0, $1) }
        umask(mask)
        guard bound == 0, listen(fd, 16) == 0 else {
            log.error("control socket \(path): \(String(cString: strerror(errno))); agentctl cannot reach this agent")
            Glibc.close(fd)
            return nil
        }
        let groupID = getgrnam(group).map { $0.pointee.gr_gid }
        if let groupID {
            if chown(path, uid_t.max, groupID) != 0 {
                log.warning("control socket \(path): cannot give it to group \(group): \(String(cString: strerror(errno)))")
            }
            chmod(path, 0o660)
        } else {
            log.warning("control socket \(path): group \(group) does not exist; only root may use agentctl")
        }
        var info = stat()
        stat(path, &info)
        log.info("control socket \(path) (root and group \(group))")
        return ControlServer(path: path, listener: fd, socketInode: UInt64(info.st_ino), groupID: groupID, groupName: group, log: log)
    }

    /// Makes the directory; removes a socket nobody answers on. The reason when neither works.
    private static func prepare(_ path: String) -> String? {
        if let problem = createDirectories(parentDirectory(path), mode: 0o755) { return "cannot create \(problem)" }
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }
        guard info.st_mode & S_IFMT == S_IFSOCK else { return "the path exists and is not a socket" }
        if case .success(let connection) = ControlConnection.open(path: path) {
            connection.close()
            return "another xferwatchd answers on it"
        }
        return unlink(path) == 0 ? nil : "cannot remove the stale socket: \(String(cString: strerror(errno)))"
    }

    private init(path: String, listener: Int32, socketInode: UInt64, groupID: gid_t?, groupName: String, log: Logger) {
        self.path = path
        self.listener = listener
        self.socketInode = socketInode
        self.groupID = groupID
        self.groupName = groupName
        self.log = log
    }

    /// Closes every connection and removes the socket (when it is still ours).
    func close() {
        for peer in peers { Glibc.close(peer.fd) }
        peers.removeAll()
        var named = stat()
        if stat(path, &named) == 0, UInt64(named.st_ino) == socketInode { unlink(path) }
        Glibc.close(listener)
    }

    /// The listener's, then each peer's, appended to the loop's list (every turn: no array of
    /// its own).
    func appendPollDescriptors(to fds: inout [pollfd]) {
        fds.append(pollfd(fd: listener, events: Int16(POLLIN), revents: 0))
        for peer in peers {
            fds.append(pollfd(fd: peer.fd, events: Int16(POLLIN) | (peer.output.count > peer.sent ? Int16(POLLOUT) : 0), revents: 0))
        }
    }

    /// Accepts, reads requests, answers, sends what waits. `polled`: what poll() made of
    /// `appendPollDescriptors`; with nothing ready and no request overdue it costs no system call.
    func service(polled: ArraySlice<pollfd>, handler: ControlHandler, now: Int64) {
        guard
            polled.contains(where: { $0.revents != 0 })
                || peers.contains(where: { $0.fd >= 0 && !$0.following && now >= $0.deadline })
        else { return }
        accept(now: now)
        for index in peers.indices {
            read(index, handler: handler, now: now)
            send(index)
            if peers[index].fd >= 0, peers[index].finished, now >= peers[index].deadline {
                log.warning(
                    "control: a peer (uid \(peers[index].uid)) did not read its answer within \(Self.requestTimeoutMilliseconds / 1000) s; disconnected")
                disconnect(index)
            }
        }
        peers.removeAll { $0.fd < 0 }
    }

    /// Keeps the alert for `alerts --last` and sends it to followers.
    func published(alertLine: [UInt8]) {
        recentAlerts.append(alertLine)
        for index in peers.indices where peers[index].following {
            if peers[index].output.count - peers[index].sent + alertLine.count > Self.followerBacklogBytes {
                log.warning("control: an alerts --follow reader (uid \(peers[index].uid)) stopped reading; disconnected")
                disconnect(index)
                continue
            }
            peers[index].output += alertLine
            send(index)
        }
    }

    private func accept(now: Int64) {
        while true {
            let fd = Glibc.accept(listener, nil, nil)
            guard fd >= 0 else { return }
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            var credentials = xw_ucred()
            var length = socklen_t(MemoryLayout<xw_ucred>.size)
            guard getsockopt(fd, SOL_SOCKET, xw_so_peercred, &credentials, &length) == 0 else {
                Glibc.close(fd)
                continue
            }
            var peer = Peer(fd: fd, uid: credentials.uid, deadline: now + Self.requestTimeoutMilliseconds)
            // What it sent already: agentctl writes its request as it connects, so it is not
            // taken for a peer that never speaks.
            guard receive(&peer) else {
                Glibc.close(fd)
                continue
            }
            let refused = peers.filter { $0.fd >= 0 && $0.refusal != nil }.count
            let served = peers.filter { $0.fd >= 0 && $0.refusal == nil }.count
            if !authorised(fd, credentials) {
                log.warning("control: refused uid \(credentials.uid) (pid \(credentials.pid)): neither root nor in group \(groupName)")
                peer.refusal = .refused(.denied, "permission denied: uid \(credentials.uid) is neither root nor in group \(groupName)")
            } else if served >= Self.maximumPeers, !evictOldestSilentPeer(now: now) {
                peer.refusal = .refused(.busy, "too many agentctl connections (\(Self.maximumPeers)); try again")
            }
            if peer.refusal != nil && refused >= Self.maximumRefusedPeers {
                Glibc.close(fd)
                closedInFlood += 1
                logFlood(now: now)
                continue
            }
            peers.append(peer)
        }
    }

    /// Makes room for a new peer by closing the oldest served one that has not sent a whole
    /// request (one that connects and never speaks, or never ends its line); false when every
    /// served peer has its request in.
    private func evictOldestSilentPeer(now: Int64) -> Bool {
        guard
            let index = peers.firstIndex(where: {
                $0.fd >= 0 && $0.refusal == nil && !$0.finished && !$0.following && !$0.input.contains(UInt8(ascii: "\n"))
            })
        else { return false }
        disconnect(index)
        evicted += 1
        logFlood(now: now)
        return true
    }

    /// At most every 10 s, with the totals so far.
    private func logFlood(now: Int64) {
        guard now - floodLogged >= 10_000 else { return }
        floodLogged = now
        log.warning(
            "control: connection flood: \(evicted) peers without a whole request made room for new ones, \(closedInFlood) connections closed unanswered (so far)"
        )
    }

    /// Root, or the control group among the peer's groups (primary or supplementary).
    private func authorised(_ fd: Int32, _ credentials: xw_ucred) -> Bool {
        if credentials.uid == 0 { return true }
        guard let groupID else { return false }
        if credentials.gid == groupID { return true }
        var groups = [gid_t](repeating: 0, count: 256)
        var length = socklen_t(groups.count * MemoryLayout<gid_t>.size)
        guard getsockopt(fd, SOL_SOCKET, xw_so_peergroups, &groups, &length) == 0 else { return false }
        return groups.prefix(Int(length) / MemoryLayout<gid_t>.size).contains(groupID)
    }

    /// Takes what the peer sent, up to one request's bound; false when it went away (a
    /// follower pressing ^C, or a half-read answer).
    private func receive(_ peer: inout Peer) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while peer.input.count <= ControlProtocol.maximumRequestBytes {
            let count = recv(peer.fd, &buffer, buffer.count, 0)
            if count == 0 || (count < 0 && errno != EAGAIN && errno != EINTR) { return false }
            guard count > 0 else { return true }
            // A follower or a peer already answered has nothing more to ask.
            if peer.following || peer.finished { continue }
            peer.input += buffer[..<count]
        }
        return true
    }

    private func read(_ index: Int, handler: ControlHandler, now: Int64) {
        guard peers[index].fd >= 0 else { return }
        guard receive(&peers[index]) else {
            disconnect(index)
            return
        }
        let peer = peers[index]
        guard !peer.finished, !peer.following else { return }
        if let refusal = peer.refusal, peer.input.contains(UInt8(ascii: "\n")) || now >= peer.deadline {
            respond(&peers[index], refusal)
        } else if let newline = peer.input.firstIndex(of: UInt8(ascii: "\n")) {
            answer(index, line: Array(peer.input[..<newline]), handler: handler)
        } else if peer.input.count > ControlProtocol.maximumRequestBytes {
            respond(&peers[index], .refused(.badRequest, "request longer than \(ControlProtocol.maximumRequestBytes) bytes"))
        } else if now >= peer.deadline {
            respond(&peers[index], .refused(.badRequest, "no request within \(Self.requestTimeoutMilliseconds / 1000) s"))
        }
    }

    private func answer(_ index: Int, line: [UInt8], handler: ControlHandler) {
        guard let request = try? ControlProtocol.decode(ControlRequest.self, from: line) else {
            respond(
                &peers[index],
                .refused(
                    .badRequest,
                    "not a request: expected one JSON line with \"protocol\" and \"command\" (one of "
                        + ControlCommand.allCases.map(\.rawValue).joined(separator: ", ") + ")"))
            return
        }
        guard request.protocol == ControlProtocol.version else {
            respond(&peers[index], .refused(.badRequest, "protocol \(request.protocol) is not supported; this agent speaks \(ControlProtocol.version)"))
            return
        }
        switch request.command {
        case .status:
            respond(&peers[index], ControlResponse(status: handler.status()))
        case .alerts:
            let lines = recentAlerts.last(min(request.last ?? 20, ControlProtocol.recentAlertsKept))
            peers[index].following = request.follow == true
            respond(&peers[index], ControlResponse(count: lines.count), lines: lines, finish: !peers[index].following)
        case .flows:
            let lines = handler.flowLines()
            respond(&peers[index], ControlResponse(count: lines.count), lines: lines[...])
        case .reload:
            log.info("control: reload asked by uid \(peers[index].uid)")
            respond(&peers[index], handler.reload())
        case .rules:
            respond(&peers[index], ControlResponse(rules: handler.rulesReport()))
        case .metrics:
            let lines = handler.metricsLines()
            respond(&peers[index], ControlResponse(count: lines.count), lines: lines[...])
        }
    }

    private func respond(_ peer: inout Peer, _ response: ControlResponse, lines: ArraySlice<[UInt8]> = [], finish: Bool = true) {
        peer.output += ControlProtocol.line(response)
        for line in lines {
            peer.output += line
            if line.last != UInt8(ascii: "\n") { peer.output.append(UInt8(ascii: "\n")) }
        }
        peer.finished = finish
        // Time to read the answer (a follower is bounded by its backlog instead).
        peer.deadline = monotonicMilliseconds() + Self.requestTimeoutMilliseconds
    }

    private func send(_ index: Int) {
        guard peers[index].fd >= 0 else { return }
        while peers[index].sent < peers[index].output.count {
            let written = peers[index].output.withUnsafeBytes { raw in
                Glibc.send(peers[index].fd, raw.baseAddress! + peers[index].sent, raw.count - peers[index].sent, Int32(MSG_NOSIGNAL))
            }
            if written < 0 {
                if errno == EAGAIN || errno == EINTR { break }
                disconnect(index)
                return
            }
            peers[index].sent += written
        }
        if peers[index].sent == peers[index].output.count {
            peers[index].output.removeAll(keepingCapacity: true)
            peers[index].sent = 0
            if peers[index].finished { disconnect(index) }
        }
    }

    /// Closes the connection; the entry goes at the end of `service`.
    private func disconnect(_ index: Int) {
        guard peers[index].fd >= 0 else { return }
        Glibc.close(peers[index].fd)
        peersClosed += 1
        peers[index] = Peer(fd: -1, uid: peers[index].uid, deadline: 0)
    }
}

/// Served from the event loop: accepts, reads, answers and sends when poll says so.
extension ControlServer: LoopSource {
    func descriptors(into fds: inout [pollfd]) { appendPollDescriptors(to: &fds) }
    var descriptorChanges: Int { peersClosed }

    func service(_ polled: ArraySlice<pollfd>, time: LoopTime) -> LoopRequest {
        if let handler { service(polled: polled, handler: handler, now: time.monotonic) }
        return .none
    }
}
