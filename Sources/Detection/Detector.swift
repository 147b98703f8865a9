import AgentConfig
import AuditIngest
import Flows
import HostState
import Patterns
import Runtime

/// Turns processes, connections and flows into alerts: each enabled rule once per execve or
/// flow, then the exclusions. Rules that need only the command line and the peer run when a
/// flow starts; those that need its bytes (and Elastic's rule, which needs the source
/// address) when it is reported.
public final class Detector {
    public struct Counters: Sendable {
        public var alerts: [RuleID: Int] = [:]
        public var execsChecked = 0
        public var flowsChecked = 0
    }

    public private(set) var counters = Counters()
    /// What agent.conf says, compiled: replaced whole by `reconfigure`.
    struct Rules {
        let settings: AgentConfiguration.Detection
        /// The packet tap runs: a flow's port is judged once its content said what it carries.
        let inspecting: Bool
        let enabled: Set<RuleID>
        let trusted: [IPNetwork]
        let exclusions: ExclusionSet
        let commandLinePatterns: [Pattern]
        let imageFilter: [Pattern]
        let filenamePatterns: [Pattern]
        let scriptedPatterns: [Pattern]
        /// Every execve-time pattern in one alternation: most command lines match none, and one
        /// scan rejects them (bench/detection: 541 instead of 668 ns per execve with the defaults).
        let execvePrefilter: Pattern?

        /// Every pattern of the configuration compiles here, once.
        init(_ configuration: AgentConfiguration) throws(PatternError) {
            let detection = configuration.detection
            settings = detection
            inspecting = configuration.inspection.enabled
            enabled = Set(RuleID.allCases).subtracting(detection.disabledRules)
            trusted = configuration.network.trustedNetworks
            func compile(_ sources: [String]) throws(PatternError) -> [Pattern] {
                var result: [Pattern] = []
                for source in sources { result.append(try Pattern(source)) }
                return result
            }
            commandLinePatterns = try compile(detection.commandLinePatterns)
            execvePrefilter = try Detector.alternation(of: detection.commandLinePatterns + detection.scriptedFTPPatterns)
            imageFilter = try compile(detection.processImageFilter)
            filenamePatterns = try compile(detection.filenamePatterns)
            scriptedPatterns = try compile(detection.scriptedFTPPatterns)
            exclusions = try ExclusionSet(configuration.exclusions)
        }

        var patterns: [Pattern] { commandLinePatterns + imageFilter + filenamePatterns + scriptedPatterns + [execvePrefilter].compactMap { $0 } }
    }

    private(set) var rules: Rules
    private var held = HeldAlerts()
    /// The rules each open flow fired: each fires once per flow, however often what the flow
    /// is and where it goes is learned anew.
    private var fired: [UInt64: Set<RuleID>] = [:]
    public let firstSeen: FirstSeenStore
    private let sink: AlertSink
    private let idPrefix: String
    private var nextID: UInt64 = 1
    /// Exclusion hits and PCRE2 limit errors of the rules `reconfigure` replaced.
    private var earlierSilenced: [String: Int] = [:]
    private var earlierLimitErrors = 0

    public init(
        configuration: AgentConfiguration, firstSeen: FirstSeenStore, idPrefix: String, sink: AlertSink
    ) throws(PatternError) {
        rules = try Rules(configuration)
        self.firstSeen = firstSeen
        self.idPrefix = idPrefix
        self.sink = sink
    }

    /// A new configuration's rules, exclusions and thresholds, compiled before anything is
    /// replaced: when a pattern does not compile, the running rules stay. Counts carry over.
    public func reconfigure(_ configuration: AgentConfiguration) throws(PatternError) {
        let next = try Rules(configuration)
        // Held alerts are decided under the rules they were raised by.
        decideHeld()
        for (name, hits) in rules.exclusions.silenced { earlierSilenced[name, default: 0] += hits }
        earlierLimitErrors += rules.patterns.reduce(0) { $0 + $1.limitErrors }
        rules = next
    }

    /// Rules turned on.
    public var enabledRules: Set<RuleID> { rules.enabled }

    /// Alerts each exclusion silenced, by name, since start (exclusions a reload removed included).
    public var silenced: [String: Int] { rules.exclusions.silenced.merging(earlierSilenced, uniquingKeysWith: +) }
    /// Matches that hit PCRE2's backtracking limit, over every pattern.
    public var patternLimitErrors: Int { earlierLimitErrors + rules.patterns.reduce(0) { $0 + $1.limitErrors } }

    // MARK: execve

    /// One pattern matching whatever any of `sources` matches; nil when they cannot be joined
    /// safely (group numbers shift, so back-references and recursion are left alone).
    static func alternation(of sources: [String]) throws(PatternError) -> Pattern? {
        let unsafe = ["(?P=", "(?|", "(?R", "(?&", "\\g", "\\k"] + (1...9).map { "\\\($0)" } + (1...9).map { "(?\($0)" }
        guard sources.count > 1, !sources.contains(where: { source in unsafe.contains { source.contains($0) } }) else { return nil }
        return try Pattern(sources.map { "(?:\($0))" }.joined(separator: "|"))
    }

    /// What the execve-time rules find in a process that started (for most processes,
    /// nothing). The caller judges the process's interactivity from host state, while it runs,
    /// and hands both to `hold`: the detector works on values and reads no /proc.
    public func execveFindings(_ process: ProcessRecord) -> [ProcessFinding] {
        counters.execsChecked += 1
        var findings: [ProcessFinding] = []
        let mayMatch = rules.execvePrefilter?.matches(process.commandLine) ?? true
        if mayMatch, rules.enabled.contains(.commandLine), let pattern = rules.commandLinePatterns.first(where: { $0.matches(process.commandLine) }) {
            findings.append(ProcessFinding(.commandLine, reasons: ["command line matches \(pattern.source)"], process: process, time: process.startTime))
        }
        if rules.enabled.contains(.scriptedFTP) {
            let reasons = scriptedFTPReasons(process, patternsMayMatch: mayMatch)
            if !reasons.isEmpty { findings.append(ProcessFinding(.scriptedFTP, reasons: reasons, process: process, time: process.startTime)) }
        }
        return findings
    }

    /// Execve-time alerts wait (see `HeldAlerts`) up to `hold_execve_alerts_ms`.
    public func hold(_ findings: [ProcessFinding], interactivity: Interactivity) {
        for finding in findings {
            let alert = makeAlert(finding, interactivity: interactivity)
            guard rules.settings.holdExecveAlertsMilliseconds > 0 else {
                decide(alert)
                continue
            }
            let until = finding.process.startTime + Int64(rules.settings.holdExecveAlertsMilliseconds)
            for decided in held.hold(alert, until: until) { decide(decided) }
        }
    }

    /// A finding about a process out at once, with the interactivity the caller judged.
    public func raise(_ finding: ProcessFinding, interactivity: Interactivity) {
        decide(makeAlert(finding, interactivity: interactivity))
    }

    /// Held alerts whose delay ran out or whose process exited are decided; call a few times
    /// a second (live) or per event (replay: `now` is the log's time).
    public func tick(now: Int64) {
        for alert in held.takeDue(now: now) { decide(alert) }
    }

    /// Every held alert is decided now (reload, stop, the end of a log).
    public func decideHeld() {
        for alert in held.takeAll() { decide(alert) }
    }

    /// Execve-time alerts waiting for their process's connection, exit or delay.
    public var heldAlerts: Int { held.count }

    /// Splunk's `ftp -s:script` and the ways Linux FTP clients run scripts.
    func scriptedFTPReasons(_ p: ProcessRecord, patternsMayMatch: Bool) -> [String] {
        var reasons: [String] = []
        if patternsMayMatch, let pattern = rules.scriptedPatterns.first(where: { $0.matches(p.commandLine) }) {
            reasons.append("command line matches \(pattern.source)")
        }
        // Checks use what the program is (a renamed tnftp is tnftp); messages say what it was called.
        let program = p.program
        let called = p.programName
        let args = p.arguments
        if p.isProgram(in: TransferTools.commandFTPClients) {
            switch p.stdin {
            case .file: reasons.append("\(called) reads its commands from a file on stdin")
            case .pipe: reasons.append("\(called) reads its commands from a pipe")
            // Gone before its stdin could be read (a scripted session can take 20 ms), or a
            // recorded log: with no terminal, no person typed its commands.
            case .unknown where p.tty == nil: reasons.append("\(called) ran without a terminal, its stdin unread: its commands came from a script")
            default: break
            }
        }
        if program == "lftp", p.tty == nil, let option = args.dropFirst().first(where: { ["-f", "-c", "-e"].contains($0) }) {
            reasons.append("lftp \(option) runs commands without a terminal")
        }
        if program == "sftp", args.contains("-b") { reasons.append("sftp -b runs a batch file") }
        if program == "ftpput" || program == "ftpget" { reasons.append("\(program) transfers without a session (busybox applet)") }
        if !reasons.isEmpty, let note = p.identityNote { reasons.append(note) }
        return reasons
    }

    // MARK: connections and flows

    /// A process connected out: its held alerts go, and the first connection of an executable
    /// to an untrusted peer is a finding (`raise` it with the process's interactivity).
    public func connected(_ process: ProcessRecord, to remote: IPAddress, port: UInt16, time: Int64) -> ProcessFinding? {
        // Port 0 and unspecified peers are route probes (getaddrinfo's AI_ADDRCONFIG), not
        // connections; port 53 is the name lookup before the connection that matters.
        guard port != 0, remote.bytes.contains(where: { $0 != 0 }) else { return nil }
        if port != 53 { for alert in held.takeConnected(process, remote: (remote, port)) { decide(alert) } }
        guard rules.enabled.contains(.firstSeenProcess), !process.executable.isEmpty else { return nil }
        // A connection to a trusted peer counts as having connected out: only then is it known.
        guard firstSeen.observe(process.executable, now: time) == .new, !isTrusted(remote) else { return nil }
        return ProcessFinding(
            .firstSeenProcess, reasons: ["first outbound connection of \(process.executable)", "destination \(remote) is untrusted"],
            process: process, time: time, remote: (remote, port))
    }

    public func flowStarted(_ flow: Flow) {
        counters.flowsChecked += 1
        checkWhatAndWhere(flow)
        if rules.enabled.contains(.lolbinTransfer) {
            let reasons = lolbinReasons(flow)
            if !reasons.isEmpty { raiseOnce(.lolbinTransfer, flow: flow, reasons: reasons) }
        }
        checkNoFile(flow)
        if rules.enabled.contains(.suspiciousFilename) {
            let names = suspiciousNames(flow.transferProcess ?? flow.process)
            if !names.isEmpty { raiseOnce(.suspiciousFilename, flow: flow, reasons: names.map { "command line names \($0)" }) }
        }
    }

    /// The packet tap identified the flow's protocol, found its port carrying another one, read
    /// its proxy request, or a relay on this host was found carrying it on.
    public func flowIdentified(_ flow: Flow, previously: FlowProtocol) {
        checkWhatAndWhere(flow)
        if rules.enabled.contains(.protocolMismatch), let mismatch = flow.content.mismatch {
            raiseOnce(.protocolMismatch, flow: flow, reasons: [mismatch] + (flow.content.evidence.map { ["content: \($0)"] } ?? []))
        }
    }

    /// transfer.no_file_executable, when the flow starts or (deleted while it ran) ends.
    private func checkNoFile(_ flow: Flow) {
        let process = flow.process
        guard rules.enabled.contains(.noFileExecutable), process.executableHasNoFile else { return }
        let how = process.executable.hasPrefix("/memfd:") ? "loaded through memfd_create" : "deleted"
        raiseOnce(.noFileExecutable, flow: flow, reasons: ["\(process.executable) has no file on disk (\(how))"])
    }

    /// Rules on what the flow is and where it goes, run whenever either is learned. With the
    /// tap on they wait for the flow's first content (a round trip: a proxy request or the
    /// server's greeting) or its end: a connection to a proxy's port is judged by what it carries
    /// and where the proxy was asked to go.
    private func checkWhatAndWhere(_ flow: Flow, ended: Bool = false) {
        guard !rules.inspecting || ended || flow.content.protocolName != nil || flow.content.proxy != nil else { return }
        if rules.enabled.contains(.noninteractiveTransfer), Self.transferProtocols.contains(flow.networkProtocol),
            !flow.interactivity.isInteractive, let outside = untrustedDestination(flow)
        {
            raiseOnce(.noninteractiveTransfer, flow: flow, reasons: flow.interactivity.reasons + [outside])
        }
        if !rules.inspecting || ended || flow.content.protocolName != nil { checkPort(flow) }
    }

    /// Protocols whose every flow is a transfer; a plain SSH session is one by its bytes.
    static let transferProtocols: Set<FlowProtocol> = [.ftp, .ftps, .scp, .sftp, .tftp, .smb]

    /// transfer.nonstandard_port: a transfer protocol away from its ports, by port and client
    /// name or by what the packet tap read; through a proxy, the port asked of it.
    private func checkPort(_ flow: Flow) {
        let proto = flow.networkProtocol
        guard rules.enabled.contains(.nonstandardPort), let usual = proto.standardPorts, !usual.contains(flow.targetPort) else { return }
        let client = Self.imageName(flow.transferProcess ?? flow.process)
        let name = flow.content.protocolName ?? proto.rawValue
        let target =
            flow.content.proxy.map { "port \($0.port) through the \($0.kind.rawValue) proxy \(flow.remoteAddress):\(flow.remotePort)" }
            ?? "port \(flow.remotePort)"
        raiseOnce(
            .nonstandardPort, flow: flow,
            reasons: ["\(client) connected to \(target) (usual for \(name): \(usual.map(String.init).joined(separator: ", ")))"]
                + (flow.content.evidence.map { ["content: \($0)"] } ?? []))
    }

    public func flowReported(_ flow: Flow) {
        defer { fired[flow.id] = nil }
        // A flow whose content the tap never read is judged now.
        checkWhatAndWhere(flow, ended: true)
        checkNoFile(flow)
        // File names the control channel carried (packet tap), when the command line named none.
        if rules.enabled.contains(.suspiciousFilename) {
            let names = suspiciousNames(flow.content.fileNames)
            if !names.isEmpty { raiseOnce(.suspiciousFilename, flow: flow, reasons: names.map { "transfer command names \($0)" }) }
        }
        let outside = untrustedDestination(flow)
        let out = flow.sessionBytesOut ?? 0
        let total = out + (flow.sessionBytesIn ?? 0)
        if rules.enabled.contains(.noninteractiveTransfer), flow.networkProtocol == .ssh, !flow.interactivity.isInteractive, let outside,
            let moved = sshTransfer(flow)
        {
            raiseOnce(.noninteractiveTransfer, flow: flow, reasons: flow.interactivity.reasons + [moved, outside])
        }
        if rules.enabled.contains(.largeTransfer), let outside, out >= UInt64(rules.settings.transferSizeThreshold) {
            raiseOnce(.largeTransfer, flow: flow, reasons: ["sent \(out) bytes (threshold \(rules.settings.transferSizeThreshold))", outside])
        }
        if rules.enabled.contains(.outboundRatio), let outside, total > 0, total >= UInt64(rules.settings.outboundMinimumBytes) {
            let share = Double(out) / Double(total)
            if share >= rules.settings.dataFlowDirectionThreshold {
                raiseOnce(
                    .outboundRatio, flow: flow,
                    reasons: ["\(percent(share)) of \(total) bytes outbound (threshold \(percent(rules.settings.dataFlowDirectionThreshold)))", outside])
            }
        }
        if rules.enabled.contains(.smbToInternet), flow.networkProtocol == .smb, let outside {
            let how = flow.content.evidence.map { "content: \($0)" } ?? "\(Self.imageName(flow.process)) connected to port \(flow.targetPort)"
            let files = flow.content.smbFiles.prefix(5).map { "\($0.write ? "wrote" : "read") \($0.file)" }
            raiseOnce(.smbToInternet, flow: flow, reasons: [how] + files + [outside])
        }
        if rules.enabled.contains(.ftpToInternet), let reasons = ftpToInternetReasons(flow) {
            raiseOnce(.ftpToInternet, flow: flow, reasons: reasons)
        } else if rules.enabled.contains(.ftpToInternetOtherPath), let reasons = ftpToInternetOtherPathReasons(flow, outside: outside) {
            raiseOnce(.ftpToInternetOtherPath, flow: flow, reasons: reasons)
        }
    }

    // MARK: scanning

    /// A YARA rule matched a file this process executed, listens with or may upload; the
    /// process's interactivity as the caller judged it.
    public func yaraMatched(_ finding: YaraFinding, process: ProcessRecord?, interactivity: Interactivity?, time: Int64) {
        guard rules.enabled.contains(.yaraMatch) else { return }
        raise(
            .yaraMatch, time: time, reasons: [finding.trigger, "YARA rule \(finding.match.rule) matched \(finding.file.path)"],
            process: process, interactivity: interactivity, yara: finding)
    }

    // MARK: agent health

    /// The agent's own trouble, as an alert a SOC sees beside the others.
    public func health(_ reasons: [String], time: Int64) {
        guard rules.enabled.contains(.agentHealth) else { return }
        raise(.agentHealth, time: time, reasons: reasons, process: nil)
    }

    // MARK: raising

    func isTrusted(_ address: IPAddress) -> Bool { rules.trusted.contains(address: address.bytes) }

    /// A flow's rule, unless it already fired on that flow.
    private func raiseOnce(_ rule: RuleID, flow: Flow, reasons: [String]) {
        guard fired[flow.id, default: []].insert(rule).inserted else { return }
        raise(rule, flow: flow, reasons: reasons)
    }

    private func raise(_ rule: RuleID, flow: Flow, reasons: [String]) {
        raise(rule, time: flow.end ?? flow.start, reasons: reasons, process: flow.process, interactivity: flow.interactivity, flow: flow)
    }

    private func raise(
        _ rule: RuleID, time: Int64, reasons: [String], process: ProcessRecord?, interactivity: Interactivity? = nil,
        flow: Flow? = nil, remote: (IPAddress, UInt16)? = nil, yara: YaraFinding? = nil
    ) {
        decide(makeAlert(rule, time: time, reasons: reasons, process: process, interactivity: interactivity, flow: flow, remote: remote, yara: yara))
    }

    /// The alert as it stands now; its id comes when it is decided.
    private func makeAlert(
        _ rule: RuleID, time: Int64, reasons: [String], process: ProcessRecord?, interactivity: Interactivity? = nil,
        flow: Flow? = nil, remote: (IPAddress, UInt16)? = nil, yara: YaraFinding? = nil
    ) -> Alert {
        Alert(
            id: "", rule: rule, time: time, reasons: reasons, process: process, interactivity: interactivity, flow: flow, remote: remote,
            yara: yara)
    }

    private func makeAlert(_ finding: ProcessFinding, interactivity: Interactivity) -> Alert {
        makeAlert(
            finding.rule, time: finding.time, reasons: finding.reasons, process: finding.process, interactivity: interactivity,
            remote: finding.remote)
    }

    /// Exclusions, then out with an id.
    private func decide(_ alert: Alert) {
        if rules.exclusions.silence(alert) != nil { return }
        var alert = alert
        alert.id = "\(idPrefix)-\(nextID)"
        nextID += 1
        counters.alerts[alert.rule, default: 0] += 1
        sink.consume(alert)
    }
}

private func percent(_ share: Double) -> String { "\(Int((share * 100).rounded()))%" }

extension Detector {
    /// Alerts per rule and per exclusion, for the stop summary.
    public var summary: String {
        let fired = counters.alerts.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.key.rawValue) \($0.value)" }
        let silenced = silenced.sorted { $0.key < $1.key }.map { "\"\($0.key)\" \($0.value)" }
        return "detection: \(counters.execsChecked) execs and \(counters.flowsChecked) flows checked; fired: "
            + (fired.isEmpty ? "none" : fired.joined(separator: ", "))
            + "; excluded: " + (silenced.isEmpty ? "none" : silenced.joined(separator: ", "))
            + (patternLimitErrors > 0 ? "; \(patternLimitErrors) matches hit the PCRE2 limit" : "")
    }
}
