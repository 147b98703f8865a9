import ArgumentParser
import Control
import FoundationEssentials
import Runtime

#if canImport(Glibc)
    import Glibc
#endif

/// Exit codes, after the LSB habit of `*ctl` tools (`systemctl status`).
enum Exit {
    static let degraded: Int32 = 1
    static let notRunning: Int32 = 3
    static let unknown: Int32 = 4
}

@main
struct AgentCtl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agentctl",
        abstract: "Query and control the running xferwatchd.",
        discussion: """
            Exit status: 0 the agent answered (status: and is healthy); 1 it answered degraded, or refused \
            the request; 3 it is not running; 4 its state is unknown (permission denied, no answer in time); \
            64 usage error.
            """,
        version: "agentctl \(XferwatchVersion.current) (control protocol \(ControlProtocol.version))",
        subcommands: [Status.self, Alerts.self, Flows.self, Reload.self, Rules.self, Metrics.self])

    @OptionGroup var options: ConnectionOptions
}

/// `--socket` and `--timeout`, before the subcommand (`agentctl --socket S status`, as
/// `systemctl` and `git -C` take theirs) or after it, where they win. Declared in both places so
/// that help and the generated shell completion know both.
struct ConnectionOptions: ParsableArguments {
    @Option(name: .long, help: "The agent's control socket (default: \(ControlProtocol.defaultSocket)).")
    var socket: String?

    @Option(name: .long, help: "Seconds to wait for an answer (default: \(Connection.defaultTimeout)).")
    var timeout: Int?
}

/// A subcommand that asks the agent: its connection options, falling back on those given before it.
protocol AgentRequest {
    var options: ConnectionOptions { get }
    var agentctl: AgentCtl { get }
}

extension AgentRequest {
    var connection: Connection {
        Connection(
            socket: options.socket ?? agentctl.options.socket ?? ControlProtocol.defaultSocket,
            timeout: options.timeout ?? agentctl.options.timeout ?? Connection.defaultTimeout)
    }
}

struct Connection {
    static let defaultTimeout = 10
    let socket: String
    let timeout: Int

    /// Sends `request` and returns the first answer line's response, with the connection for
    /// the lines that follow. Exits 3 or 4 when the agent cannot be asked.
    func ask(_ request: ControlRequest) throws -> (ControlResponse, ControlConnection) {
        let connection: ControlConnection
        switch ControlConnection.open(path: socket) {
        case .success(let opened): connection = opened
        case .failure(let failure): throw fail(failure)
        }
        connection.setTimeout(seconds: timeout)
        do {
            // An agent that refuses may answer before it reads: its answer is still worth reading.
            var unsent: ControlConnection.Failure?
            do { try connection.send(request) } catch { unsent = error }
            let answer: [UInt8]?
            do { answer = try connection.readLine() } catch { throw fail(unsent ?? error) }
            guard let line = answer else {
                throw fail(unsent ?? .failed("the agent closed the connection without answering"))
            }
            guard let response = try? ControlProtocol.decode(ControlResponse.self, from: line) else {
                throw fail(.failed("not an agent's answer: \(String(decoding: line.prefix(200), as: UTF8.self))"))
            }
            if !response.ok {
                printError("agentctl: \(request.command.rawValue) refused by the agent: \(response.error ?? "no reason given")")
                throw ExitCode(response.failure == .denied ? Exit.unknown : Exit.degraded)
            }
            return (response, connection)
        } catch let failure as ControlConnection.Failure {
            throw fail(failure)
        }
    }

    private func fail(_ failure: ControlConnection.Failure) -> ExitCode {
        switch failure {
        case .notRunning(let reason):
            printError("agentctl: xferwatchd is not running (\(reason))")
            return ExitCode(Exit.notRunning)
        case .denied(let reason):
            printError("agentctl: permission denied (\(reason)): run as root or as a member of the agent's control group")
            return ExitCode(Exit.unknown)
        case .timedOut(let reason):
            printError("agentctl: \(reason) (\(timeout) s); the agent's state is unknown")
            return ExitCode(Exit.unknown)
        case .failed(let reason):
            printError("agentctl: \(reason)")
            return ExitCode(Exit.unknown)
        }
    }
}

struct Status: ParsableCommand, AgentRequest {
    static let configuration = CommandConfiguration(abstract: "Show the agent's state and health.")
    @OptionGroup var options: ConnectionOptions
    @ParentCommand var agentctl: AgentCtl
    @Flag(help: "Print the status document as JSON (schema: agentctl-status.schema.json).")
    var json = false

    func run() throws {
        let (response, opened) = try connection.ask(ControlRequest(command: .status))
        opened.close()
        guard let status = response.status else {
            printError("agentctl: the answer has no status")
            throw ExitCode(Exit.unknown)
        }
        if json {
            print(String(decoding: ControlProtocol.line(status).dropLast(), as: UTF8.self))
        } else {
            print(StatusText.render(status), terminator: "")
        }
        if status.health.verdict == .degraded { throw ExitCode(Exit.degraded) }
    }
}

struct Alerts: ParsableCommand, AgentRequest {
    static let configuration = CommandConfiguration(abstract: "Show recent alerts; with --follow, each new one as it is raised.")
    @OptionGroup var options: ConnectionOptions
    @ParentCommand var agentctl: AgentCtl
    @Option(help: "How many recent alerts (at most \(ControlProtocol.recentAlertsKept)).")
    var last = 20
    @Flag(help: "Keep printing alerts as they are raised, until interrupted.")
    var follow = false
    @Flag(help: "Print each alert as its JSON line, as in the alert file.")
    var json = false

    func validate() throws {
        guard (0...ControlProtocol.recentAlertsKept).contains(last) else {
            throw ValidationError("--last must be between 0 and \(ControlProtocol.recentAlertsKept)")
        }
    }

    func run() throws {
        let (response, opened) = try connection.ask(ControlRequest(command: .alerts, last: last, follow: follow))
        defer { opened.close() }
        if follow { opened.setTimeout(seconds: nil) }
        try printLines(from: opened, count: follow ? nil : response.count ?? 0) { line in
            json ? String(decoding: line, as: UTF8.self) : AlertText.render(line)
        }
    }
}

struct Flows: ParsableCommand, AgentRequest {
    static let configuration = CommandConfiguration(abstract: "Show active and recently finished file-transfer flows with their process.")
    @OptionGroup var options: ConnectionOptions
    @ParentCommand var agentctl: AgentCtl
    @Flag(help: "Print each flow as its JSON line, as `xferwatchd run --flows` writes it.")
    var json = false

    func run() throws {
        let (response, opened) = try connection.ask(ControlRequest(command: .flows))
        defer { opened.close() }
        if !json { print(FlowText.header) }
        try printLines(from: opened, count: response.count ?? 0) { line in
            json ? String(decoding: line, as: UTF8.self) : FlowText.render(line)
        }
    }
}

struct Metrics: ParsableCommand, AgentRequest {
    static let configuration = CommandConfiguration(
        abstract: "Print the agent's counters in the Prometheus text exposition format.",
        discussion: "The same text [output.metrics] writes for node_exporter's textfile collector.")
    @OptionGroup var options: ConnectionOptions
    @ParentCommand var agentctl: AgentCtl

    func run() throws {
        let (response, opened) = try connection.ask(ControlRequest(command: .metrics))
        defer { opened.close() }
        try printLines(from: opened, count: response.count ?? 0) { String(decoding: $0.last == 0x0A ? $0.dropLast() : $0[...], as: UTF8.self) }
    }
}

struct Reload: ParsableCommand, AgentRequest {
    static let configuration = CommandConfiguration(
        abstract: "Re-read agent.conf and the YARA rules (as SIGHUP does).",
        discussion: "Everything is checked first: a configuration or rule file with errors is refused with the reason, and the running one stays.")
    @OptionGroup var options: ConnectionOptions
    @ParentCommand var agentctl: AgentCtl

    func run() throws {
        let (response, opened) = try connection.ask(ControlRequest(command: .reload))
        opened.close()
        guard let result = response.reload else { throw ExitCode(Exit.unknown) }
        print("reloaded: applied \(result.applied.joined(separator: ", "))")
        if !result.restartNeeded.isEmpty {
            print("changed, applied at the next restart: \(result.restartNeeded.joined(separator: ", "))")
        }
        for warning in result.warnings { print("warning: \(warning)") }
    }
}

struct Rules: ParsableCommand, AgentRequest {
    static let configuration = CommandConfiguration(abstract: "Show the rules and exclusions in effect, with their counts.")
    @OptionGroup var options: ConnectionOptions
    @ParentCommand var agentctl: AgentCtl
    @Flag(help: "Print the report as JSON.")
    var json = false

    func run() throws {
        let (response, opened) = try connection.ask(ControlRequest(command: .rules))
        opened.close()
        guard let report = response.rules else { throw ExitCode(Exit.unknown) }
        if json {
            print(String(decoding: ControlProtocol.line(report).dropLast(), as: UTF8.self))
            return
        }
        let width = report.rules.map(\.id.count).max() ?? 0
        print("RULE".padded(width) + "  STATE     ALERTS  NAME")
        for rule in report.rules {
            print(rule.id.padded(width) + "  " + (rule.enabled ? "enabled " : "disabled") + "  " + String(rule.alerts).leftPadded(6) + "  " + rule.name)
        }
        print("\nEXCLUSION  HITS  RULES")
        if report.exclusions.isEmpty { print("(none)") }
        for exclusion in report.exclusions {
            print("\(exclusion.name)  \(exclusion.hits)  \(exclusion.rules.isEmpty ? "all" : exclusion.rules.joined(separator: ","))")
        }
        print("\nYARA: \(report.yaraRules) rules from \(report.yaraRuleFiles.isEmpty ? "no files" : report.yaraRuleFiles.joined(separator: ", "))")
    }
}

/// Prints `count` lines (nil: until the agent closes the connection or we are interrupted).
func printLines(from connection: ControlConnection, count: Int?, render: ([UInt8]) -> String) throws {
    var printed = 0
    while count.map({ printed < $0 }) ?? true {
        let line: [UInt8]?
        do { line = try connection.readLine() } catch {
            printError("agentctl: \(error)")
            throw ExitCode(Exit.unknown)
        }
        guard let line else {
            if count != nil {
                printError("agentctl: the agent closed the connection after \(printed) of \(count!) lines")
                throw ExitCode(Exit.unknown)
            }
            return
        }
        print(render(line))
        fflush(nil)  // a follower sees each alert at once, even through a pipe
        printed += 1
    }
}
