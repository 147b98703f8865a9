import Outputs

/// When the syslog output's state is worth an `agent.health` alert: alerts dropped, the spool
/// filling up or unwritable, the receiver unreachable for a while. Each condition is reported
/// when it starts (drops at most once a minute), not on every check.
struct SyslogHealth {
    private var droppedReported = 0
    private var lastDropReport: Int64 = 0
    private var spoolHighReported = false
    private var spoolProblemReported: String?
    private var unreachableSince: Int64?
    private var unreachableReported = false
    /// How long the receiver may be away before it is an alert (restarts are routine).
    static let unreachableGraceMilliseconds: Int64 = 60_000

    mutating func check(_ status: SyslogForwarder.Status, spoolLimit: Int, now: Int64, log: Logger) -> [String] {
        var reasons: [String] = []
        if status.dropped > droppedReported && now - lastDropReport >= 60_000 {
            let dropped = status.dropped - droppedReported
            log.error(
                "syslog output dropped \(dropped) alerts (spool full: \(status.spool.dropped) in all, oversize: \(status.droppedOversize), spool unwritable: \(status.droppedUnspooled))"
            )
            reasons.append("syslog output dropped \(dropped) alerts: the spool (spool_max_bytes \(spoolLimit)) was full and its oldest alerts went")
            droppedReported = status.dropped
            lastDropReport = now
        }
        if Spool.isNearlyFull(bytes: status.spool.bytes, limit: spoolLimit) && !spoolHighReported {
            spoolHighReported = true
            log.warning("syslog spool \(status.spool.bytes) of \(spoolLimit) bytes used")
            reasons.append("syslog spool \(status.spool.bytes * 100 / spoolLimit)% full (\(status.spool.records) alerts not delivered)")
        } else if status.spool.bytes * 2 < spoolLimit {
            spoolHighReported = false
        }
        if let problem = status.spoolProblem, problem != spoolProblemReported {
            reasons.append("syslog spool unwritable: \(problem); \(status.waiting) alerts held in memory")
        }
        spoolProblemReported = status.spoolProblem
        if let problem = status.problem {
            let since = unreachableSince ?? now
            unreachableSince = since
            if !unreachableReported && now - since >= Self.unreachableGraceMilliseconds {
                unreachableReported = true
                reasons.append("syslog receiver \(status.address) unreachable for \((now - since) / 1000) s: \(problem)")
                reasons.append("\(status.spool.records) alerts spooled for it")
            }
        } else {
            unreachableSince = nil
            unreachableReported = false
        }
        return reasons
    }
}
