// bench/hashes: what process.hash costs. Hashes a file list once (MD5, SHA-1 and SHA-256 in one
// pass, as ExecutableHashes does for a binary it has not seen), then asks ExecutableHashes again
// and again for a process whose binary it knows (open /proc/<pid>/exe, fstat, lookup), with CPU
// time from getrusage. Usage: HashBench FILE_LIST [LOOKUPS]
import Foundation
import Hashing
import HostState

func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
}

let arguments = CommandLine.arguments
guard arguments.count >= 2, let list = try? String(contentsOfFile: arguments[1], encoding: .utf8) else {
    FileHandle.standardError.write(Data("usage: HashBench FILE_LIST [LOOKUPS]\n".utf8))
    exit(64)
}
let lookups = arguments.count > 2 ? Int(arguments[2]) ?? 100_000 : 100_000
let files = list.split(separator: "\n").map(String.init)

var bytes: Int64 = 0
var hashed = 0
var cpu = cpuSeconds()
for file in files {
    let fd = open(file, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { continue }
    var info = stat()
    if fstat(fd, &info) == 0, FileDigests.of(fd: fd) != nil {
        bytes += Int64(info.st_size)
        hashed += 1
    }
    close(fd)
}
let newCPU = cpuSeconds() - cpu
print(
    String(
        format: "xferwatch new files: %d files, %.1f MB, %.3f CPU-s: %.0f µs per file (mean), %.0f MB/CPU-s (MD5+SHA-1+SHA-256 in one pass)",
        hashed, Double(bytes) / 1e6, newCPU, newCPU / Double(max(hashed, 1)) * 1e6, Double(bytes) / 1e6 / newCPU))

let procfs = ProcFS()
guard let hashes = ExecutableHashes.start(procfs: procfs) else { exit(1) }
let executable = String(decoding: procfs.readLink(pid: getpid(), "exe") ?? [], as: UTF8.self)
@MainActor func ownProcess() -> ProcessRecord {
    ProcessRecord(
        pid: getpid(), ppid: getppid(), startTicks: procfs.stat(pid: getpid())?.startTicks, startTime: 0, executable: executable, arguments: [],
        workingDirectory: nil, uid: 0, euid: 0, suid: 0, gid: 0, egid: 0, sgid: 0, auid: nil, sessionID: nil, terminalSession: nil, tty: nil,
        stdin: .unknown, networkNamespace: nil, source: .proc)
}
if let version = hashes.request(ownProcess()) {
    hashes.submit()
    while !hashes.isSettled(version) {
        var fds = [pollfd(fd: hashes.descriptor, events: Int16(POLLIN), revents: 0)]
        _ = poll(&fds, 1, 100)
        hashes.collect()
    }
}
// Each request is a process not asked about before (as every new alert's is), made beforehand.
let processes = (0..<lookups).map { _ in ownProcess() }
cpu = cpuSeconds()
for process in processes { _ = hashes.request(process) }
let cachedCPU = cpuSeconds() - cpu
hashes.stop()
print(
    String(
        format: "xferwatch known binary: %d requests, %.3f CPU-s: %.2f µs each (%d cache hits)", lookups, cachedCPU,
        cachedCPU / Double(lookups) * 1e6, hashes.counters.cacheHits))
