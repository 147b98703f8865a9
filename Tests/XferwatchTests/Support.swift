import AgentConfig
import Detection
import Flows
import Foundation
import HostState

@testable import Agent
@testable import AuditIngest

/// Paths inside the repository, found from this file's location.
enum Repo {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static func path(_ relative: String) -> String { root.appendingPathComponent(relative).path }
    static func fixture(_ name: String) -> String { path("Tests/Fixtures/\(name)") }
    /// `.build`, or the sanitizer builds' own (make test-asan, test-tsan).
    static let buildPath = ProcessInfo.processInfo.environment["XFERWATCH_BUILD_PATH"] ?? ".build"
    /// The agent under test is built with a sanitizer: memory figures mean nothing.
    static var sanitized: Bool { buildPath != ".build" }
    static var xferwatchd: String { path(buildPath + "/debug/xferwatchd") }
    /// The optimized build, for end-to-end tests that race short-lived clients (make test builds it).
    static var xferwatchdRelease: String { path(buildPath + "/release/xferwatchd") }
    static var agentctlRelease: String { path(buildPath + "/release/agentctl") }
}

func lines(ofFile path: String) throws -> [String] {
    try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map(String.init)
}

func parse(_ line: String) throws(RecordParseError) -> AuditRecord {
    var bytes = Array(line.utf8)
    return try parse(bytes: &bytes)
}

func parse(bytes: inout [UInt8]) throws(RecordParseError) -> AuditRecord {
    let result: Result<AuditRecord, RecordParseError> = bytes.withUnsafeBytes { buffer in
        do throws(RecordParseError) { return .success(try RecordParser.parseLine(buffer)) } catch { return .failure(error) }
    }
    return try result.get()
}

/// Runs the parser and assembler over lines, returning the events in completion order.
func assemble(_ lines: [String], settings: AssemblerSettings = AssemblerSettings()) throws -> (events: [AuditEvent], counters: AssemblyCounters) {
    var events: [AuditEvent] = []
    let assembler = EventAssembler(settings: settings) { events.append($0) }
    for line in lines { assembler.add(try parse(line)) }
    assembler.flush()
    return (events, assembler.counters)
}

/// A child process with captured output, for tests that run xferwatchd and real clients.
final class Child {
    let process = Process()
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
    init(_ executable: String, _ arguments: [String], stdin: FileHandle? = nil, environment: [String: String] = [:]) throws {
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

    var pid: Int32 { process.processIdentifier }
    var stdout: String { collected.stdout }
    var stderr: String { collected.stderr }

    /// Waits until the collected stderr contains `text`, up to `seconds`.
    func waitForStderr(containing text: String, seconds: Double) -> Bool {
        waitFor(seconds: seconds) { stderr.contains(text) }
    }

    /// Waits until the collected stdout contains `text`, up to `seconds`.
    func waitForStdout(containing text: String, seconds: Double) -> Bool {
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
    func stop(signal: Int32 = SIGINT, seconds: Double = 10) -> Int32 {
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
func runCommand(_ executable: String, _ arguments: [String], stdin: FileHandle? = nil, seconds: Double = 120) throws -> (
    status: Int32, stdout: String, stderr: String
) {
    let child = try Child(executable, arguments, stdin: stdin)
    let deadline = Date().addingTimeInterval(seconds)
    while child.process.isRunning && Date() < deadline { usleep(10_000) }
    let status = child.stop(signal: SIGKILL)
    return (status, child.stdout, child.stderr)
}

/// Every JSON line of `text` as a dictionary.
func jsonLines(_ text: String) throws -> [[String: Any]] {
    try text.split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
}

/// What the agent's replay graph made of some audit lines: the graph (its tracker, detector,
/// pipeline) and every flow and alert it reported, as values.
final class Replayed {
    let graph: AgentGraph
    private(set) var flows: [Flow] = []
    private(set) var alerts: [Alert] = []

    init(configuration: AgentConfiguration = AgentConfiguration()) throws {
        graph = try AgentGraph(configuration: configuration, mode: .replay, log: Logger(level: .error))
        graph.onFlow = { [unowned self] in flows.append($0) }
        graph.onAlert = { [unowned self] in alerts.append($0) }
    }

    /// Feeds `lines` as a log's lines, then ends the input (open events and flows complete).
    @discardableResult
    func run(_ lines: [String]) -> Replayed {
        for line in lines {
            let bytes = Array(line.utf8)
            bytes.withUnsafeBytes { graph.pipeline.ingest(line: $0, position: "test") }
        }
        graph.finish(log: Logger(level: .error))
        return self
    }
}

/// A recorded fixture log (`Tests/Fixtures/DIR/NAME.log`) through the replay graph.
func replayFixture(_ log: String, configuration: AgentConfiguration = AgentConfiguration()) throws -> Replayed {
    try Replayed(configuration: configuration).run(try lines(ofFile: Repo.fixture(log)))
}

func manifest(_ path: String) throws -> [String: Int32] {
    var pids: [String: Int32] = [:]
    for line in try lines(ofFile: Repo.fixture(path)) {
        let parts = line.split(separator: " ")
        pids[String(parts[0])] = Int32(parts[1])
    }
    return pids
}

/// A fresh directory under the system's temporary directory, for one test's files.
func makeTemporaryDirectory(_ prefix: String = "xferwatch-test") throws -> String {
    let path = NSTemporaryDirectory() + "\(prefix)-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}
