import AgentConfig
import Foundation
import Outputs
import Runtime

#if canImport(Glibc)
    import Glibc
#endif

// bench/syslog's xferwatch side: COUNT alert-sized messages built like the agent builds them,
// through the spool (fsync'd) and the forwarding thread to a TCP receiver, until the receiver's
// TCP stack acknowledged the last one; then the same lines through the alert file.
// Usage: SyslogBench PORT COUNT WORKDIR   (writes WORKDIR/payloads: the peer sends the same lines)
let arguments = CommandLine.arguments
guard arguments.count == 4, let port = Int(arguments[1]), let count = Int(arguments[2]) else {
    print("usage: SyslogBench PORT COUNT WORKDIR")
    exit(64)
}
let work = arguments[3]

/// An alert's JSON is about 1.5 KB; every payload differs, as alerts do.
func payload(_ index: Int) -> [UInt8] {
    let filler = String(repeating: "x", count: 1300)
    return Array(
        #"{"@timestamp":"2026-11-22T10:00:00.000Z","event":{"kind":"alert","id":"bench-\#(index)","severity":47},"rule":{"id":"ftp.scripted"},"xferwatch":{"pad":"\#(filler)"}}"#
            .utf8)
}
let payloads = (0..<count).map(payload)
let file = fopen(work + "/payloads", "w")!
for line in payloads { fputs(String(decoding: line, as: UTF8.self) + "\n", file) }
fclose(file)

func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
}

let settings = try AgentConfiguration.parse("[output.syslog]\naddress = \"tcp://127.0.0.1:\(port)\"\n").output.syslog
let builder = SyslogMessageBuilder(settings: settings, hostname: "bench", processID: getpid())
let forwarder = SyslogForwarder.start(
    settings: settings, spoolDirectory: work + "/spool",
    log: { _, message in
        let line = Array((message + "\n").utf8); _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    })!
while !forwarder.currentStatus.connected { usleep(10_000) }

var wallStart = monotonicMilliseconds()
var cpuStart = cpuSeconds()
for (index, line) in payloads.enumerated() {
    let message = builder.message(
        time: 1_795_000_000_000 + Int64(index), severity: 4, msgID: "ftp.scripted",
        parameters: [("rule", "ftp.scripted"), ("event", "bench-\(index)"), ("severity", "47")], payload: line)
    forwarder.submit(message.bytes)
    // The agent raises alerts far slower than this loop; a producer this fast waits for the
    // spool rather than overflow the in-memory hand-over (which would drop, counted).
    if index % 1000 == 999 { while forwarder.currentStatus.waiting > 4000 { usleep(200) } }
}
while forwarder.currentStatus.delivered + forwarder.currentStatus.dropped < count { usleep(1_000) }
if forwarder.currentStatus.dropped > 0 { print("dropped \(forwarder.currentStatus.dropped)") }
var wall = Double(monotonicMilliseconds() - wallStart) / 1000
var cpu = cpuSeconds() - cpuStart
forwarder.stop()
print(
    String(
        format: "xferwatch syslog tcp: %d alerts in %.3f s (%.0f alerts/s), %.3f CPU-s (%.0f alerts/CPU-s), spool fsync'd, delivery acknowledged",
        count, wall, Double(count) / wall, cpu, Double(count) / cpu))

var fileSettings = AgentConfiguration.FileOutput()
fileSettings.path = work + "/alerts.jsonl"
fileSettings.maximumBytes = 0
let alertFile = AlertFile(settings: fileSettings)
wallStart = monotonicMilliseconds()
cpuStart = cpuSeconds()
for line in payloads { alertFile.append(line + [0x0A]) }
wall = Double(monotonicMilliseconds() - wallStart) / 1000
cpu = cpuSeconds() - cpuStart
print(
    String(
        format: "xferwatch alert file: %d alerts in %.3f s (%.0f alerts/s), %.3f CPU-s, %d written",
        count, wall, Double(count) / max(wall, 0.001), cpu, alertFile.written))
