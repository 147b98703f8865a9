import CLinux
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A child process with captured output, for tests that run xferwatchd and real clients.
///
/// Spawned with posix_spawn and read on a thread of its own, not with Foundation's Process and
/// FileHandle.readabilityHandler: with children starting and ending on several threads at
/// once, as parallel tests make them, those crash the test runner (SIGSEGV in a memcpy under
/// Process.run, swift-corelibs-foundation#3276, swift-corelibs-libdispatch#949).
public final class Child {
    public let pid: Int32
    private let output: ChildOutput
    private let lock = NSLock()
    /// The wait status, once the child is reaped.
    private var waitStatus: Int32?

    public struct SpawnError: Error, CustomStringConvertible {
        public var executable: String
        public var code: Int32
        public var description: String { "cannot run \(executable): \(String(cString: strerror(code)))" }
    }

    /// `environment` adds to (or overrides) the test runner's. Without `stdin` the child reads
    /// the runner's. The child starts in a process group of its own, with every signal at its
    /// default disposition and none blocked: the test runner ignores several (SIGALRM among
    /// them), and ignored signals survive exec (auditd then never finishes shutting down).
    public init(_ executable: String, _ arguments: [String], stdin: FileHandle? = nil, environment: [String: String] = [:]) throws {
        let stdout = try Self.pipe(), stderr = try Self.pipe()
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if let stdin { posix_spawn_file_actions_adddup2(&actions, stdin.fileDescriptor, 0) }
        posix_spawn_file_actions_adddup2(&actions, stdout.write, 1)
        posix_spawn_file_actions_adddup2(&actions, stderr.write, 2)
        xw_spawn_close_from(&actions, 3)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var every = sigset_t()
        var none = sigset_t()
        sigfillset(&every)
        sigemptyset(&none)
        posix_spawnattr_setsigdefault(&attributes, &every)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP))
        let variables = ProcessInfo.processInfo.environment.merging(environment) { $1 }.map { "\($0)=\($1)" }
        var spawned: pid_t = 0
        let result = Self.withCStrings([executable] + arguments) { argv in
            Self.withCStrings(variables) { envp in posix_spawnp(&spawned, executable, &actions, &attributes, argv, envp) }
        }
        close(stdout.write)
        close(stderr.write)
        guard result == 0 else {
            close(stdout.read)
            close(stderr.read)
            throw SpawnError(executable: executable, code: result)
        }
        pid = spawned
        output = ChildOutput(stdout: stdout.read, stderr: stderr.read)
    }

    /// A test that fails half-way must not leave its agent holding the audit socket.
    deinit {
        if isRunning { stop() }
        output.abandon()
    }

    public var stdout: String { output.stdout }
    public var stderr: String { output.stderr }

    /// True until the child has exited (and is reaped).
    public var isRunning: Bool {
        lock.withLock {
            reap(options: WNOHANG)
            return waitStatus == nil
        }
    }

    /// Blocks until the child exits.
    public func waitUntilExit() { lock.withLock { reap(options: 0) } }

    /// The exit code, or the number of the signal that ended the child.
    public var terminationStatus: Int32 {
        guard let status = lock.withLock({ waitStatus }) else { preconditionFailure("\(pid) is still running") }
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : signal
    }

    private func reap(options: Int32) {
        guard waitStatus == nil else { return }
        var status: Int32 = 0
        var reaped: pid_t
        repeat { reaped = waitpid(pid, &status, options) } while reaped < 0 && errno == EINTR
        if reaped == pid { waitStatus = status }
    }

    /// Waits until the collected stderr contains `text`, up to `seconds`.
    public func waitForStderr(containing text: String, seconds: Double) -> Bool {
        waitFor(seconds: seconds) { stderr.contains(text) }
    }

    /// Waits until the collected stdout contains `text`, up to `seconds`.
    public func waitForStdout(containing text: String, seconds: Double) -> Bool {
        waitFor(seconds: seconds) { stdout.contains(text) }
    }

    private func waitFor(seconds: Double, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            if !isRunning {
                output.finish(seconds: 5)
                return condition()
            }
            usleep(20_000)
        }
        return false
    }

    /// Sends `signal` and waits for the exit (SIGKILL after `seconds`), then for the output's
    /// end; returns the status.
    @discardableResult
    public func stop(signal: Int32 = SIGINT, seconds: Double = 10) -> Int32 {
        if isRunning { kill(pid, signal) }
        let deadline = Date().addingTimeInterval(seconds)
        while isRunning && Date() < deadline { usleep(20_000) }
        if isRunning {
            kill(pid, SIGKILL)
            waitUntilExit()
        }
        output.finish(seconds: 10)
        return terminationStatus
    }

    private static func pipe() throws -> (read: Int32, write: Int32) {
        var ends: [Int32] = [-1, -1]
        guard Glibc.pipe(&ends) == 0 else { throw SpawnError(executable: "pipe", code: errno) }
        for end in ends { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
        return (ends[0], ends[1])
    }

    private static func withCStrings<R>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) -> R) -> R {
        let pointers = strings.map { strdup($0) } + [nil]
        defer { for pointer in pointers { free(pointer) } }
        return body(pointers)
    }
}

/// A child's stdout and stderr, read on a thread of its own until both end.
final class ChildOutput: @unchecked Sendable {
    private let condition = NSCondition()
    private var out = Data()
    private var err = Data()
    private var ended = false
    private var abandoned = false

    init(stdout: Int32, stderr: Int32) {
        Thread.detachNewThread { [self] in read(stdout, stderr) }
    }

    var stdout: String { condition.withLock { String(decoding: out, as: UTF8.self) } }
    var stderr: String { condition.withLock { String(decoding: err, as: UTF8.self) } }

    /// Waits until both have ended, up to `seconds`: a grandchild may hold one open.
    func finish(seconds: Double) {
        let deadline = Date().addingTimeInterval(seconds)
        condition.withLock {
            while !ended && condition.wait(until: deadline) {}
        }
    }

    /// Stops reading (within a poll's timeout) and closes both.
    func abandon() { condition.withLock { abandoned = true } }

    private func read(_ stdout: Int32, _ stderr: Int32) {
        var descriptors = [pollfd(fd: stdout, events: Int16(POLLIN), revents: 0), pollfd(fd: stderr, events: Int16(POLLIN), revents: 0)]
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while descriptors.contains(where: { $0.fd >= 0 }), !condition.withLock({ abandoned }) {
            guard poll(&descriptors, 2, 100) > 0 else { continue }
            for index in descriptors.indices where descriptors[index].fd >= 0 && descriptors[index].revents != 0 {
                let count = buffer.withUnsafeMutableBytes { Glibc.read(descriptors[index].fd, $0.baseAddress, $0.count) }
                if count > 0 {
                    condition.withLock {
                        if index == 0 { out.append(contentsOf: buffer[..<count]) } else { err.append(contentsOf: buffer[..<count]) }
                    }
                } else if count == 0 || errno != EINTR {
                    close(descriptors[index].fd)
                    descriptors[index].fd = -1
                }
            }
        }
        for descriptor in descriptors where descriptor.fd >= 0 { close(descriptor.fd) }
        condition.withLock {
            ended = true
            condition.broadcast()
        }
    }
}
