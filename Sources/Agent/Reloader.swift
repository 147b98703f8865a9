import AgentConfig
import Control
import Patterns
import Scanning

/// What a reload may change in the running agent, and nothing else of it (the graph's).
protocol ReloadTarget: AnyObject {
    /// Detection, network and exclusions: the detector's rules compiled anew (counts carry over).
    func reconfigureDetection(_ configuration: AgentConfiguration) throws(PatternError)
    func reconfigureOutputs(_ output: AgentConfiguration.Output)
    /// New YARA rules to the running worker, or a worker started; nil rules stop it.
    func applyScanRules(_ rules: YaraRules?, settings: AgentConfiguration.Yara, log: Logger)
    /// Whether a YARA worker runs, and with how many rules.
    var scanning: (running: Bool, rules: Int) { get }
    var enabledRuleCount: Int { get }
}

/// agentctl reload and SIGHUP. The file is read and everything in it checked (patterns, YARA
/// rule files) before anything changes; then only the sections that changed are applied:
/// detection, network and exclusions swap the detector's compiled rules (counts carry over),
/// outputs are reopened, YARA rules recompiled and handed to the worker. An unchanged
/// `[rules.yara]` keeps its compiled rules, its clean-file set and its de-duplication set.
/// Sections only a restart can apply are named and left as they run.
final class Reloader {
    /// In effect: what was applied, with the restart-only sections as they started.
    private(set) var configuration: AgentConfiguration
    private let path: String
    private let target: ReloadTarget
    private let log: Logger

    init(configuration: AgentConfiguration, path: String, target: ReloadTarget, log: Logger) {
        self.configuration = configuration
        self.path = path
        self.target = target
        self.log = log
    }

    func reload() -> ControlResponse {
        let next: AgentConfiguration
        do {
            next = try AgentConfiguration.load(path: path)
        } catch {
            return refuse(error.description)
        }
        let current = configuration
        // A rule file with errors refuses the reload, as check-config fails on it: the operator
        // just edited it and keeps the rules that work until it is fixed.
        var yaraRules: YaraRules?
        let yaraChanged = next.yara != current.yara
        if yaraChanged {
            let (rules, errors) = ScanStage.compile(next.yara)
            if !errors.isEmpty { return refuse(errors.joined(separator: "; ")) }
            yaraRules = rules
        }
        var applied: [String] = []
        if next.detection != current.detection || next.network != current.network || next.exclusions != current.exclusions {
            do {
                try target.reconfigureDetection(next)
            } catch {
                return refuse("\(error)")
            }
            applied += ["detection", "network", "exclusions"]
        }
        if next.output != current.output {
            target.reconfigureOutputs(next.output)
            applied.append("output")
        }
        var warnings: [String] = []
        if yaraChanged {
            applyYara(yaraRules, settings: next.yara, warnings: &warnings)
            applied.append("rules.yara")
        }

        var restartNeeded: [String] = []
        var kept = next
        if next.agent != current.agent { restartNeeded.append("agent"); kept.agent = current.agent }
        if next.audit != current.audit { restartNeeded.append("audit"); kept.audit = current.audit }
        if next.host != current.host { restartNeeded.append("host"); kept.host = current.host }
        if next.flows != current.flows { restartNeeded.append("flows"); kept.flows = current.flows }
        if next.inspection != current.inspection { restartNeeded.append("inspection"); kept.inspection = current.inspection }
        if next.yara.queueSize != current.yara.queueSize && target.scanning.running { restartNeeded.append("rules.yara.queue_size") }
        configuration = kept
        log.info(
            "reloaded \(path): " + (applied.isEmpty ? "nothing changed that a reload applies" : "applied \(applied.joined(separator: ", "))")
                + (restartNeeded.isEmpty ? "" : "; a restart is needed for \(restartNeeded.joined(separator: ", "))")
                + "; \(target.enabledRuleCount) rules, \(next.exclusions.count) exclusions, \(target.scanning.rules) YARA rules")
        return ControlResponse(reload: ReloadResult(applied: applied, restartNeeded: restartNeeded, warnings: warnings))
    }

    /// New rules to the running worker, or a worker started or stopped.
    private func applyYara(_ rules: YaraRules?, settings: AgentConfiguration.Yara, warnings: inout [String]) {
        if rules == nil && settings.enabled {
            warnings.append(ScanStage.noRules(settings))
            log.warning(ScanStage.noRules(settings))
        }
        target.applyScanRules(rules, settings: settings, log: log)
    }

    private func refuse(_ reason: String) -> ControlResponse {
        log.error("reload refused, the running configuration stays: \(reason)")
        return .refused(.invalidConfiguration, reason)
    }
}
