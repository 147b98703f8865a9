import Foundation
import TestSupport
import Testing

/// Containers, end to end, with the agent as the package runs it (dropped to _xferwatch, no
/// CAP_SYS_ADMIN: its namespace helper opens sock_diag sockets in other namespaces): clients in
/// a network namespace of their own and in cgroups named as Docker and Kubernetes name theirs.
extension KernelAuditTests.FlowEndToEnd {
    /// A cgroup v2 directory named like a runtime's; the directories it made are removed when
    /// the test ends (their processes have exited by then).
    final class RuntimeCgroup {
        static let root = "/sys/fs/cgroup/unified"
        let path: String
        private var made: [String] = []

        init(_ relative: String) throws {
            try #require(FileManager.default.fileExists(atPath: Self.root + "/cgroup.procs"), "no cgroup v2 hierarchy at \(Self.root)")
            var current = Self.root
            for component in relative.split(separator: "/") {
                current += "/" + component
                if mkdir(current, 0o755) == 0 { made.append(current) }
            }
            path = current
        }

        /// A shell line that moves itself into the cgroup, then runs `command`.
        func run(_ command: String) -> String { "echo $$ > \(path)/cgroup.procs && exec \(command)" }

        deinit { for directory in made.reversed() { rmdir(directory) } }
    }

    static let dockerID = "3f4e8a2b1c9d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f"

    @Test func clientsInTheirOwnNetworkNamespaceAndCgroupGetExactBytesAndTheirContainer() throws {
        let file = try randomFile("container.bin", bytes: 3 * 1024 * 1024)
        let docker = try RuntimeCgroup("system.slice/docker-\(Self.dockerID).scope")
        let agent = try startAgent()
        // curl and scp in the xwcli namespace (198.51.100.2, routed to the lab), in the Docker scope.
        // Into the cgroup first: `ip netns exec` mounts a sysfs of the namespace's own.
        let curl = try client("/bin/sh", ["-c", docker.run("ip netns exec xwcli curl -s -T \(file) ftp://203.0.113.10/upload/container.bin")])
        // The flow (and its alerts) as soon as the kernel destroys the socket, not after the
        // unresolved wait (5 s).
        let curlDone = Date()
        while Date().timeIntervalSince(curlDone) < 10, !agent.stdout.contains("\"pid\":\(curl),") { usleep(20_000) }
        let latency = Date().timeIntervalSince(curlDone)
        #expect(latency < 2.5, "the contained curl's flow came \(latency) s after it exited")
        let scp = try client(
            "/bin/sh",
            ["-c", docker.run("ip netns exec xwcli scp \(sshOptions.joined(separator: " ")) \(file) root@203.0.113.10:\(lab)/sshroot/container.bin")])
        let flows = try stop(agent, expecting: 2).map { AlertView($0) }
        let alerts = try readAlerts()

        let ftp = try #require(flows.first { $0.pid == Int(curl) }, "no flow for the contained curl: \(flows.map(\.json))")
        #expect(ftp.json["xferwatch.bytes_exact"] as? Bool == true && ftp.json["xferwatch.state"] as? String == "closed", "\(ftp.json)")
        let data = try #require((ftp.json["xferwatch.data_connections"] as? [[String: Any]])?.first)
        #expect((data["source"] as? [String: Any])?["bytes"] as? Int == 3 * 1024 * 1024, "the kernel's count of the data connection: \(data)")
        #expect(ftp.json["container.id"] as? String == Self.dockerID && ftp.json["container.runtime"] as? String == "docker")
        #expect(ftp.json["source.ip"] as? String == "198.51.100.2")

        let ssh = try #require(flows.first { $0.parentPid == Int(scp) }, "no flow for the contained scp")
        #expect(ssh.json["network.protocol"] as? String == "scp" && ssh.json["xferwatch.bytes_exact"] as? Bool == true)
        #expect((ssh.json["source.bytes"] as? Int ?? 0) > 3 * 1024 * 1024, "scp's bytes with SSH's framing")
        #expect(ssh.json["container.id"] as? String == Self.dockerID)

        let noninteractive = try #require(alerts.first { $0.rule == "an1170.noninteractive_transfer" && $0.pid == Int(curl) })
        #expect(noninteractive.json["container.id"] as? String == Self.dockerID && noninteractive.json["container.runtime"] as? String == "docker")
        for document in flows + alerts {
            #expect(ECSReference.violations(document.json).isEmpty, "\(ECSReference.violations(document.json))")
        }
        #expect(!agent.stderr.contains("setns: Operation not permitted"), "\(agent.stderr.suffix(1500))")
        #expect(agent.stderr.contains("namespace helper: pid"))
    }

    @Test func aKubernetesPodsClientCarriesItsPodAndAServerOnThisHostIsNamed() throws {
        let uid = "6f1e3a2b-4c5d-4e6f-8a9b-0c1d2e3f4a5b"
        let id = String(Self.dockerID.reversed())
        let pod = try RuntimeCgroup(
            "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod\(uid.replacingOccurrences(of: "-", with: "_")).slice/cri-containerd-\(id).scope")
        let file = try randomFile("pod.bin", bytes: 100_000)
        let agent = try startAgent()
        let curl = try client("/bin/sh", ["-c", pod.run("curl -s -T \(file) ftp://203.0.113.10/upload/pod.bin")])
        let flows = try stop(agent, expecting: 1).map { AlertView($0) }
        let flow = try #require(flows.first { $0.pid == Int(curl) }, "\(flows.map(\.json))")
        #expect(flow.json["container.id"] as? String == id && flow.json["container.runtime"] as? String == "containerd")
        #expect(flow.json["orchestrator.type"] as? String == "kubernetes" && flow.json["orchestrator.resource.id"] as? String == uid)
        #expect(flow.json["orchestrator.resource.type"] as? String == "pod")
        #expect(ECSReference.violations(flow.json).isEmpty, "\(ECSReference.violations(flow.json))")
        // vsftpd accepted it in the lab's namespace: the destination is on this host.
        #expect(flow.json["xferwatch.destination_process.executable"] as? String == "/usr/sbin/vsftpd", "\(flow.json)")
        #expect(flow.json["xferwatch.destination_process.other_network_namespace"] as? Bool == true)
    }

    /// A hundred short-lived network namespaces, each with a client, while a transfer runs in
    /// another: their sock_diag sockets are opened through the helper and closed once idle;
    /// descriptors come back to where they were, memory stays put, the transfer keeps its
    /// exact bytes.
    @Test func aHundredShortLivedNamespacesCostNothingOnceGone() throws {
        let agent = try startAgent(flows: "namespace_idle_ms = 1000\n")
        func descriptors() -> Int { (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(agent.pid)/fd").count) ?? -1 }
        func rss() -> Int {
            let status = (try? String(contentsOfFile: "/proc/\(agent.pid)/status", encoding: .utf8)) ?? ""
            return Int(status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") }?.split(separator: " ").dropFirst().first ?? "0") ?? 0
        }
        let (fdsBefore, rssBefore) = (descriptors(), rss())
        // A transfer runs all along (about 6 s at 500 KB/s) in the lab's client namespace.
        let file = try randomFile("churn.bin", bytes: 3_000_000)
        let slow = try Child(
            "/usr/sbin/ip", ["netns", "exec", "xwcli", "/usr/bin/curl", "-s", "--limit-rate", "500K", "-T", file, "ftp://203.0.113.10/upload/churn.bin"],
            stdin: FileHandle(forReadingAtPath: "/dev/null"))
        var peak = 0
        for round in 0..<100 {
            // curl is a transfer client: its namespace is opened at execve; nothing routes out.
            _ = try runCommand("/usr/bin/unshare", ["-n", "/usr/bin/curl", "-s", "--max-time", "1", "ftp://203.0.113.10/"], seconds: 10)
            if round % 10 == 9 { peak = max(peak, descriptors()) }
        }
        slow.waitUntilExit()
        let status = try self.status()
        let watched = (status.json["host"] as? [String: Any])?["network_namespaces"] as? Int ?? -1
        // Idle 1 s, then the next prune round (2 s) closes them.
        var fdsAfter = descriptors()
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline, fdsAfter > fdsBefore + 2 {
            usleep(200_000)
            fdsAfter = descriptors()
        }
        let rssAfter = rss()
        let flows = try stop(agent, expecting: 1).map { AlertView($0) }
        let transfer = try #require(flows.first { $0.pid == Int(slow.pid) }, "\(flows.map(\.json))")
        let data = (transfer.json["xferwatch.data_connections"] as? [[String: Any]])?.first?["source"] as? [String: Any]
        #expect(data?["bytes"] as? Int == 3_000_000 && transfer.json["xferwatch.bytes_exact"] as? Bool == true, "\(transfer.json)")
        #expect(peak > fdsBefore + 10, "namespaces were opened: \(fdsBefore) -> peak \(peak) descriptors (watched at the end: \(watched))")
        #expect(fdsAfter <= fdsBefore + 2, "descriptors back to the baseline: \(fdsBefore) before, \(peak) at peak, \(fdsAfter) after")
        // Under AddressSanitizer freed memory waits in its quarantine (256 MB): RSS says nothing there.
        #expect(Repo.sanitized || rssAfter < rssBefore + 8 * 1024, "RSS \(rssBefore) KiB before, \(rssAfter) KiB after")
        print("100 namespaces: descriptors \(fdsBefore) before, \(peak) at peak, \(fdsAfter) after; RSS \(rssBefore) -> \(rssAfter) KiB")
    }

    /// A real container: podman with runc, its image imported from a rootfs made here (busybox
    /// and the libraries it links: no registry), in the client namespace, uploading with
    /// busybox's ftpput. The flow names the process in it, its container (podman's id) and the
    /// exact data bytes; the container, its image and its cgroups are gone after the test.
    @Test func aPodmanContainersUpload() throws {
        try #require(FileManager.default.isExecutableFile(atPath: "/usr/bin/podman"), "podman is missing: run make test")
        try #require(FileManager.default.isExecutableFile(atPath: "/usr/sbin/runc"), "runc is missing: run make test")
        let rootfs = work + "/rootfs"
        for directory in ["bin", "lib/x86_64-linux-gnu", "lib64", "data", "tmp"] {
            try FileManager.default.createDirectory(atPath: rootfs + "/" + directory, withIntermediateDirectories: true)
        }
        for file in [
            "/usr/bin/busybox:bin/busybox", "/lib/x86_64-linux-gnu/libc.so.6:lib/x86_64-linux-gnu/libc.so.6",
            "/lib/x86_64-linux-gnu/libresolv.so.2:lib/x86_64-linux-gnu/libresolv.so.2", "/lib64/ld-linux-x86-64.so.2:lib64/ld-linux-x86-64.so.2",
        ] {
            let parts = file.split(separator: ":").map(String.init)
            // The files themselves, not the host's links to them.
            let copied = try runCommand("/bin/cp", ["-L", parts[0], rootfs + "/" + parts[1]])
            try #require(copied.status == 0, "\(copied.stderr)")
        }
        let tar = try runCommand("/usr/bin/tar", ["-C", rootfs, "-cf", work + "/rootfs.tar", "."])
        try #require(tar.status == 0, "\(tar.stderr)")
        // podman (cgroupfs manager) makes libpod_parent in every hierarchy: gone afterwards
        // when it was not there before.
        let hierarchies = (try? FileManager.default.contentsOfDirectory(atPath: "/sys/fs/cgroup")) ?? []
        let madeByPodman = hierarchies.map { "/sys/fs/cgroup/\($0)/libpod_parent" }.filter { !FileManager.default.fileExists(atPath: $0) }
        defer {
            for parent in madeByPodman where FileManager.default.fileExists(atPath: parent) {
                _ = try? runCommand("/bin/sh", ["-c", "find \(parent) -mindepth 1 -type d | sort -r | xargs -r rmdir; rmdir \(parent)"])
            }
        }
        let image = "localhost/xferwatch-test-\(getpid())"
        let imported = try runCommand("/usr/bin/podman", ["import", work + "/rootfs.tar", image])
        try #require(imported.status == 0, "podman import: \(imported.stderr)")
        defer { _ = try? runCommand("/usr/bin/podman", ["rmi", "-f", image]) }
        let file = try randomFile("pod.bin", bytes: 400_000)
        let name = "xferwatch-test-\(getpid())"
        defer { _ = try? runCommand("/usr/bin/podman", ["rm", "-f", name]) }
        let agent = try startAgent()
        // crun refuses this hybrid cgroup host; podman's default file limit exceeds the hard one.
        let run = try runCommand(
            "/usr/bin/podman",
            [
                "run", "--rm", "--name", name, "--runtime", "runc", "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=1000:1000",
                "--network", "ns:/run/netns/xwcli", "-v", "\(file):/data/pod.bin:ro", image,
                "/bin/busybox", "ftpput", "-u", "anonymous", "-p", "x", "203.0.113.10", "upload/pod.bin", "/data/pod.bin",
            ], seconds: 60)
        try #require(run.status == 0, "podman run: \(run.stderr)")
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline, !agent.stdout.contains("\"runtime\":\"podman\"") { usleep(50_000) }
        // agentctl names the container as podman does.
        let listed = try runCommand(Repo.agentctlRelease, ["flows", "--socket", controlSocket])
        #expect(listed.stdout.contains("podman \(name)"), "\(listed.stdout)")
        let flows = try stop(agent, expecting: 1).map(FlowView.init)
        let f = try #require(flows.first { $0.json["container"] != nil }, "no flow in a container: \(flows.map(\.json))")
        let container = f.json["container"] as? [String: Any]
        #expect(container?["runtime"] as? String == "podman")
        let id = container?["id"] as? String ?? ""
        #expect(id.count == 64 && id.allSatisfy(\.isHexDigit), "\(id)")
        #expect(f.executable == "/bin/busybox" && f.networkProtocol == "ftp" && f.transferDirection == "upload")
        #expect(f.dataConnections.count == 1 && f.data(0, "source") == 400_000)
        #expect(container?["name"] as? String == name, "the flow names the container: \(container ?? [:])")
        let alerts = try readAlerts()
        let alert = try #require(
            alerts.first { $0.rule == "an1170.noninteractive_transfer" && $0.json["container.id"] as? String == id }, "\(alerts.map(\.rule))")
        // What an analyst pivots on, read from podman's own state and the running binary.
        #expect(alert.json["container.name"] as? String == name && alert.json["container.runtime"] as? String == "podman")
        #expect(alert.json["container.image.name"] as? String == image && alert.json["container.image.tag"] as? [String] == ["latest"], "\(alert.json)")
        func digest(_ tool: String) throws -> String {
            String(try runCommand("/usr/bin/" + tool, [rootfs + "/bin/busybox"]).stdout.prefix { $0 != " " })
        }
        let sha256 = try digest("sha256sum")
        #expect(alert.json["process.hash.sha256"] as? String == sha256, "the container's busybox, through /proc/<pid>/exe")
        let (md5, sha1) = (try digest("md5sum"), try digest("sha1sum"))
        #expect(alert.json["process.hash.md5"] as? String == md5 && alert.json["process.hash.sha1"] as? String == sha1)
        #expect((alert.json["related.hash"] as? [String])?.contains(sha256) == true)
        // The host and the agent, as a fleet's SIEM tells senders apart.
        let machineID = try String(contentsOfFile: "/etc/machine-id", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let agentID = try String(contentsOfFile: work + "/state/agent-id", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(alert.json["host.id"] as? String == machineID && alert.json["agent.id"] as? String == agentID, "\(alert.json)")
        #expect(alert.json["agent.type"] as? String == "xferwatch" && alert.json["host.os.type"] as? String == "linux")
        #expect(ECSReference.violations(alert.json).isEmpty, "\(ECSReference.violations(alert.json))")
    }
}
