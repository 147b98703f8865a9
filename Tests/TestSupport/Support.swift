import Foundation

/// Paths inside the repository, found from this file's location.
public enum Repo {
    public static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    public static func path(_ relative: String) -> String { root.appendingPathComponent(relative).path }
    public static func fixture(_ name: String) -> String { path("Tests/Fixtures/\(name)") }
    /// `.build`, or the sanitizer builds' own (make test-asan, test-tsan).
    public static let buildPath = ProcessInfo.processInfo.environment["XFERWATCH_BUILD_PATH"] ?? ".build"
    /// The agent under test is built with a sanitizer: memory figures mean nothing.
    public static var sanitized: Bool { buildPath != ".build" }
    public static var xferwatchd: String { path(buildPath + "/debug/xferwatchd") }
    public static var agentctl: String { path(buildPath + "/debug/agentctl") }
    /// The optimized build, for end-to-end tests that race short-lived clients (make test builds it).
    public static var xferwatchdRelease: String { path(buildPath + "/release/xferwatchd") }
    public static var agentctlRelease: String { path(buildPath + "/release/agentctl") }
}

public func lines(ofFile path: String) throws -> [String] {
    try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
}

/// A child process with captured output, for tests that run xferwatchd and real clients.
public final class Child {
    public let process = Process()
    private let stdoutPipe = Pipe()
    private let stderrPipe = Pipe()
    private let collected = Collected()

    final class Collected: @unchecked Sendable {
        private let lock = NSLock()
        private var out = Data()
        private var err = Data()
        func add(out data: Data) { lock.lock(); out.append(data); lock.unlock() }
        func add(err data: Data) { lock.lock(); err.append(data); lock.unlock() }
        var stdout: String { lock.lock(); defer { lock.unlock() }; return String(decoding: out, as: UTF8.self) }
        var stderr: String { lock.lock(); defer { lock.unlock() }; return String(decoding: err, as: UTF8.self) }
    }

    /// `environment` adds to (or overrides) the test runner's.
    public init(_ executable: String, _ arguments: [String], stdin: FileHandle? = nil, environment: [String: String] = [:]) throws {
        // Children start with default signal dispositions, not the test runner's.
        process.executableURL = URL(fileURLWithPath: Repo.path("Tests/support/default-signals"))
        process.arguments = [executable] + arguments
        if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        process.standardOutput = stdoutPipe
        process.standardError = stderrPipe
        if let stdin { process.standardInput = stdin }
        let collected = self.collected
        stdoutPipe.fileHandleForReading.readabilityHandler = { collected.add(out: $0.availableData) }
        stderrPipe.fileHandleForReading.readabilityHandler = { collected.add(err: $0.availableData) }
        try process.run()
    }

    /// A test that fails half-way must not leave its agent holding the audit socket.
    deinit { if process.isRunning { stop() } }

    public var pid: Int32 { process.processIdentifier }
    public var stdout: String { collected.stdout }
    public var stderr: String { collected.stderr }

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
            if !process.isRunning { return condition() }
            usleep(20_000)
        }
        return false
    }

    /// Sends `signal` and waits for the exit; returns the status.
    @discardableResult
    public func stop(signal: Int32 = SIGINT, seconds: Double = 10) -> Int32 {
        if process.isRunning { kill(process.processIdentifier, signal) }
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
        // Let the readability handlers drain what is left in the pipes.
        usleep(100_000)
        stdoutPipe.fileHandleForReading.readabilityHandler = nil
        stderrPipe.fileHandleForReading.readabilityHandler = nil
        collected.add(out: stdoutPipe.fileHandleForReading.readDataToEndOfFile())
        collected.add(err: stderrPipe.fileHandleForReading.readDataToEndOfFile())
        return process.terminationStatus
    }
}

/// Runs a command to completion and returns (status, stdout, stderr).
@discardableResult
public func runCommand(_ executable: String, _ arguments: [String], stdin: FileHandle? = nil, seconds: Double = 120) throws -> (
    status: Int32, stdout: String, stderr: String
) {
    let child = try Child(executable, arguments, stdin: stdin)
    let deadline = Date().addingTimeInterval(seconds)
    while child.process.isRunning && Date() < deadline { usleep(10_000) }
    let status = child.stop(signal: SIGKILL)
    return (status, child.stdout, child.stderr)
}

/// Every JSON line of `text` as a dictionary.
public func jsonLines(_ text: String) throws -> [[String: Any]] {
    try text.split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
}

/// A fresh directory under the system's temporary directory, for one test's files.
public func makeTemporaryDirectory(_ prefix: String = "xferwatch-test") throws -> String {
    let path = NSTemporaryDirectory() + "\(prefix)-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}
