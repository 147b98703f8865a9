import Agent
import AgentConfig
import ArgumentParser
import CLinux
import Inspection
import KernelAudit
import Runtime
import Scanning

#if canImport(Glibc)
    import Glibc
#endif

@main
struct Xferwatchd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "xferwatchd",
        abstract: "Watches the kernel audit stream for file transfers used as command-and-control or exfiltration.",
        subcommands: [Run.self, Replay.self, CheckConfig.self, Cleanup.self])
}

struct ConfigOption: ParsableArguments {
    @Option(name: .long, help: "The agent configuration file (TOML).")
    var config = "/etc/xferwatch/agent.conf"

    /// Loads the file or exits 1 with every problem listed.
    func load() throws -> AgentConfiguration {
        do {
            return try AgentConfiguration.load(path: config)
        } catch {
            printError(error.description)
            throw ExitCode(1)
        }
    }
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the agent on the live audit stream.")
    @OptionGroup var options: ConfigOption
    @Flag(help: "Print every assembled event as a JSON line on standard output.")
    var events = false
    @Flag(help: "Print every finished file-transfer flow as a JSON line on standard output.")
    var flows = false
    @Flag(help: "Print every alert as a JSON line on standard output too (they always go to [output.file]).")
    var alerts = false
    @Option(help: "Read audit records from this source instead of [audit] source (audisp when auditd starts the agent as its plugin).")
    var source: String?

    func validate() throws {
        if let source, AuditSourceMode(rawValue: source) == nil {
            throw ValidationError("--source must be one of \(AuditSourceMode.allCases.map(\.rawValue).joined(separator: ", "))")
        }
    }

    func run() throws {
        var configuration = try options.load()
        if let source { configuration.audit.source = AuditSourceMode(rawValue: source)! }
        let log = Logger(level: configuration.agent.logLevel)
        // A reader of our output going away must be an error we report, not a silent death
        // that leaves the kernel's audit state behind.
        signal(SIGPIPE, SIG_IGN)
        // One malloc arena for every thread: the workers allocate little, and each arena of
        // their own kept about half a megabyte resident.
        mallopt(M_ARENA_MAX, 1)
        // Blocks of 128 KB and more mapped for themselves and unmapped when freed. glibc raises
        // this bound to the size of the largest such block freed, and compiling YARA rules frees
        // 1 MB ones: the next compile's buffers then came from the heap and kept 9 MB resident
        // once freed.
        mallopt(M_MMAP_THRESHOLD, 128 * 1024)
        let output = OutputOptions(events: events, flows: flows, alerts: alerts)
        let status = LiveAgent(configuration: configuration, configurationPath: options.config, output: output, log: log).run()
        if status != 0 { throw ExitCode(status) }
    }
}

struct Replay: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run recorded audit logs through the pipeline.")
    @OptionGroup var options: ConfigOption
    @Flag(help: "Print every assembled event as a JSON line on standard output.")
    var events = false
    @Flag(help: "Print every file-transfer flow as a JSON line on standard output.")
    var flows = false
    @Flag(help: "Print every alert as a JSON line on standard output (the default without --events or --flows).")
    var alerts = false
    @Argument(help: "Audit log files; - for standard input.")
    var files: [String] = []

    func run() throws {
        let configuration = try options.load()
        let log = Logger(level: configuration.agent.logLevel)
        let output = OutputOptions(events: events, flows: flows, alerts: alerts || (!events && !flows))
        let status = Agent.Replay.run(configuration: configuration, files: files, output: output, log: log)
        if status != 0 { throw ExitCode(status) }
    }
}

struct CheckConfig: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "check-config", abstract: "Validate a configuration file.")
    @OptionGroup var options: ConfigOption

    @Flag(help: "Print the packet tap's capture filter (tcpdump syntax) and exit.")
    var printCaptureFilter = false

    @Flag(help: "Print the audit rules the agent needs, in auditctl syntax, and exit: for auditd's rules.d when auditd runs it as its plugin.")
    var printAuditRules = false

    /// The YARA rule files are compiled too. One that does not compile fails the check, as it
    /// refuses a reload (at start the agent runs without it and logs it).
    func run() throws {
        if printCaptureFilter {
            print(CaptureFilter.expression)
            return
        }
        let configuration = try options.load()
        if printAuditRules {
            for spec in xferwatchRuleSpecs(key: configuration.audit.ruleKey, ownPid: nil) { print(spec) }
            return
        }
        guard configuration.yara.enabled else {
            print("\(options.config): ok")
            return
        }
        let (rules, errors) = YaraRules.compile(globs: configuration.yara.paths)
        for error in errors { printError("yara: \(error)") }
        print("yara: \(rules?.ruleCount ?? 0) rules from \(rules?.files.count ?? 0) files")
        guard errors.isEmpty else { throw ExitCode(1) }
        print("\(options.config): ok")
    }
}

struct Cleanup: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Remove the audit rules and exclusion a run that did not stop left (systemd runs it after every stop).")
    @OptionGroup var options: ConfigOption

    func run() throws {
        let configuration = try options.load()
        let status = removeLeftoversOfUnfinishedRuns(configuration: configuration, log: Logger(level: configuration.agent.logLevel))
        if status != 0 { throw ExitCode(status) }
    }
}
