/// The container a process runs in, from its cgroup path (`/proc/<pid>/cgroup`, v1 or v2): the
/// runtime's own naming tells Docker, containerd and CRI-O (Kubernetes or not), Podman, LXC
/// and systemd-nspawn apart. ECS `container.id`, `container.runtime`; for Kubernetes
/// `orchestrator.type` and the pod's uid.
public struct ContainerIdentity: Sendable, Equatable {
    public let id: String
    public let runtime: String
    /// The Kubernetes pod uid, when the cgroup is under `kubepods`.
    public let podUID: String?
    /// The user whose systemd instance runs it (`user@1000.service`): a rootless container.
    public var ownerUID: UInt32?
    /// Its name, image and pod, from the runtime's state files (`ContainerCatalog`).
    public internal(set) var details: ContainerDetails?

    public init(id: String, runtime: String, podUID: String? = nil, ownerUID: UInt32? = nil) {
        self.id = id
        self.runtime = runtime
        self.podUID = podUID
        self.ownerUID = ownerUID
    }

    /// The container of the first line that names one (the v2 line `0::` comes last in
    /// /proc/<pid>/cgroup but wins: it is the hierarchy systemd and the runtimes use now).
    public static func parse(cgroup text: String) -> ContainerIdentity? {
        var found: ContainerIdentity?
        for line in text.split(separator: "\n") {
            // hierarchy-ID:controllers:path
            guard let first = line.firstIndex(of: ":"), let second = line[line.index(after: first)...].firstIndex(of: ":") else { continue }
            let path = line[line.index(after: second)...]
            guard let container = parse(path: path) else { continue }
            if line.hasPrefix("0::") { return container }
            found = found ?? container
        }
        return found
    }

    /// One cgroup path: the innermost component that names a container.
    static func parse(path: Substring) -> ContainerIdentity? {
        var found = container(path: path)
        found?.ownerUID = path.split(separator: "/").lazy.compactMap(userInstance(in:)).first
        return found
    }

    /// `user@1000.service`: the user's own systemd, where rootless runtimes put their containers.
    static func userInstance(in component: Substring) -> UInt32? {
        guard component.hasPrefix("user@"), component.hasSuffix(".service") else { return nil }
        return UInt32(component.dropFirst("user@".count).dropLast(".service".count))
    }

    private static func container(path: Substring) -> ContainerIdentity? {
        let components = path.split(separator: "/")
        let pod = components.lazy.compactMap(podUID(in:)).first
        for (index, component) in components.enumerated().reversed() {
            let name = component.hasSuffix(".scope") ? component.dropLast(".scope".count) : component
            for (prefix, runtime) in scopePrefixes where name.hasPrefix(prefix) {
                let id = name.dropFirst(prefix.count)
                // conmon's own scope is the monitor, not the container.
                if id.hasPrefix("conmon-") { return nil }
                if prefix == "machine-" { return ContainerIdentity(id: unescape(id), runtime: runtime) }
                if isContainerID(id) { return ContainerIdentity(id: String(id), runtime: runtime, podUID: pod) }
            }
            if name.hasPrefix("lxc.payload.") { return ContainerIdentity(id: String(name.dropFirst("lxc.payload.".count)), runtime: "lxc") }
            guard index > 0 else { continue }
            let parent = components[index - 1]
            if parent == "docker", isContainerID(name) { return ContainerIdentity(id: String(name), runtime: "docker") }
            if parent == "lxc" || parent == "lxc.payload" { return ContainerIdentity(id: String(name), runtime: "lxc") }
            if parent == "libpod_parent" || parent.hasPrefix("libpod-") && !isContainerID(name) { continue }
            // cgroupfs-driven Kubernetes: kubepods/<qos>/pod<uid>/<container id>.
            if pod != nil, parent.hasPrefix("pod"), isContainerID(name) { return ContainerIdentity(id: String(name), runtime: "kubernetes", podUID: pod) }
        }
        return nil
    }

    /// systemd scope names of the runtimes (`docker-<id>.scope`, ...).
    static let scopePrefixes: [(String, String)] = [
        ("docker-", "docker"), ("cri-containerd-", "containerd"), ("crio-", "cri-o"), ("libpod-", "podman"), ("machine-", "systemd-nspawn"),
    ]

    /// Runtimes name containers by 64 hex digits (Docker, containerd, CRI-O, Podman).
    static func isContainerID(_ text: Substring) -> Bool {
        text.utf8.count == 64 && text.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
    }

    /// `pod<uid>` (cgroupfs) or systemd's `kubepods-besteffort-pod<uid with _>.slice`.
    static func podUID(in component: Substring) -> String? {
        var uid: Substring
        if component.hasPrefix("pod") {
            uid = component.dropFirst(3)
        } else if component.hasPrefix("kubepods"), let marker = component.split(separator: "-").last, marker.hasPrefix("pod") {
            uid = marker.dropFirst(3)
        } else {
            return nil
        }
        if uid.hasSuffix(".slice") { uid = uid.dropLast(".slice".count) }
        let normalized = String(uid.map { $0 == "_" ? "-" : $0 })
        guard normalized.utf8.count == 36, normalized.split(separator: "-").count == 5 else { return nil }
        return normalized
    }

    /// systemd escapes `-` in unit names as `\x2d`.
    static func unescape(_ text: Substring) -> String {
        text.split(separator: "\\x2d", omittingEmptySubsequences: false).joined(separator: "-")
    }
}
