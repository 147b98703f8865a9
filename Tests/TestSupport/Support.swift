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

/// Runs a command to completion and returns (status, stdout, stderr).
@discardableResult
public func runCommand(_ executable: String, _ arguments: [String], stdin: FileHandle? = nil, seconds: Double = 120) throws -> (
    status: Int32, stdout: String, stderr: String
) {
    let child = try Child(executable, arguments, stdin: stdin)
    let deadline = Date().addingTimeInterval(seconds)
    while child.isRunning && Date() < deadline { usleep(10_000) }
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
