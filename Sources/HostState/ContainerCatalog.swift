import FoundationEssentials
import Runtime

#if canImport(Glibc)
    import Glibc
#endif

/// What the runtime knows of a container beyond its id: its name, its image and, under
/// Kubernetes, its pod (ECS `container.name`, `container.image.*`, `orchestrator.*`).
public struct ContainerDetails: Sendable, Equatable {
    public var name: String?
    /// `registry/repository` and the tag (`localhost/app`, `v1`); a digest reference has no tag.
    public var imageName: String?
    public var imageTag: String?
    public var podName: String?
    public var podNamespace: String?

    public init(name: String? = nil, image: String? = nil, podName: String? = nil, podNamespace: String? = nil) {
        self.name = name
        (imageName, imageTag) = image.map(Self.split(image:)) ?? (nil, nil)
        self.podName = podName
        self.podNamespace = podNamespace
    }

    var isEmpty: Bool { name == nil && imageName == nil && podName == nil }

    /// `host:5000/app:v1` into `host:5000/app` and `v1`; `app@sha256:...` keeps no tag.
    static func split(image: String) -> (String, String?) {
        if let at = image.firstIndex(of: "@") { return (String(image[..<at]), nil) }
        let lastSlash = image.lastIndex(of: "/") ?? image.startIndex
        guard let colon = image[lastSlash...].lastIndex(of: ":") else { return (image, nil) }
        return (String(image[..<colon]), String(image[image.index(after: colon)...]))
    }
}

/// Reads container details from the runtimes' own state files, read-only, without a call to a
/// daemon: Docker's `config.v2.json`, containers/storage's `containers.json` (Podman, CRI-O),
/// and the OCI bundle's `config.json` annotations (containerd with or without CRI, CRI-O,
/// nerdctl). Each container is read once; one not found is asked again after a while (its
/// state may be written after its first process ran).
public final class ContainerCatalog {
    /// Where the runtimes keep their state; tests point them elsewhere.
    public struct Locations: Sendable {
        public var dockerRoots = ["/var/lib/docker"]
        /// containers/storage graph roots (Podman as root, CRI-O) and run roots (CRI-O's bundles).
        public var storageRoots = ["/var/lib/containers/storage"]
        public var storageRunRoots = ["/run/containers/storage"]
        /// containerd's task bundles, by namespace (`k8s.io`, `default`, `moby`); k3s has its own.
        public var containerdTaskRoots = ["/run/containerd/io.containerd.runtime.v2.task", "/run/k3s/containerd/io.containerd.runtime.v2.task"]
        /// A rootless user's storage under their home, and their run root.
        public var homeOf: @Sendable (UInt32) -> String? = homeDirectory(of:)
        public var userRunRoot: @Sendable (UInt32) -> String = { "/run/user/\($0)/containers" }
        public init() {}
    }

    public struct Counters: Sendable, Equatable {
        public var described = 0
        public var notFound = 0
    }

    private let locations: Locations
    private var known: [String: (details: ContainerDetails?, readAt: Int64)] = [:]
    private static let limit = 4096
    private static let retryMilliseconds: Int64 = 10_000
    /// The largest state file read: a containers.json lists every container of a host (about
    /// 1 KB each); a bigger one is not read rather than held in memory.
    private static let fileLimit = 4 << 20
    public private(set) var counters = Counters()

    public init(locations: Locations = Locations()) { self.locations = locations }

    /// The details of `container`, from what was read before or from its runtime's files now.
    public func details(of container: ContainerIdentity, now: Int64) -> ContainerDetails? {
        if let entry = known[container.id], entry.details != nil || now - entry.readAt < Self.retryMilliseconds { return entry.details }
        let details = read(container)
        if details == nil { counters.notFound += 1 } else { counters.described += 1 }
        if known.count >= Self.limit { known.removeAll(keepingCapacity: true) }
        known[container.id] = (details, now)
        return details
    }

    private func read(_ container: ContainerIdentity) -> ContainerDetails? {
        let id = container.id
        switch container.runtime {
        case "docker": return docker(id) ?? bundle(id)
        case "podman", "cri-o": return storage(id, owner: container.ownerUID) ?? bundle(id)
        case "containerd": return bundle(id) ?? docker(id)
        case "kubernetes": return bundle(id) ?? storage(id, owner: nil) ?? docker(id)
        default: return nil
        }
    }

    // MARK: Docker

    /// config.v2.json: `Name` (`/web`), `Config.Image` as the user gave it, `Config.Labels`.
    private struct DockerConfig: Decodable {
        struct Config: Decodable {
            let image: String?
            let labels: [String: String]?
            enum CodingKeys: String, CodingKey {
                case image = "Image"
                case labels = "Labels"
            }
        }
        let name: String?
        let config: Config?
        enum CodingKeys: String, CodingKey {
            case name = "Name"
            case config = "Config"
        }
    }

    private func docker(_ id: String) -> ContainerDetails? {
        for root in locations.dockerRoots {
            guard let state: DockerConfig = decode(root + "/containers/\(id)/config.v2.json") else { continue }
            let labels = state.config?.labels ?? [:]
            var details = ContainerDetails(
                name: state.name.map { $0.hasPrefix("/") ? String($0.dropFirst()) : $0 }, image: state.config?.image,
                podName: labels["io.kubernetes.pod.name"], podNamespace: labels["io.kubernetes.pod.namespace"])
            if let name = labels["io.kubernetes.container.name"] { details.name = name }
            return details
        }
        return nil
    }

    // MARK: containers/storage (Podman, CRI-O)

    private struct StorageContainer: Decodable {
        let id: String
        let names: [String]?
        /// A JSON object in a string: `name`, `image-name`, and for CRI-O `pod-name`.
        let metadata: String?
    }

    private struct StorageMetadata: Decodable {
        let name: String?
        let imageName: String?
        let podName: String?
        enum CodingKeys: String, CodingKey {
            case name
            case imageName = "image-name"
            case podName = "pod-name"
        }
    }

    private func storage(_ id: String, owner: UInt32?) -> ContainerDetails? {
        var graphRoots = locations.storageRoots, runRoots = locations.storageRunRoots
        if let owner, owner != 0 {
            graphRoots = locations.homeOf(owner).map { [$0 + "/.local/share/containers/storage"] } ?? []
            runRoots = [locations.userRunRoot(owner)]
        }
        for root in graphRoots {
            for driver in Self.storageDrivers {
                guard let list: [StorageContainer] = decode("\(root)/\(driver)-containers/containers.json"),
                    let entry = list.first(where: { $0.id == id })
                else { continue }
                let metadata = entry.metadata.flatMap { try? JSONDecoder().decode(StorageMetadata.self, from: Data($0.utf8)) }
                let stored = ContainerDetails(name: metadata?.name ?? entry.names?.first, image: metadata?.imageName, podName: metadata?.podName)
                // CRI-O's bundle names the container, pod and namespace as Kubernetes does
                // (its storage names are its own: k8s_<container>_<pod>_...).
                guard let annotated = (runRoots + [root]).lazy.compactMap({ self.annotations("\($0)/\(driver)-containers/\(id)/userdata/config.json") }).first
                else { return stored }
                var details = Self.kubernetes(annotated)
                details.merge(stored)
                return details
            }
        }
        return nil
    }

    private static let storageDrivers = ["overlay", "vfs", "btrfs", "zfs", "devmapper", "aufs"]

    // MARK: OCI bundles (containerd, CRI-O)

    private struct BundleConfig: Decodable {
        let annotations: [String: String]?
    }

    private func annotations(_ path: String) -> [String: String]? {
        (decode(path) as BundleConfig?)?.annotations
    }

    private func bundle(_ id: String) -> ContainerDetails? {
        for root in locations.containerdTaskRoots {
            for namespace in directoryEntries(root) ?? [] {
                guard let annotations = annotations("\(root)/\(namespace)/\(id)/config.json") else { continue }
                let details = Self.kubernetes(annotations)
                return details.isEmpty ? nil : details
            }
        }
        for root in locations.storageRunRoots {
            for driver in Self.storageDrivers {
                guard let annotations = annotations("\(root)/\(driver)-containers/\(id)/userdata/config.json") else { continue }
                let details = Self.kubernetes(annotations)
                return details.isEmpty ? nil : details
            }
        }
        return nil
    }

    /// The names CRI (containerd), CRI-O and nerdctl write into the bundle's annotations.
    static func kubernetes(_ annotations: [String: String]) -> ContainerDetails {
        func first(_ keys: String...) -> String? { keys.lazy.compactMap { annotations[$0] }.first }
        return ContainerDetails(
            name: first("io.kubernetes.cri.container-name", "io.kubernetes.container.name", "io.kubernetes.cri-o.ContainerName", "nerdctl/name"),
            image: first("io.kubernetes.cri.image-name", "io.kubernetes.cri-o.ImageName"),
            podName: first("io.kubernetes.cri.sandbox-name", "io.kubernetes.pod.name"),
            podNamespace: first("io.kubernetes.cri.sandbox-namespace", "io.kubernetes.pod.namespace"))
    }

    private func decode<T: Decodable>(_ path: String) -> T? {
        guard let bytes = readFile(path, limit: Self.fileLimit, regularOnly: true) else { return nil }
        return try? JSONDecoder().decode(T.self, from: Data(bytes))
    }
}

/// The home directory passwd gives `uid` (a rootless Podman user's storage is under it).
private func homeDirectory(of uid: UInt32) -> String? {
    var entry = passwd()
    var result: UnsafeMutablePointer<passwd>?
    var buffer = [CChar](repeating: 0, count: 4096)
    guard getpwuid_r(uid, &entry, &buffer, buffer.count, &result) == 0, result != nil, let home = entry.pw_dir else { return nil }
    return String(cString: home)
}

extension ContainerDetails {
    /// Fills what is missing from `other`.
    mutating func merge(_ other: ContainerDetails) {
        name = name ?? other.name
        if imageName == nil { (imageName, imageTag) = (other.imageName, other.imageTag) }
        podName = podName ?? other.podName
        podNamespace = podNamespace ?? other.podNamespace
    }
}
