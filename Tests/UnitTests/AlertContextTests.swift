import AgentConfig
import ByteJSON
import Foundation
import TestSupport
import Testing

@testable import Agent
@testable import Detection
@testable import Hashing
@testable import HostState
@testable import Runtime

/// What an analyst needs in the SIEM without going back to the host: the binary's hashes, the
/// host and agent, the container's name and image, the pod, and fields to pivot on.
@Suite struct AlertContextTests {
    static let origin = AlertOrigin(
        host: {
            var host = HostFacts(hostname: "web1.example.com")
            host.id = "5f1c0d7e9a2b4c3d8e6f1a2b3c4d5e6f"
            host.architecture = "x86_64"
            host.os = HostFacts.OperatingSystem(
                platform: "debian", family: "debian", name: "Debian GNU/Linux", version: "12 (bookworm)", full: "Debian GNU/Linux 12 (bookworm)",
                kernel: "6.1.0-28-amd64")
            host.addresses = ["192.0.2.7", "2001:db8::7"]
            return host
        }(), agent: .init(id: "3b7e0a52-8d1f-4c6e-9a0b-2f4d6c8e1a3b", version: "0.1.0", ephemeralID: "mbx1k2"))

    /// The recorded curl upload's alerts, its process and parent hashed and in a Kubernetes pod.
    static func enrichedAlert() throws -> Alert {
        let alerts = try replayFixture("detection/detection.log").alerts.filter { $0.process?.pid == 4616 && $0.flow != nil }
        let alert = try #require(alerts.first, "the curl upload raises an alert")
        let process = try #require(alert.process)
        process.executableDigests = FileDigests(
            md5: String(repeating: "1", count: 32), sha1: String(repeating: "2", count: 40), sha256: String(repeating: "3", count: 64))
        process.parent?.executableDigests = FileDigests(
            md5: String(repeating: "a", count: 32), sha1: String(repeating: "b", count: 40), sha256: String(repeating: "c", count: 64))
        var container = ContainerIdentity(id: String(repeating: "9a", count: 32), runtime: "containerd", podUID: "5c6b5c6b-0000-4000-8000-5c6b5c6b0000")
        container.details = ContainerDetails(name: "mirror", image: "docker.io/library/alpine:3.20", podName: "mirror-5c6b", podNamespace: "batch")
        process.container = container
        return alert
    }

    /// Every new field, by ECS's name and type, as a golden file (rewritten with
    /// XFERWATCH_UPDATE_GOLDEN=1, like the replay goldens).
    @Test func anAlertCarriesWhatASOCPivotsOn() throws {
        var json = JSONWriter()
        AlertJSON.write(try Self.enrichedAlert(), origin: Self.origin, users: UserNames(), to: &json)
        json.newline()
        let golden = Repo.fixture("golden/context.alert.json")
        if GoldenReplayTests.updating { try Data(json.bytes).write(to: URL(fileURLWithPath: golden)) }
        let expected = try String(contentsOfFile: golden, encoding: .utf8)
        #expect(String(decoding: json.bytes, as: UTF8.self) == expected, "differs from \(golden)")
        let flat = AlertView(try #require(try JSONSerialization.jsonObject(with: Data(json.bytes)) as? [String: Any])).json
        #expect(ECSReference.violations(flat).isEmpty, "\(ECSReference.violations(flat))")
        let wanted: [String: Any] = [
            "process.hash.sha256": String(repeating: "3", count: 64), "process.parent.hash.md5": String(repeating: "a", count: 32),
            "host.id": "5f1c0d7e9a2b4c3d8e6f1a2b3c4d5e6f", "host.name": "web1.example.com", "host.os.kernel": "6.1.0-28-amd64",
            "agent.id": "3b7e0a52-8d1f-4c6e-9a0b-2f4d6c8e1a3b", "agent.type": "xferwatch", "container.name": "mirror",
            "container.image.name": "docker.io/library/alpine", "orchestrator.namespace": "batch", "orchestrator.resource.name": "mirror-5c6b",
        ]
        for (field, value) in wanted { #expect(flat[field] as? String == value as? String, "\(field): \(flat[field] ?? "absent")") }
        #expect(flat["container.image.tag"] as? [String] == ["3.20"] && flat["host.ip"] as? [String] == ["192.0.2.7", "2001:db8::7"])
        let related = try #require(flat["related.hash"] as? [String])
        #expect(related.count == 6 && related.contains(String(repeating: "c", count: 64)), "\(related)")
        #expect((flat["related.ip"] as? [String])?.contains("203.0.113.10") == true, "\(flat["related.ip"] ?? "absent")")
        #expect(flat["related.user"] as? [String] != nil)
    }

    /// The three digests of one pass, against their published test vectors ("abc").
    @Test func digestsAreThoseOfTheWholeFile() throws {
        let directory = try makeTemporaryDirectory("digests")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try Data("abc".utf8).write(to: URL(fileURLWithPath: directory + "/abc"))
        let fd = open(directory + "/abc", O_RDONLY)
        defer { close(fd) }
        let digests = try #require(FileDigests.of(fd: fd))
        #expect(digests.md5 == "900150983cd24fb0d6963f7d28e17f72")
        #expect(digests.sha1 == "a9993e364706816aba3e25717850c26c9cd0d89d")
        #expect(digests.sha256 == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256.hex(fd: fd) == digests.sha256)
    }

    /// A file of several read blocks, against coreutils' digests of it.
    @Test func digestsOfALargerFileAreCoreutils() throws {
        let directory = try makeTemporaryDirectory("digests")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/blocks"
        try Data((0..<200_003).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 9) }).write(to: URL(fileURLWithPath: path))
        let fd = open(path, O_RDONLY)
        defer { close(fd) }
        let digests = try #require(FileDigests.of(fd: fd))
        func coreutils(_ tool: String) throws -> String {
            let done = try runCommand("/usr/bin/" + tool, [path])
            return String(done.stdout.prefix { $0 != " " })
        }
        #expect(digests.md5 == (try coreutils("md5sum")))
        #expect(digests.sha1 == (try coreutils("sha1sum")))
        #expect(digests.sha256 == (try coreutils("sha256sum")))
        #expect(SHA256.hex(fd: fd) == digests.sha256)
    }

    /// The running image through /proc/<pid>/exe, on the thread, once; the next process of the
    /// same file is answered from what was hashed. A gone process whose path now holds another
    /// file gets no hash rather than the other file's.
    @Test func aBinaryIsHashedOnceOffTheLoop() throws {
        let procfs = ProcFS()
        let hashes = try #require(ExecutableHashes.start(procfs: procfs))
        defer { hashes.stop() }
        let ownExecutable = String(decoding: try #require(procfs.readLink(pid: getpid(), "exe")), as: UTF8.self)
        func running() -> ProcessRecord {
            ProcessRecord(
                pid: getpid(), ppid: getppid(), startTicks: procfs.stat(pid: getpid())?.startTicks, startTime: 0, executable: ownExecutable,
                arguments: [], workingDirectory: nil, uid: 0, euid: 0, suid: 0, gid: 0, egid: 0, sgid: 0, auid: nil, sessionID: nil, terminalSession: nil,
                tty: nil, stdin: .unknown, networkNamespace: nil, source: .proc)
        }
        let first = running()
        let version = try #require(hashes.request(first), "a new binary is queued")
        hashes.submit()
        let deadline = monotonicMilliseconds() + 60_000
        while !hashes.isSettled(version) && monotonicMilliseconds() < deadline {
            var fds = [pollfd(fd: hashes.descriptor, events: Int16(POLLIN), revents: 0)]
            _ = poll(&fds, 1, 100)
            hashes.collect()
        }
        #expect(hashes.complete(first))
        let fd = open(ownExecutable, O_RDONLY)
        defer { close(fd) }
        #expect(first.executableDigests == FileDigests.of(fd: fd))
        let second = running()
        #expect(hashes.request(second) == nil && second.executableDigests == first.executableDigests)
        #expect(hashes.counters.hashed == 1 && hashes.counters.cacheHits == 1, "\(hashes.counters)")

        let gone = ProcessRecord(
            pid: 999_999, ppid: 1, startTicks: 1, startTime: 0, executable: ownExecutable, arguments: [], workingDirectory: nil, uid: 0, euid: 0,
            suid: 0, gid: 0, egid: 0, sgid: 0, auid: nil, sessionID: nil, terminalSession: nil, tty: nil, stdin: .unknown, networkNamespace: nil,
            source: .execve)
        gone.exited = true
        var other = stat()
        other.st_dev = 1
        other.st_ino = 2
        gone.executableFile = FileVersion(other)
        #expect(hashes.request(gone) == nil && gone.executableDigests == nil && hashes.counters.unavailable == 1)
    }

    /// An alert whose binary is new waits for its hashes; the alert raised after it, whose
    /// binary needs none, waits behind it: alerts leave in the order they were raised.
    @Test func alertsWaitForTheirHashesInOrder() throws {
        let procfs = ProcFS()
        let hashes = try #require(ExecutableHashes.start(procfs: procfs))
        final class Delivered: AlertSink {
            var alerts: [Alert] = []
            func consume(_ alert: Alert) { alerts.append(alert) }
        }
        let delivered = Delivered()
        let digests = AlertDigests(hashes: hashes, next: delivered)
        let running = ProcessRecord(
            pid: getpid(), ppid: getppid(), startTicks: procfs.stat(pid: getpid())?.startTicks, startTime: 0,
            executable: String(decoding: try #require(procfs.readLink(pid: getpid(), "exe")), as: UTF8.self), arguments: [], workingDirectory: nil,
            uid: 0, euid: 0, suid: 0, gid: 0, egid: 0, sgid: 0, auid: nil, sessionID: nil, terminalSession: nil, tty: nil, stdin: .unknown,
            networkNamespace: nil, source: .proc)
        let first = Alert(id: "a-1", rule: .commandLine, time: 0, reasons: [], process: running, interactivity: nil, flow: nil)
        let second = Alert(id: "a-2", rule: .agentHealth, time: 0, reasons: [], process: nil, interactivity: nil, flow: nil)
        digests.consume(first)
        digests.consume(second)
        #expect(delivered.alerts.isEmpty, "the first waits for its hash, the second behind it")
        let deadline = monotonicMilliseconds() + 60_000
        while delivered.alerts.count < 2 && monotonicMilliseconds() < deadline {
            var fds = [pollfd(fd: hashes.descriptor, events: Int16(POLLIN), revents: 0)]
            _ = poll(&fds, 1, 100)
            _ = digests.service(fds[...], time: LoopTime(monotonic: monotonicMilliseconds(), realtime: 0))
        }
        #expect(delivered.alerts.map(\.id) == ["a-1", "a-2"] && running.executableDigests != nil && digests.timedOut == 0)
        digests.stop()
    }

    /// Each runtime's own state files, as they lie on a host (fixtures in
    /// Tests/Fixtures/containers): Docker, Podman (as root and rootless), CRI-O, containerd's CRI.
    @Test func containersAreNamedFromTheirRuntimesState() {
        let root = Repo.fixture("containers")
        var locations = ContainerCatalog.Locations()
        locations.dockerRoots = [root + "/docker"]
        locations.storageRoots = [root + "/storage"]
        locations.storageRunRoots = [root + "/storage-run"]
        locations.containerdTaskRoots = [root + "/containerd"]
        locations.homeOf = { $0 == 1000 ? root + "/home" : nil }
        locations.userRunRoot = { _ in root + "/none" }
        let catalog = ContainerCatalog(locations: locations)

        let docker = catalog.details(of: ContainerIdentity(id: "1f0e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0", runtime: "docker"), now: 0)
        #expect(docker == ContainerDetails(name: "nightly-backup", image: "registry.example.com:5000/tools/uploader:2.4"))
        #expect(docker?.imageName == "registry.example.com:5000/tools/uploader" && docker?.imageTag == "2.4")

        let podmanID = "46d21b965e6195d1f13d9f4ab500e1013185c07c01942889d6dee3fd9231b46f"
        #expect(
            catalog.details(of: ContainerIdentity(id: podmanID, runtime: "podman"), now: 0) == ContainerDetails(name: "xwprobe", image: "localhost/xwprobe:v1"))
        let rootless = catalog.details(of: ContainerIdentity(id: String(repeating: "5d", count: 32), runtime: "podman", ownerUID: 1000), now: 0)
        #expect(rootless == ContainerDetails(name: "mine", image: "localhost/mine:latest"))

        let crio = catalog.details(of: ContainerIdentity(id: String(repeating: "0c0c0c0c1d1d1d1d2e2e2e2e3f3f3f3f", count: 2), runtime: "cri-o"), now: 0)
        #expect(crio?.name == "sync" && crio?.podName == "files-7d9f" && crio?.podNamespace == "prod", "\(String(describing: crio))")
        #expect(crio?.imageName == "quay.io/example/sync" && crio?.imageTag == nil)

        let cri = catalog.details(of: ContainerIdentity(id: String(repeating: "9a8b7c6d5e4f30211203f4e5d6c7b8a9", count: 2), runtime: "kubernetes"), now: 0)
        #expect(cri == ContainerDetails(name: "mirror", image: "docker.io/library/alpine:3.20", podName: "mirror-5c6b", podNamespace: "batch"))

        // Not found: asked again only after a while; hostile or broken files are not found.
        let unknown = ContainerIdentity(id: String(repeating: "ee", count: 32), runtime: "docker")
        #expect(catalog.details(of: unknown, now: 0) == nil && catalog.details(of: unknown, now: 1000) == nil)
        #expect(catalog.counters.notFound == 1 && catalog.counters.described == 5, "\(catalog.counters)")
    }

    /// A rootless container's cgroup names its user's systemd.
    @Test func aRootlessContainerIsTiedToItsUser() {
        let id = String(repeating: "5d", count: 32)
        let cgroup = "0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-\(id).scope/container\n"
        #expect(ContainerIdentity.parse(cgroup: cgroup) == ContainerIdentity(id: id, runtime: "podman", ownerUID: 1000))
    }

    @Test func hostFactsComeFromOSReleaseAndMachineID() {
        let os = HostFacts.operatingSystem(
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nID=debian\n# c\nbogus\n")
        #expect(os.platform == "debian" && os.family == "debian" && os.version == "12 (bookworm)" && os.full == "Debian GNU/Linux 12 (bookworm)")
        #expect(HostFacts.operatingSystem("ID=ubuntu\nID_LIKE=debian\nVERSION_ID='22.04'\n").family == "debian")
        #expect(HostFacts.operatingSystem("ID=rocky\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=9.3\n").family == "rhel")
        #expect(HostFacts.machineID("5f1c0d7e9a2b4c3d8e6f1a2b3c4d5e6f\n") == "5f1c0d7e9a2b4c3d8e6f1a2b3c4d5e6f")
        #expect(HostFacts.machineID("uninitialized\n") == nil && HostFacts.machineID("") == nil)
        let here = HostFacts.read()
        #expect(here.hostname?.isEmpty == false && here.architecture?.isEmpty == false && here.os?.kernel?.isEmpty == false)
        #expect(!here.addresses.contains("127.0.0.1") && !here.addresses.contains("::1"))
    }

    /// Made once, kept across starts; a state directory that cannot keep it is said so.
    @Test func theAgentIDIsKeptAcrossStarts() throws {
        let directory = try makeTemporaryDirectory("agent-id")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let first = AgentID.load(stateDirectory: directory)
        #expect(first.problem == nil && AgentID.valid(first.id) == first.id)
        #expect(Array(first.id)[14] == "4", "a version 4 UUID: \(first.id)")
        #expect(AgentID.load(stateDirectory: directory).id == first.id)
        #expect(AgentID.random() != AgentID.random())
        let missing = AgentID.load(stateDirectory: directory + "/absent")
        #expect(missing.problem != nil && AgentID.valid(missing.id) != nil)
    }
}
