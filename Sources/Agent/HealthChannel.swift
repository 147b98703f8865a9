import Detection
import Runtime

/// The agent's own trouble, on one channel: stages report findings (lost records, removed
/// rules, failing outputs, a full scan queue); once per event-loop turn they become
/// `agent.health` alerts, and each reason is kept 5 minutes for `agentctl status`'s verdict.
/// Nothing reports into the detector or the agent directly.
final class HealthChannel {
    private var pending: [(time: Int64, reasons: [String])] = []
    /// Reasons reported in the last `keptMilliseconds`, by monotonic time, oldest first.
    private(set) var recent: [(time: Int64, reason: String)] = []
    static let keptMilliseconds: Int64 = 300_000

    /// A finding at `time` (real time, the alert's timestamp).
    func report(_ reasons: [String], time: Int64) {
        guard !reasons.isEmpty else { return }
        pending.append((time, reasons))
    }

    /// Pending findings to the detector as alerts (even when agent.health is off or excluded,
    /// the verdict keeps them); `now` is monotonic.
    func deliver(to detector: Detector, now: Int64) {
        for finding in pending {
            recent += finding.reasons.map { (now, $0) }
            detector.health(finding.reasons, time: finding.time)
        }
        pending.removeAll()
        if let oldest = recent.first, now - oldest.time > Self.keptMilliseconds {
            recent.removeAll { now - $0.time > Self.keptMilliseconds }
        }
    }
}
