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
        let temporary = "\(parentDirectory(settings.path))/.\(baseName(settings.path)).\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        var written = fd >= 0
        if written {
            for line in lines() where written { written = line.withUnsafeBytes { writeAll(fd, $0) } }
            written = close(fd) == 0 && written
        }
        if written && rename(temporary, settings.path) == 0 {
            if failing { log.info("metrics: writing \(settings.path) again") }
            failing = false
            return
        }
        let reason = String(cString: strerror(errno))
        unlink(temporary)
        if !failing { log.error("metrics: cannot write \(settings.path): \(reason)") }
        failing = true
    }

    private func baseName(_ path: String) -> String { String(path.split(separator: "/").last ?? "metrics") }
}
