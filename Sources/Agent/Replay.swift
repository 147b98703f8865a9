import AgentConfig
import AuditIngest

#if canImport(Glibc)
import Glibc
#endif

/// `xferwatchd replay`: recorded logs through the same pipeline as the live agent.
public enum Replay {
    public static func run(configuration: AgentConfiguration, files: [String], output: OutputOptions, log: Logger) -> Int32 {
        let printer = EventPrinter(options: output)
        let pipeline = Pipeline(settings: configuration.assemblerSettings, log: log, consumer: printer.consume)
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
        printer.flush()
        log.info("replay: \(pipeline.summary)")
        return failed ? 1 : 0
    }
}

extension AgentConfiguration {
    var assemblerSettings: AssemblerSettings {
        AssemblerSettings(logTimeoutMilliseconds: Int64(audit.eventTimeoutMilliseconds),
                          wallTimeoutMilliseconds: Int64(audit.eventTimeoutMilliseconds),
                          maximumPendingEvents: audit.maximumPendingEvents)
    }
}
