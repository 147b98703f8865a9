import AgentConfig
import HostState
import Patterns

/// The `[[exclusions]]` of agent.conf, compiled: an alert that matches one is counted under
/// the exclusion's name instead of being emitted.
final class ExclusionSet {
    private struct Compiled {
        let exclusion: AgentConfiguration.Exclusion
        let commandLine: Pattern?
    }

    private let exclusions: [Compiled]
    /// Names in agent.conf are this host's accounts, in a replay too.
    private let users = UserNames(source: .host)
    /// Alerts each exclusion silenced, by its name.
    private(set) var silenced: [String: Int] = [:]

    init(_ exclusions: [AgentConfiguration.Exclusion]) throws(PatternError) {
        var compiled: [Compiled] = []
        for exclusion in exclusions {
            compiled.append(
                Compiled(exclusion: exclusion, commandLine: try exclusion.commandLinePattern.map { pattern throws(PatternError) in try Pattern(pattern) }))
        }
        self.exclusions = compiled
        for exclusion in exclusions { silenced[exclusion.name] = 0 }
    }

    /// The name of the first exclusion the alert matches (and counts it), or nil.
    func silence(_ alert: Alert) -> String? {
        guard let match = exclusions.first(where: { matches($0, alert) }) else { return nil }
        silenced[match.exclusion.name, default: 0] += 1
        return match.exclusion.name
    }

    private func matches(_ compiled: Compiled, _ alert: Alert) -> Bool {
        let e = compiled.exclusion
        if !e.rules.isEmpty && !e.rules.contains(alert.rule) { return false }
        // The flow's owner and, for scp/sftp, the program that named the transfer.
        let images = [alert.process, alert.flow?.transferProcess].compactMap { $0 }
        let needsProcess =
            !e.processExecutables.isEmpty || !e.processNames.isEmpty || !e.parentExecutables.isEmpty
            || !e.ancestorExecutables.isEmpty || !e.users.isEmpty || compiled.commandLine != nil
            || !e.containerIDs.isEmpty || !e.containerRuntimes.isEmpty
        if needsProcess && images.isEmpty { return false }
        if !e.containerIDs.isEmpty
            && !images.contains(where: { image in image.container.map { c in e.containerIDs.contains { c.id.hasPrefix($0) } } ?? false })
        {
            return false
        }
        if !e.containerRuntimes.isEmpty && !images.contains(where: { $0.container.map { e.containerRuntimes.contains($0.runtime) } ?? false }) {
            return false
        }
        if !e.processExecutables.isEmpty && !images.contains(where: { e.processExecutables.contains($0.executable) }) { return false }
        if !e.processNames.isEmpty
            && !images.contains(where: { $0.isProgram(in: Set(e.processNames)) })
        {
            return false
        }
        if !e.parentExecutables.isEmpty
            && !images.contains(where: { $0.parent.map { e.parentExecutables.contains($0.executable) } ?? false })
        {
            return false
        }
        if !e.ancestorExecutables.isEmpty
            && !images.contains(where: { $0.ancestors().contains { e.ancestorExecutables.contains($0.executable) } })
        {
            return false
        }
        if !e.users.isEmpty,
            !images.contains(where: { p in
                guard let uid = p.uid else { return false }
                return e.users.contains(String(uid)) || users.name(of: uid).map(e.users.contains) == true
            })
        {
            return false
        }
        if let pattern = compiled.commandLine, !images.contains(where: { pattern.matches($0.commandLine) }) { return false }
        if !e.destinationNetworks.isEmpty || !e.destinationPorts.isEmpty {
            guard let destination = alert.destination else { return false }
            if !e.destinationNetworks.isEmpty && !e.destinationNetworks.contains(address: destination.address.bytes) { return false }
            if !e.destinationPorts.isEmpty && !e.destinationPorts.contains(Int(destination.port)) { return false }
        }
        return true
    }
}
