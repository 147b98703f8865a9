import HostState

/// Who raised an alert: the host (ECS `host.*`) and this agent (`agent.*`), so that a SIEM
/// fed by a fleet tells senders apart without going back to them.
public struct AlertOrigin: Sendable {
    public struct Agent: Sendable, Equatable {
        public static let type = "xferwatch"
        /// Kept in state_dir: the same across restarts and upgrades.
        public var id: String?
        public var version: String
        /// This run's: another after every restart.
        public var ephemeralID: String?

        public init(id: String?, version: String, ephemeralID: String?) {
            (self.id, self.version, self.ephemeralID) = (id, version, ephemeralID)
        }
    }

    public var host: HostFacts
    /// Nil in a replay: the log's alerts are described, not raised by a running agent.
    public var agent: Agent?

    public init(host: HostFacts, agent: Agent? = nil) {
        self.host = host
        self.agent = agent
    }
}
