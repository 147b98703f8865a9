import AgentConfig
import COpenSSL
import Runtime

#if canImport(Glibc)
    import Glibc
#endif

/// One connection to a syslog receiver: a connected datagram socket (unix, udp) or a stream
/// (tcp, tls, relp, relp+tls). Non-blocking: the forwarder's thread polls it. For streams it
/// reports how many bytes the receiver's TCP stack has acknowledged, which is what lets the
/// forwarder release spooled alerts only once they reached the receiver (RELP: what the
/// receiver answers, handed to the forwarder by `receive`).
final class SyslogConnection {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    enum WriteResult {
        /// Bytes taken (plain TCP may take part of them; TLS takes all or none).
        case wrote(Int)
        case wouldBlock
        /// The datagram is too big for the socket: it can never be sent.
        case tooBig
        case failed(String)
    }

    let fd: Int32
    let isStream: Bool
    private let tls: TLSSession?
    private var plainWritten: UInt64 = 0

    private init(fd: Int32, isStream: Bool, tls: TLSSession?) {
        self.fd = fd
        self.isStream = isStream
        self.tls = tls
    }

    deinit { close(fd) }

    /// Connects (and for TLS completes the handshake) within `timeoutMilliseconds`.
    static func open(_ settings: AgentConfiguration.SyslogOutput, timeoutMilliseconds: Int) throws(Failure) -> SyslogConnection {
        let address = settings.address
        if address.transport == .unix {
            return SyslogConnection(fd: try connectUnixDatagram(address.path), isStream: false, tls: nil)
        }
        let deadline = monotonicMilliseconds() + Int64(timeoutMilliseconds)
        let fd = try connectInet(host: address.host, port: address.port, stream: address.transport.isStream, deadline: deadline)
        guard address.transport.usesTLS else { return SyslogConnection(fd: fd, isStream: address.transport.isStream, tls: nil) }
        do {
            let session = try TLSSession(fd: fd, settings: settings, deadline: deadline)
            return SyslogConnection(fd: fd, isStream: true, tls: session)
        } catch {
            close(fd)
            throw error
        }
    }

    /// Bytes handed to the kernel on this socket since it opened (for TLS: records, handshake included).
    var wireBytesWritten: UInt64 { tls?.wireBytesWritten ?? plainWritten }

    /// Bytes the receiver's TCP stack has not acknowledged yet (SIOCOUTQ); nil if unknown.
    var unacknowledgedBytes: Int? {
        var pending: Int32 = 0
        return ioctl(fd, UInt(TIOCOUTQ), &pending) == 0 ? Int(pending) : nil
    }

    func write(_ bytes: UnsafeRawBufferPointer) -> WriteResult {
        if let tls { return tls.write(bytes) }
        let count = send(fd, bytes.baseAddress, bytes.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL))
        if count >= 0 {
            plainWritten += UInt64(count)
            return .wrote(count)
        }
        switch errno {
        case EAGAIN, EINTR, ENOBUFS: return .wouldBlock
        case EMSGSIZE where !isStream: return .tooBig
        default: return .failed(String(cString: strerror(errno)))
        }
    }

    /// Reads what the receiver sent and hands it to `consume` (plain syslog receivers send
    /// nothing, TLS may send session tickets, RELP receivers answer every command); the reason
    /// when the receiver closed the connection or it failed.
    func receive(_ consume: (UnsafeRawBufferPointer) -> Void) -> String? {
        if let tls { return tls.receive(consume) }
        guard isStream else {
            // A connected datagram socket reports ICMP port unreachable as a pending error.
            var code: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &code, &length)
            return code == 0 ? nil : String(cString: strerror(code))
        }
        var scratch = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = recv(fd, &scratch, scratch.count, Int32(MSG_DONTWAIT))
            if count > 0 {
                scratch.withUnsafeBytes { consume(UnsafeRawBufferPointer(rebasing: $0[..<count])) }
                continue
            }
            if count == 0 { return "the receiver closed the connection" }
            return errno == EAGAIN || errno == EINTR ? nil : String(cString: strerror(errno))
        }
    }

    func shutdown() { tls?.shutdown() }

    // MARK: connecting

    private static func connectUnixDatagram(_ path: String) throws(Failure) -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            close(fd)
            throw Failure(description: "\(path): path too long for a unix socket")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let status = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard status == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw Failure(description: "\(path): \(reason)")
        }
        return fd
    }

    private static func connectInet(host: String, port: UInt16, stream: Bool, deadline: Int64) throws(Failure) -> Int32 {
        var hints = addrinfo()
        hints.ai_socktype = stream ? Int32(SOCK_STREAM.rawValue) : Int32(SOCK_DGRAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0, let first = list else {
            throw Failure(description: "\(host): \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(list) }
        var lastError = "no address"
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let current = entry {
            entry = current.pointee.ai_next
            let fd = socket(
                current.pointee.ai_family, current.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue),
                current.pointee.ai_protocol)
            guard fd >= 0 else { lastError = String(cString: strerror(errno)); continue }
            if connect(fd, current.pointee.ai_addr, current.pointee.ai_addrlen) == 0 || (errno == EINPROGRESS && waitConnected(fd, deadline: deadline)) {
                if stream {
                    var on: Int32 = 1
                    setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size))
                    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, socklen_t(MemoryLayout<Int32>.size))
                }
                return fd
            }
            lastError = String(cString: strerror(errno))
            close(fd)
        }
        throw Failure(description: "\(host) port \(port): \(lastError)")
    }

    /// Waits for a non-blocking connect; false with errno set when it failed or timed out.
    private static func waitConnected(_ fd: Int32, deadline: Int64) -> Bool {
        guard waitReady(fd, events: Int16(POLLOUT), deadline: deadline) else { return false }
        var code: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &code, &length)
        errno = code
        return code == 0
    }
}

/// Polls one descriptor until it is ready or the deadline passes (errno ETIMEDOUT).
func waitReady(_ fd: Int32, events: Int16, deadline: Int64) -> Bool {
    while true {
        let left = deadline - monotonicMilliseconds()
        guard left > 0 else {
            errno = ETIMEDOUT
            return false
        }
        var entry = pollfd(fd: fd, events: events, revents: 0)
        let ready = poll(&entry, 1, Int32(min(left, 1000)))
        if ready > 0 { return true }
        if ready < 0 && errno != EINTR { return false }
    }
}

/// OpenSSL wrapped once: a TLS client session on a connected, non-blocking socket (RFC 5425).
/// The receiver's certificate must chain to the CA file (or the system store) and, unless
/// turned off, name the host; a client certificate is presented when configured.
final class TLSSession {
    private let context: OpaquePointer
    private let ssl: OpaquePointer

    init(fd: Int32, settings: AgentConfiguration.SyslogOutput, deadline: Int64) throws(SyslogConnection.Failure) {
        guard let context = SSL_CTX_new(TLS_client_method()) else { throw Self.failure("cannot create a TLS context") }
        self.context = context
        guard let ssl = SSL_new(context) else {
            SSL_CTX_free(context)
            throw Self.failure("cannot create a TLS session")
        }
        self.ssl = ssl
        _ = xw_ssl_ctx_set_min_tls12(context)
        // A write that would block is retried later from another copy of the same bytes.
        _ = xw_ssl_ctx_set_mode(context, Int(SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER))
        SSL_set_verify(ssl, SSL_VERIFY_PEER, nil)
        let loaded = settings.tlsCAFile.isEmpty ? SSL_CTX_set_default_verify_paths(context) : SSL_CTX_load_verify_locations(context, settings.tlsCAFile, nil)
        guard loaded == 1 else { throw Self.failure("cannot load the CA file \(settings.tlsCAFile)") }
        if !settings.tlsCertificateFile.isEmpty {
            guard SSL_use_certificate_chain_file(ssl, settings.tlsCertificateFile) == 1 else {
                throw Self.failure("cannot load the client certificate \(settings.tlsCertificateFile)")
            }
            guard SSL_use_PrivateKey_file(ssl, settings.tlsKeyFile, SSL_FILETYPE_PEM) == 1, SSL_check_private_key(ssl) == 1 else {
                throw Self.failure("cannot load the client key \(settings.tlsKeyFile)")
            }
        }
        let name = settings.tlsServerName.isEmpty ? settings.address.host : settings.tlsServerName
        let isAddress = IPAddressText.isNumeric(name)
        if settings.tlsVerifyHostname {
            let set = isAddress ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) : SSL_set1_host(ssl, name)
            guard set == 1 else { throw Self.failure("cannot verify against the name \(name)") }
        }
        if !isAddress { _ = xw_ssl_set_sni(ssl, name) }
        SSL_set_fd(ssl, fd)
        while true {
            let result = SSL_connect(ssl)
            if result == 1 { break }
            let error = SSL_get_error(ssl, result)
            let events = error == SSL_ERROR_WANT_READ ? Int16(POLLIN) : error == SSL_ERROR_WANT_WRITE ? Int16(POLLOUT) : 0
            guard events != 0 else {
                let verify = SSL_get_verify_result(ssl)
                if verify != X509_V_OK { throw Self.failure("TLS handshake: certificate rejected: \(String(cString: X509_verify_cert_error_string(verify)))") }
                throw Self.failure("TLS handshake failed")
            }
            guard waitReady(fd, events: events, deadline: deadline) else { throw Self.failure("TLS handshake: \(String(cString: strerror(errno)))") }
        }
    }

    deinit {
        SSL_free(ssl)
        SSL_CTX_free(context)
    }

    var wireBytesWritten: UInt64 { UInt64(BIO_number_written(SSL_get_wbio(ssl))) }

    func write(_ bytes: UnsafeRawBufferPointer) -> SyslogConnection.WriteResult {
        ERR_clear_error()
        let result = SSL_write(ssl, bytes.baseAddress, Int32(bytes.count))
        if result > 0 { return .wrote(Int(result)) }
        switch SSL_get_error(ssl, result) {
        case SSL_ERROR_WANT_WRITE, SSL_ERROR_WANT_READ: return .wouldBlock
        case SSL_ERROR_SYSCALL: return .failed(errno == 0 ? "the receiver closed the connection" : String(cString: strerror(errno)))
        default: return .failed(Self.failure("TLS write failed").description)
        }
    }

    func receive(_ consume: (UnsafeRawBufferPointer) -> Void) -> String? {
        var scratch = [UInt8](repeating: 0, count: 4096)
        while true {
            ERR_clear_error()
            let result = SSL_read(ssl, &scratch, Int32(scratch.count))
            if result > 0 {
                scratch.withUnsafeBytes { consume(UnsafeRawBufferPointer(rebasing: $0[..<Int(result)])) }
                continue
            }
            switch SSL_get_error(ssl, result) {
            case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE: return nil
            case SSL_ERROR_ZERO_RETURN: return "the receiver closed the TLS session"
            case SSL_ERROR_SYSCALL: return errno == 0 ? "the receiver closed the connection" : String(cString: strerror(errno))
            default: return Self.failure("TLS read failed").description
            }
        }
    }

    func shutdown() { _ = SSL_shutdown(ssl) }

    /// `what`, with OpenSSL's own reason when it queued one.
    private static func failure(_ what: String) -> SyslogConnection.Failure {
        let code = ERR_get_error()
        guard code != 0 else { return SyslogConnection.Failure(description: what) }
        var text = [UInt8](repeating: 0, count: 256)
        text.withUnsafeMutableBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { ERR_error_string_n(code, $0.baseAddress, $0.count) }
        }
        ERR_clear_error()
        return SyslogConnection.Failure(description: "\(what): \(String(decoding: text.prefix { $0 != 0 }, as: UTF8.self))")
    }
}

enum IPAddressText {
    static func isNumeric(_ text: String) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 16)
        return inet_pton(AF_INET, text, &buffer) == 1 || inet_pton(AF_INET6, text, &buffer) == 1
    }
}
