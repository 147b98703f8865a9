import Runtime

/// Whether a person at a terminal ran a process, and if not, why not.
/// Interactive means: a controlling terminal, stdin on a terminal, a login uid, and nothing in
/// the ancestry that marks automation (cron, atd, a systemd unit, a web server, an sshd remote
/// command, a CI runner; a shell script in the same terminal session). A shell running `-c`
/// on a real terminal is interactive.
public struct Interactivity: Sendable, Equatable {
    public var reasons: [String]
    public var isInteractive: Bool { reasons.isEmpty }

    static let shells: Set<String> = ["sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "fish", "tcsh", "csh", "busybox"]
    static let launchers: [(names: Set<String>, reason: String)] = [
        (["cron", "crond", "anacron", "fcron", "cronie", "busybox-crond"], "launched by cron"),
        (["atd", "atrun"], "launched by atd"),
        (["apache2", "httpd", "nginx", "lighttpd", "php-fpm", "uwsgi", "gunicorn", "caddy", "tomcat"], "launched by a web server"),
        (
            [
                "gitlab-runner", "Runner.Worker", "Runner.Listener", "buildkite-agent", "drone-runner-exec", "drone-runner-docker",
                "woodpecker-agent", "act_runner", "forgejo-runner", "circleci-agent", "teamcity-agent",
            ], "launched by a CI runner"
        ),
    ]

    public init(reasons: [String]) { self.reasons = reasons }

    /// `cgroupOf` reads a process's cgroup path (nil when gone); used to recognise systemd units.
    public static func assess(_ process: ProcessRecord, cgroupOf: (ProcessRecord) -> String? = { _ in nil }) -> Interactivity {
        var reasons: [String] = []
        func add(_ reason: String) { if !reasons.contains(reason) { reasons.append(reason) } }

        if process.tty == nil { add("no tty") }
        switch process.stdin {
        case .terminal, .unknown: break
        case .file: add("stdin is a file")
        case .pipe: add("stdin is a pipe")
        case .socket: add("stdin is a socket")
        case .null: add("stdin is /dev/null")
        case .closed: add("stdin is closed")
        }
        if process.auid == ProcessRecord.unsetLoginUID { add("login uid unset") }

        let lineage = [process] + process.ancestors()
        for (depth, p) in lineage.enumerated() {
            let name = p.executableName
            let program = p.programName
            for launcher in launchers where launcher.names.contains(name) || launcher.names.contains(program) {
                add(launcher.reason)
            }
            // php-fpm's binary carries its version: php-fpm8.2.
            if name.hasPrefix("php-fpm") { add("launched by a web server") }
            if isJenkinsAgent(p) { add("launched by a CI runner") }
            if depth > 0, name == "sshd", process.tty == nil { add("launched by sshd as a remote command") }
            // Scripts count within the process's terminal session: a terminal opened by
            // `script` or sshd starts a new one, and what launched that is not the user's doing.
            let sameSession = process.terminalSession == nil || p.terminalSession == nil || p.terminalSession == process.terminalSession
            if sameSession, shells.contains(program) || shells.contains(name) {
                switch shellMode(p.arguments) {
                case .command where p.tty == nil: add("shell running -c")
                case .script: add("shell running a script file")
                default: break
                }
            }
        }
        // Children stay in their service's cgroup: the nearest process still running tells.
        if process.auid == ProcessRecord.unsetLoginUID || process.tty == nil,
            let cgroup = lineage.prefix(8).lazy.compactMap(cgroupOf).first, isSystemdUnit(cgroup)
        {
            add("launched by a systemd unit")
        }
        return Interactivity(reasons: reasons)
    }

    enum ShellMode { case interactive, command, script, stdin }

    /// What a shell's argv asks for: `-c STRING`, a script operand, or reading commands.
    static func shellMode(_ arguments: [String]) -> ShellMode {
        var i = 1
        // busybox sh: skip the applet word.
        if let first = arguments.first, baseName(first) == "busybox" { i = 2 }
        while i < arguments.count {
            let arg = arguments[i]
            if arg == "--" { i += 1; break }
            if arg == "-o" || arg == "+o" || arg == "-O" || arg == "+O" { i += 2; continue }
            if arg.hasPrefix("--") { i += 1; continue }
            if arg.hasPrefix("-") || arg.hasPrefix("+") {
                if arg.dropFirst().contains("c") { return .command }
                if arg.dropFirst().contains("s") { return .stdin }
                i += 1
                continue
            }
            break
        }
        return i < arguments.count ? .script : .interactive
    }

    /// systemd services live in cgroups ending in `.service`; user sessions under `user@`/`session-`.
    static func isSystemdUnit(_ cgroup: String) -> Bool {
        guard let last = cgroup.split(separator: "/").last else { return false }
        return last.hasSuffix(".service") && !last.hasPrefix("user@") && !cgroup.contains("/session-")
    }

    static func isJenkinsAgent(_ p: ProcessRecord) -> Bool {
        p.executableName.hasPrefix("java") && p.arguments.contains { $0.hasSuffix("agent.jar") || $0.hasSuffix("remoting.jar") || $0.hasSuffix("slave.jar") }
    }
}
