// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "xferwatch",
    products: [
        .executable(name: "xferwatchd", targets: ["xferwatchd"]),
        .executable(name: "agentctl", targets: ["agentctl"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        // libaudit, wrapped once in Swift by KernelAudit.
        .systemLibrary(name: "CAudit", pkgConfig: "audit", providers: [.apt(["libaudit-dev"])]),
        // Linux interfaces Glibc's Swift module hides (signalfd, recvmmsg).
        .systemLibrary(name: "CLinux"),
        // PCRE2 (8-bit), wrapped once in Swift by Patterns.
        .systemLibrary(name: "CPCRE2", pkgConfig: "libpcre2-8", providers: [.apt(["libpcre2-dev"])]),
        // libyara, wrapped once in Swift by Scanning.
        .systemLibrary(name: "CYara", pkgConfig: "yara", providers: [.apt(["libyara-dev"])]),
        // OpenSSL: libcrypto for the SHA-256 of matched files, libssl for syslog over TLS.
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        // libpcap, wrapped once in Swift by PacketCapture.
        .systemLibrary(name: "CPcap", pkgConfig: "libpcap", providers: [.apt(["libpcap-dev"])]),
        // libcap, wrapped once in Swift by Privileges.
        .systemLibrary(name: "CCap", pkgConfig: "libcap", providers: [.apt(["libcap-dev"])]),
        // Threads, clocks, the version and stderr lines, shared by the modules and tools that need them.
        .target(name: "Runtime"),
        // The kernel's struct tcp_info byte counters, read in C (see its header for why).
        .target(name: "CTCPInfo"),
        // Record parsing and event assembly: pure Swift, works on bytes.
        .target(name: "AuditIngest"),
        // Talking to the kernel: netlink sockets, audit rules, status.
        .target(name: "KernelAudit", dependencies: ["CAudit", "CLinux", "AuditIngest"]),
        // SHA-256 of a file by libcrypto, wrapped once: YARA findings and program identity.
        .target(name: "Hashing", dependencies: ["COpenSSL"]),
        // Host state: processes (execve + /proc) and sockets (sock_diag, /proc/net).
        .target(name: "HostState", dependencies: ["AuditIngest", "CLinux", "CTCPInfo", "Hashing", "Runtime"]),
        // What a packet's first bytes say: decoding captured headers, FTP/SSH/SMB/TFTP/TLS/HTTP
        // by content. Pure Swift on bytes (fuzzed).
        .target(name: "Inspection", dependencies: ["Runtime"]),
        // The packet tap: an AF_PACKET capture with a classic-BPF filter, through libpcap.
        .target(name: "PacketCapture", dependencies: ["CPcap"]),
        // Flows: socket syscalls + host state -> attributed, classified transfer flows.
        .target(name: "Flows", dependencies: ["AuditIngest", "HostState", "ByteJSON", "Inspection", "Runtime"]),
        // Regular expressions: PCRE2 compiled once with JIT, matched on bytes.
        .target(name: "Patterns", dependencies: ["CPCRE2"]),
        // YARA scanning: rule files compiled once, a file cache by identity, a worker thread.
        .target(name: "Scanning", dependencies: ["CYara", "Hashing", "Runtime"]),
        // agent.conf: typed configuration and its validation.
        .target(name: "AgentConfig", dependencies: ["Patterns", "Runtime"]),
        // Detection: processes and flows -> rules, exclusions -> alerts.
        .target(name: "Detection", dependencies: ["AuditIngest", "HostState", "Flows", "AgentConfig", "Patterns", "Scanning", "ByteJSON", "Runtime"]),
        // A small JSON writer on bytes, shared by every output.
        .target(name: "ByteJSON"),
        // Outputs: syslog messages (RFC 5424/3164), the durable spool and its forwarding thread
        // (unix, udp, tcp, tls), the alert file with rotation.
        .target(name: "Outputs", dependencies: ["AgentConfig", "ByteJSON", "COpenSSL", "Runtime"]),
        // Least privilege: the switch to the agent's user keeping only the capabilities it needs.
        .target(name: "Privileges", dependencies: ["CCap"]),
        // The control protocol agentctl and xferwatchd share: requests, responses, the status
        // document, the socket address.
        .target(name: "Control"),
        // The pipeline: sources -> assembly -> consumers, the run/replay drivers, the control server.
        .target(name: "Agent", dependencies: ["AuditIngest", "KernelAudit", "HostState", "Flows", "Detection", "Scanning", "AgentConfig", "ByteJSON",
                                              "CLinux", "Control", "Inspection", "Outputs", "PacketCapture", "Privileges", "Runtime",
            ]),
        .executableTarget(name: "xferwatchd", dependencies: [
            "Agent", "AgentConfig", "CLinux", "Inspection", "KernelAudit", "Runtime", "Scanning",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // agentctl: asks the running agent for its status, alerts, flows; reloads it.
        .executableTarget(name: "agentctl", dependencies: [
            "Control", "Runtime",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // bench/flows: socket lookup by /proc/net scan and by sock_diag, on the host's real load.
        .executableTarget(name: "SocketLookupBench", dependencies: ["HostState"], path: "bench/SocketLookupBench"),
        // bench/detection: rule cost per execve and per flow, beside Swift Regex.
        .executableTarget(name: "DetectionBench", dependencies: ["AgentConfig", "AuditIngest", "Detection", "Flows", "HostState", "KernelAudit", "Runtime"],
                          path: "bench/DetectionBench"),
        // bench/yara: scans per second and the cost an execve storm adds once scans are cached.
        .executableTarget(name: "YaraBench", dependencies: ["Scanning"], path: "bench/YaraBench"),
        // bench/hashes: process.hash per new binary and per binary already hashed, beside coreutils.
        .executableTarget(name: "HashBench", dependencies: ["Hashing", "HostState"], path: "bench/HashBench"),
        // bench/syslog: alerts per second through the spool to a TCP receiver, and to the alert file.
        .executableTarget(name: "SyslogBench", dependencies: ["AgentConfig", "Outputs", "Runtime"], path: "bench/SyslogBench"),
        // What the test targets share: the repository's paths, child processes, temporary directories.
        .target(name: "TestSupport", dependencies: ["CLinux", "Control"], path: "Tests/TestSupport"),
        // Unit tests on recorded data and the modules themselves: no root, no kernel audit (make check).
        .testTarget(name: "UnitTests", dependencies: ["AuditIngest", "AgentConfig", "Agent", "ByteJSON", "KernelAudit", "HostState", "Flows", "Detection", "Patterns", "Scanning", "Outputs", "Runtime", "Control", "Privileges", "Inspection", "PacketCapture", "CTCPInfo", "TestSupport"]),
        // End-to-end tests: the built agent and agentctl as processes against the real kernel, real
        // servers and packages, as root. They import no module of the agent: a change to one
        // rebuilds the binaries they run, not them.
        .testTarget(name: "EndToEndTests", dependencies: ["TestSupport"]),
    ]
)
