import AgentConfig

/// `xferwatchd replay`: recorded logs through the same graph as the live agent. The host is
/// not consulted (its /proc, sockets, users and name belong to today, not to the log): flows
/// carry what audit recorded (process, ancestry, remote end; no byte counts, no local ports),
/// alerts the user names ENRICHED records carry and the `node=` of forwarded records.
public enum Replay {
    public static func run(configuration: AgentConfiguration, files: [String], output: OutputOptions, log: Logger) -> Int32 {
        let graph: AgentGraph
        do {
            graph = try AgentGraph(configuration: configuration, mode: .replay, output: output, log: log)
        } catch {
            log.error("detection: \(error)")
            return 1
        }
        let succeeded = graph.replay(files: files, log: log)
        for line in graph.summary { log.info("replay: \(line)") }
        // The command exits next: freeing every process record, flow and table one by one
        // would cost 3% of a replay (measured) for memory the exit returns anyway.
        _ = Unmanaged.passRetained(graph)
        return succeeded ? 0 : 1
    }
}
