import AgentConfig
import AuditIngest
import Detection
import Flows
import HostState
import KernelAudit

#if canImport(Glibc)
import Glibc
#endif

/// `xferwatchd replay`: recorded logs through the same pipeline as the live agent. The host
/// is not consulted (its /proc and sockets belong to today, not to the log), so flows carry
/// what audit recorded: process, ancestry, remote end; no byte counts, no local ports.
public enum Replay {
    public static func run(configuration: AgentConfiguration, files: [String], output: OutputOptions, log: Logger) -> Int32 {
        let printer = EventPrinter(options: output)
        let processes = ProcessTable(procfs: nil, capacity: configuration.host.maximumProcesses)
        let stage: DetectionStage
        do {
            // The log's own first connection starts the learning period; nothing is persisted.
            stage = try DetectionStage(configuration: configuration, processes: processes,
                                       firstSeen: FirstSeenStore(learningMinutes: configuration.detection.firstSeenLearningMinutes),
                                       outputs: nil, printer: printer, log: log, idPrefix: "replay")
        } catch {
            log.error("detection: \(error)")
            return 1
        }
        let (detector, alerts) = (stage.detector, stage.alerts)
        let tracker = FlowTracker(catalog: .fromLibaudit(), processes: processes, sockets: nil, settings: configuration.flowSettings,
                                  observer: FlowConsumers(detector: detector, printer: printer, scans: nil))
        var lastTime: Int64 = 0
        let pipeline = Pipeline(settings: configuration.assemblerSettings, log: log) { event in
            printer.consume(event)
            lastTime = max(lastTime, event.key.time.totalMilliseconds)
            tracker.handle(event, now: lastTime)
        }
        var failed = false
        for file in files.isEmpty ? ["-"] : files {
            let fd = file == "-" ? 0 : open(file, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else {
                log.error("\(file): \(String(cString: strerror(errno)))")
                failed = true
                continue
            }
            var input = LineInput(fd: fd, name: file == "-" ? "stdin" : file)
            readLoop: while true {
                switch input.readOnce(into: pipeline, wallTime: 0) {
                case .data, .wouldBlock: continue
                case .endOfInput: break readLoop
                case .failed(let code):
                    log.error("\(file): read failed: \(String(cString: strerror(code)))")
                    failed = true
                    break readLoop
                }
            }
            input.finish(into: pipeline)
            if fd != 0 { close(fd) }
        }
        pipeline.flush()
        tracker.finish(now: lastTime)
        printer.flush()
        log.info("replay: \(pipeline.summary)")
        log.info("replay: \(processes.summary); \(tracker.summary)")
        log.info("replay: \(detector.summary); \(alerts.summary)")
        // The command exits next: freeing every process record, flow and table one by one
        // would cost 3% of a replay (measured) for memory the exit returns anyway.
        _ = Unmanaged.passRetained(pipeline)
        _ = Unmanaged.passRetained(tracker)
        return failed ? 1 : 0
    }
}

extension AgentConfiguration {
    var assemblerSettings: AssemblerSettings {
        AssemblerSettings(logTimeoutMilliseconds: Int64(audit.eventTimeoutMilliseconds),
                          wallTimeoutMilliseconds: Int64(audit.eventTimeoutMilliseconds),
                          maximumPendingEvents: audit.maximumPendingEvents)
    }

    var flowSettings: FlowSettings {
        var settings = FlowSettings()
        settings.unresolvedWaitMilliseconds = Int64(flows.unresolvedWaitMilliseconds)
        settings.pollIntervalMilliseconds = Int64(flows.pollIntervalMilliseconds)
        settings.dataLingerMilliseconds = Int64(flows.dataLingerMilliseconds)
        settings.maximumOpenFlows = flows.maximumOpenFlows
        return settings
    }
}

extension ProcessTable {
    var summary: String {
        let c = counters
        return "processes \(count) held, \(c.execs) execs, \(c.seeded) from /proc, \(c.exited) exited, \(c.evicted) evicted, "
            + "\(c.pidReuse) pid reuses, \(c.unknownParents) unknown parents, \(c.goneBeforeRead) gone before read, \(c.detailsMissed) gone before stdin was read"
    }
}

extension FlowTracker {
    var summary: String {
        let c = counters
        return "flows \(c.flowsReported) reported of \(c.flowsStarted), \(c.socketCalls) socket calls, \(c.notTransfers) not transfers, "
            + "\(c.serverSide) server side, \(c.failedConnects) failed connects, \(c.unresolved) unresolved (\(c.matchedLate) matched late), "
            + "\(c.evicted) evicted"
    }
}
