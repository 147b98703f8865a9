// bench/yara: YARA scanning cost. Scans a file list uncached (scans/s, MB/s), again from the
// cache, and pushes an execve storm of /bin/true through the scan queue (cached), with CPU
// time from getrusage. Usage: YaraBench RULES_GLOB FILE_LIST [STORM_COUNT]
import Foundation
import Scanning

func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
}

func wallSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}

let arguments = CommandLine.arguments
func fail(_ message: String, _ code: Int32) -> Never {
    FileHandle.standardError.write(Data((message + "\n").utf8))
    exit(code)
}
guard arguments.count >= 3, let list = try? String(contentsOfFile: arguments[2], encoding: .utf8) else {
    fail("usage: YaraBench RULES_GLOB FILE_LIST [STORM_COUNT]", 64)
}
let stormCount = arguments.count > 3 ? Int(arguments[3]) ?? 100_000 : 100_000

let (compiled, errors) = YaraRules.compile(globs: [arguments[1]])
for error in errors { print("rule error: \(error)") }
guard let rules = compiled else { fail("no rules", 1) }
let files = list.split(separator: "\n").map(String.init)
let scanner = FileScanner(rules: rules, maximumSize: 64 << 20, cacheCapacity: files.count + 16)

var cpu = cpuSeconds(), wall = wallSeconds()
for file in files { _ = scanner.scan(ScanTarget(path: file)) }
let uncachedCPU = cpuSeconds() - cpu, uncachedWall = wallSeconds() - wall
let c = scanner.counters
print(
    "files: \(files.count) listed, \(c.scans) scanned, \(c.bytesScanned / 1_000_000) MB, \(c.filesMatched) matched, \(c.tooLarge) too large, \(c.gone) unreadable, \(c.failed) failed"
)
print(
    String(
        format: "xferwatch uncached: %.3f CPU-s, %.3f s wall, %.0f scans/CPU-s, %.0f MB/CPU-s",
        uncachedCPU, uncachedWall, Double(c.scans) / uncachedCPU, Double(c.bytesScanned) / 1e6 / uncachedCPU))

cpu = cpuSeconds()
let rounds = 20
for _ in 0..<rounds { for file in files { _ = scanner.scan(ScanTarget(path: file)) } }
let cachedCPU = cpuSeconds() - cpu
print(String(format: "xferwatch cached: %.0f ns per lookup (stat + cache hit)", cachedCPU / Double(rounds * files.count) * 1e9))

// The execve storm: what each exec of /bin/true costs the agent once its scan is cached.
var info = stat()
stat("/bin/true", &info)
let target = ScanTarget(path: "/bin/true", expectedInode: UInt64(info.st_ino), locations: ["/bin/true", "/proc/1/exe"])
guard let queue = ScanQueue<Int>.start(scanner: FileScanner(rules: rules, maximumSize: 64 << 20), capacity: 1 << 20) else { exit(1) }
cpu = cpuSeconds(); wall = wallSeconds()
for index in 0..<stormCount { queue.submit(target, context: index) }
while queue.counters.scanner.scans + queue.counters.scanner.cacheHits < stormCount { usleep(1000) }
let stormCPU = cpuSeconds() - cpu, stormWall = wallSeconds() - wall
queue.stop()
let perExec = stormCPU / Double(stormCount)
print(
    String(
        format: "execve storm of /bin/true: %d targets in %.3f s, %.2f µs CPU per execve (queue + stat + cache), %.3f%% of a core at 1,000 execve/s",
        stormCount, stormWall, perExec * 1e6, perExec * 1000 * 100))
