// bench/detection: what the default rules cost per execve and per flow, on processes and flows
// rebuilt from kernel-recorded logs (Tests/Fixtures/detection and flows, or logs given as
// arguments). Beside it, the same command-line patterns in Swift's Regex, the peer PCRE2 JIT
// replaces on the hot path.

import AgentConfig
import AuditIngest
import Detection
import Flows
import Foundation
import HostState
import KernelAudit
import Runtime

#if canImport(Glibc)
    import Glibc
#endif

final class Collector: FlowObserver {
    var processes: [ProcessRecord] = []
    var flows: [Flow] = []
    func flowReported(_ flow: Flow) { flows.append(flow) }
}

func nanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}

/// Runs the log through the assembler, the process table and the flow tracker, keeping what
/// detection sees.
func rebuild(_ paths: [String], into collector: Collector, processes: ProcessTable) {
    let tracker = FlowTracker(catalog: .standard, processes: processes, sockets: nil, observer: collector)
    var last: Int64 = 0
    let assembler = EventAssembler(settings: AssemblerSettings()) { event in
        last = event.key.time.totalMilliseconds
        guard let call = SyscallEvent(event) else { return }
        if call.kind == .execve {
            if call.succeeded, let process = processes.exec(call.syscall, event: event) { collector.processes.append(process) }
        } else {
            tracker.handle(call, now: last)
        }
    }
    for path in paths {
        guard let text = readTextFile(path) else {
            print("bench/detection: cannot read \(path)")
            exit(1)
        }
        for line in text.split(separator: "\n") {
            let bytes = Array(line.utf8)
            let record = bytes.withUnsafeBytes { try? RecordParser.parseLine($0) }
            if let record { assembler.add(record) }
        }
    }
    assembler.flush()
    tracker.finish(now: last)
}

let arguments = Array(CommandLine.arguments.dropFirst())
let paths = arguments.isEmpty ? ["Tests/Fixtures/detection/detection.log", "Tests/Fixtures/flows/flows.log"] : arguments
let collector = Collector()
let processes = ProcessTable(procfs: nil)
rebuild(paths, into: collector, processes: processes)
let configuration = AgentConfiguration()
/// Counts what the detector raises.
final class AlertCount: AlertSink {
    var count = 0
    func consume(_ alert: Alert) { count += 1 }
}
let alerts = AlertCount()
let detector = try Detector(configuration: configuration, firstSeen: FirstSeenStore(learningMinutes: 0), idPrefix: "bench", sink: alerts)
let commandLines = collector.processes.map(\.commandLine)
print("input: \(collector.processes.count) execve, \(collector.flows.count) flows from \(paths.joined(separator: ", "))")

// Enough rounds for a second or so of work each.
let rounds = max(1, 400_000 / max(collector.processes.count, 1))
var start = nanoseconds()
for _ in 0..<rounds {
    // As the graph does: interactivity is judged only for what a rule found.
    for process in collector.processes {
        let findings = detector.execveFindings(process)
        if !findings.isEmpty { detector.hold(findings, interactivity: processes.completeDetailsAndAssessInteractivity(of: process)) }
    }
    // Execve-time alerts wait for their process's connection; the pass decides them.
    detector.decideHeld()
}
let perExec = Double(nanoseconds() - start) / Double(rounds * collector.processes.count)
let execAlerts = alerts.count

let flowRounds = max(1, 100_000 / max(collector.flows.count, 1))
alerts.count = 0
start = nanoseconds()
for _ in 0..<flowRounds {
    for flow in collector.flows {
        detector.flowStarted(flow)
        detector.flowReported(flow)
    }
}
let perFlow = Double(nanoseconds() - start) / Double(flowRounds * collector.flows.count)

// The peer: the same execve-time patterns (command line and Splunk's) in Swift Regex.
let sources = configuration.detection.commandLinePatterns + configuration.detection.scriptedFTPPatterns
let swiftRegexes = sources.compactMap { try? Regex($0) }
var swiftMatches = 0
let swiftRounds = max(1, rounds / 20)
start = nanoseconds()
for _ in 0..<swiftRounds {
    for line in commandLines where swiftRegexes.contains(where: { line.contains($0) }) { swiftMatches += 1 }
}
let perExecSwift = Double(nanoseconds() - start) / Double(swiftRounds * commandLines.count)

// Identity at execve: a stat of the executable and a cache lookup when its file was seen;
// reading its ELF build-id once for a file never seen (every file of /usr/bin, once each).
start = nanoseconds()
let catalog = ProgramCatalog(names: TransferTools.identifiedPrograms)
let learning = Double(nanoseconds() - start)
let binaries = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/bin"))?.map { "/usr/bin/" + $0 } ?? []
start = nanoseconds()
var identified = 0
for path in binaries where catalog.identify(path: path) != nil { identified += 1 }
let perUncached = Double(nanoseconds() - start) / Double(max(catalog.counters.filesRead, 1))
let cachedRounds = 200_000
start = nanoseconds()
for index in 0..<cachedRounds { _ = catalog.identify(path: index & 1 == 0 ? "/usr/bin/tnftp" : "/usr/bin/true") }
let perCached = Double(nanoseconds() - start) / Double(cachedRounds)

func row(_ name: String, _ ns: Double, _ note: String) {
    let padded = name.padding(toLength: 46, withPad: " ", startingAt: 0)
    let value = String(Int(ns.rounded()))
    print(padded + String(repeating: " ", count: max(0, 10 - value.count)) + value + " ns   " + note)
}
print("per item, default rules (\(RuleID.allCases.count) rules, \(sources.count) execve patterns), \(ProcessInfo.processorName):")
row("execve, all rules (PCRE2 JIT)", perExec, "\(execAlerts / rounds) alerts per pass of \(collector.processes.count)")
row(
    "execve, execve patterns only in Swift Regex", perExecSwift,
    "\(swiftRegexes.count) of \(sources.count) patterns compiled, \(swiftMatches / swiftRounds) matches per pass")
row("flow, start + end rules", perFlow, "\(alerts.count / flowRounds) alerts per pass of \(collector.flows.count)")
row("execve identity, file seen before (stat + cache)", perCached, "tnftp and true in turn")
row("execve identity, new file (stat + ELF build-id)", perUncached, "\(catalog.counters.filesRead) files of /usr/bin, \(identified) known programs")
print(String(format: "identity catalog learned at start: %d programs in %.1f ms", catalog.count, learning / 1_000_000))
print(String(format: "at 1,000 execve/s: %.3f%% of one core for execve rules (Swift Regex: %.2f%%)", perExec / 10_000, perExecSwift / 10_000))

enum ProcessInfo {
    static var processorName: String {
        guard let text = readTextFile("/proc/cpuinfo"),
            let line = text.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
            let colon = line.firstIndex(of: ":")
        else { return "unknown CPU" }
        return line[line.index(after: colon)...].trimmingPrefix(" ").description
    }
}
