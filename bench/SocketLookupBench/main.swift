// Cost of finding one socket by inode on the current host: a /proc/net scan against
// sock_diag dumps (all sockets, and filtered in the kernel by remote port as the agent does).
// With a PID, also through a copy of one of that process's socket descriptors (pidfd_getfd).
//   SocketLookupBench ITERATIONS [PID]
// Prints one line per method: microseconds per lookup and sockets seen per lookup.
import HostState

#if canImport(Glibc)
    import Glibc
#endif

func cpuMicroseconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1e6 + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec)
}

let arguments = CommandLine.arguments
let iterations = arguments.count > 1 ? Int(arguments[1]) ?? 200 : 200
let owner = arguments.count > 2 ? Int32(arguments[2]) : nil
let procfs = ProcFS()
let diag = try SockDiag()
let everything = try diag.dump(family: UInt8(AF_INET), transport: .tcp) + diag.dump(family: UInt8(AF_INET6), transport: .tcp)
// The socket to look for: like an FTP control connection, the only one to its remote port.
var perPort: [UInt16: Int] = [:]
for socket in everything { perPort[socket.remotePort, default: 0] += 1 }
guard let target = everything.last(where: { $0.inode != 0 && perPort[$0.remotePort] == 1 }) else {
    print("no TCP sockets on this host")
    exit(1)
}
let wanted = target.inode

func measure(_ name: String, _ body: () throws -> Int) rethrows {
    var seen = 0
    var found = 0
    let start = cpuMicroseconds()
    for _ in 0..<iterations {
        let n = try body()
        if n >= 0 { found += 1; seen += n }
    }
    let perLookup = (cpuMicroseconds() - start) / Double(iterations)
    print("\(name): \(Double(Int(perLookup * 10)) / 10) us CPU per lookup, \(seen / max(found, 1)) sockets read per lookup, found \(found)/\(iterations)")
}

print("host: \(everything.count) TCP sockets, looking for inode \(wanted) (remote port \(target.remotePort))")
measure("/proc/net/tcp scan") {
    for (suffix, ipv6) in [("net/tcp", false), ("net/tcp6", true)] as [(StaticString, Bool)] {
        guard let text = procfs.read(pid: getpid(), suffix) else { continue }
        let sockets = ProcNetTable.parse(text, transport: .tcp, ipv6: ipv6)
        if sockets.contains(where: { $0.inode == wanted }) { return sockets.count }
    }
    return -1
}
try measure("sock_diag dump, all sockets") {
    let sockets = try diag.dump(family: target.family, transport: .tcp)
    return sockets.contains(where: { $0.inode == wanted }) ? sockets.count : -1
}
try measure("sock_diag dump filtered by remote port, only the match decoded (xferwatchd)") {
    let (socket, scanned) = try diag.find(inode: wanted, family: target.family, transport: .tcp, remotePort: target.remotePort)
    return socket == nil ? -1 : scanned
}
if let owner, let fd = procfs.fileDescriptors(pid: owner).last(where: { procfs.socketInode(pid: owner, fd: $0) != nil }),
    let inode = procfs.socketInode(pid: owner, fd: fd)
{
    measure("copy of pid \(owner)'s fd \(fd) (pidfd_getfd, xferwatchd's first choice)") {
        guard let found = procfs.socketInode(pid: owner, fd: fd), found == inode,
            HostSockets.inspect(pid: owner, fd: fd, inode: found) != nil
        else { return -1 }
        return 1
    }
}
