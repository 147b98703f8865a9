/// The alert and flow documents as their readers see them: every field xferwatchd writes (ECS
/// names, xferwatch's own under `xferwatch`), once. agentctl renders them and the tests read
/// them through this; `DocumentModelTests` checks that it names every field of the golden
/// documents, and the end-to-end tests that it names every field the live agent wrote.
/// Every field is optional: a document carries what applies to it.
public struct AlertDocument: Codable, Sendable {
    public struct Event: Codable, Sendable {
        public var kind: String?
        public var id: String?
        public var severity: Int?
        public var category: [String]?
        public var type: [String]?
        public var start: String?
        public var end: String?
    }

    public struct Rule: Codable, Sendable {
        public var id: String?
        public var name: String?
        public var description: String?
        public var author: [String]?
        public var reference: String?
        public var ruleset: String?
    }

    public struct Threat: Codable, Sendable {
        public struct Entry: Codable, Sendable {
            public var id: String?
            public var name: String?
        }
        public var framework: String?
        public var technique: Entry?
        public var tactic: Entry?
    }

    public struct Host: Codable, Sendable {
        public struct OS: Codable, Sendable {
            public var type: String?
            public var family: String?
            public var platform: String?
            public var name: String?
            public var version: String?
            public var full: String?
            public var kernel: String?
        }
        public var hostname: String?
        public var name: String?
        public var id: String?
        public var architecture: String?
        public var ip: [String]?
        public var os: OS?
    }

    public struct Agent: Codable, Sendable {
        public var type: String?
        public var version: String?
        public var id: String?
        public var ephemeralID: String?
        enum CodingKeys: String, CodingKey {
            case type, version, id
            case ephemeralID = "ephemeral_id"
        }
    }

    public struct User: Codable, Sendable {
        public var id: String?
        public var name: String?
    }

    public struct File: Codable, Sendable {
        public var path: String?
        public var size: Int?
        public var inode: String?
        public var hash: Hashes?
    }

    public struct Related: Codable, Sendable {
        public var ip: [String]?
        public var user: [String]?
        public var hash: [String]?
    }

    public var timestamp: String?
    public var event: Event?
    public var rule: Rule?
    public var threat: Threat?
    public var host: Host?
    public var agent: Agent?
    public var user: User?
    public var process: ProcessDocument?
    public var container: ContainerDocument?
    public var orchestrator: OrchestratorDocument?
    public var network: NetworkDocument?
    public var source: EndpointDocument?
    public var destination: EndpointDocument?
    public var file: File?
    public var related: Related?
    public var xferwatch: XferwatchDocument?

    enum CodingKeys: String, CodingKey {
        case timestamp = "@timestamp"
        case event, rule, threat, host, agent, user, process, container, orchestrator, network, source, destination, file, related, xferwatch
    }
}

/// A finished (or, from agentctl, open) flow: the fields it shares with alerts, described once.
public struct FlowDocument: Codable, Sendable {
    public var timestamp: String?
    public var event: AlertDocument.Event?
    public var network: NetworkDocument?
    public var source: EndpointDocument?
    public var destination: EndpointDocument?
    public var process: ProcessDocument?
    public var user: AlertDocument.User?
    public var container: ContainerDocument?
    public var orchestrator: OrchestratorDocument?
    public var xferwatch: XferwatchDocument?

    enum CodingKeys: String, CodingKey {
        case timestamp = "@timestamp"
        case event, network, source, destination, process, user, container, orchestrator, xferwatch
    }
}

public struct Hashes: Codable, Sendable {
    public var md5: String?
    public var sha1: String?
    public var sha256: String?
}

public struct IdentityDocument: Codable, Sendable {
    public var id: String?
}

/// ECS `process`, also the transfer program (`xferwatch.transfer.program`); its parent is the
/// same description, one level down.
public final class ProcessDocument: Codable, Sendable {
    public struct TTY: Codable, Sendable {
        public struct Device: Codable, Sendable {
            public var major: Int?
            public var minor: Int?
        }
        public var charDevice: Device?
        enum CodingKeys: String, CodingKey { case charDevice = "char_device" }
    }

    public let pid: Int?
    public let name: String?
    public let executable: String?
    public let args: [String]?
    public let commandLine: String?
    public let workingDirectory: String?
    public let start: String?
    public let tty: TTY?
    public let user: IdentityDocument?
    public let realUser: IdentityDocument?
    public let savedUser: IdentityDocument?
    public let group: IdentityDocument?
    public let realGroup: IdentityDocument?
    public let savedGroup: IdentityDocument?
    public let interactive: Bool?
    public let hash: Hashes?
    public let parent: ProcessDocument?

    enum CodingKeys: String, CodingKey {
        case pid, name, executable, args, start, tty, user, group, interactive, hash, parent
        case commandLine = "command_line"
        case workingDirectory = "working_directory"
        case realUser = "real_user"
        case savedUser = "saved_user"
        case realGroup = "real_group"
        case savedGroup = "saved_group"
    }
}

public struct ContainerDocument: Codable, Sendable {
    public struct Image: Codable, Sendable {
        public var name: String?
        public var tag: [String]?
    }
    public var id: String?
    public var runtime: String?
    public var name: String?
    public var image: Image?
}

public struct OrchestratorDocument: Codable, Sendable {
    public struct Resource: Codable, Sendable {
        public var type: String?
        public var id: String?
        public var name: String?
    }
    public var type: String?
    public var namespace: String?
    public var resource: Resource?
}

public struct NetworkDocument: Codable, Sendable {
    public var transport: String?
    public var type: String?
    public var `protocol`: String?
    public var direction: String?
}

/// ECS `source` (this host) and `destination`; through a proxy the destination is what the
/// client asked it for, by name (`address`, `domain`) or address.
public struct EndpointDocument: Codable, Sendable {
    public var ip: String?
    public var address: String?
    public var domain: String?
    public var port: Int?
    public var bytes: Int?
}
