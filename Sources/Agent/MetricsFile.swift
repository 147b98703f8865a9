import AgentConfig
import Outputs
import Runtime

#if canImport(Glibc)
    import Glibc
#endif

/// `[output.metrics]`: the Prometheus text written every `interval_seconds` to `path` for
/// node_exporter's textfile collector, atomically (a temporary file in the same directory, then
/// rename): the collector never reads half a file.
final class MetricsFile {
    private let log: Logger
    private var nextWrite: Int64 = 0
    private var failing = false

    init(log: Logger) { self.log = log }

    func writeIfDue(_ settings: AgentConfiguration.MetricsOutput, now: Int64, lines: () -> [[UInt8]]) {
        guard settings.enabled, now >= nextWrite else { return }
        nextWrite = now + Int64(settings.intervalSeconds) * 1000
        if writeFileAtomically(settings.path, mode: 0o644, lines()) {
            if failing { log.info("metrics: writing \(settings.path) again") }
            failing = false
            return
        }
        let reason = String(cString: strerror(errno))
        if !failing { log.error("metrics: cannot write \(settings.path): \(reason)") }
        failing = true
    }
}
