/// `xferwatch`: what ECS has no field for.
public struct XferwatchDocument: Codable, Sendable {
    public struct Transfer: Codable, Sendable {
        public var direction: String?
        public var program: ProcessDocument?
    }

    public struct ProcessDetails: Codable, Sendable {
        public var stdin: String?
        public var knownFrom: String?
        public var auditUserID: String?
        public var auditSessionID: Int?
        public var tty: String?
        public var executableOnDisk: Bool?
        public var parentArgsTruncated: Int?
        public var identity: String?
        public var identityNote: String?
        enum CodingKeys: String, CodingKey {
            case stdin, tty, identity
            case knownFrom = "known_from"
            case auditUserID = "audit_user_id"
            case auditSessionID = "audit_session_id"
            case executableOnDisk = "executable_on_disk"
            case parentArgsTruncated = "parent_args_truncated"
            case identityNote = "identity_note"
        }
    }

    public struct Ancestor: Codable, Sendable {
        public var pid: Int?
        public var executable: String?
        public var args: [String]?
        public var argsTruncated: Int?
        public var commandLine: String?
        enum CodingKeys: String, CodingKey {
            case pid, executable, args
            case argsTruncated = "args_truncated"
            case commandLine = "command_line"
        }
    }

    public struct ServerProcess: Codable, Sendable {
        public var pid: Int?
        public var executable: String?
        public var networkNamespace: Int?
        public var otherNetworkNamespace: Bool?
        public var containerID: String?
        enum CodingKeys: String, CodingKey {
            case pid, executable
            case networkNamespace = "network_namespace"
            case otherNetworkNamespace = "other_network_namespace"
            case containerID = "container_id"
        }
    }

    public struct TFTP: Codable, Sendable {
        public var transferPort: Int?
        public var datagramsOut: Int?
        enum CodingKeys: String, CodingKey {
            case transferPort = "transfer_port"
            case datagramsOut = "datagrams_out"
        }
    }

    public struct FTP: Codable, Sendable {
        public struct Transfer: Codable, Sendable {
            public var command: String?
            public var file: String?
        }
        public var user: String?
        public var transfers: [Transfer]?
        public var authTLS: Bool?
        enum CodingKeys: String, CodingKey {
            case user, transfers
            case authTLS = "auth_tls"
        }
    }

    public struct SSH: Codable, Sendable {
        public var client: String?
        public var server: String?
    }

    public struct TFTPRequest: Codable, Sendable {
        public var opcode: String?
        public var file: String?
        public var mode: String?
    }

    public struct SMB: Codable, Sendable {
        public struct File: Codable, Sendable {
            public var name: String?
            public var write: Bool?
        }
        public var files: [File]?
    }

    public struct Proxy: Codable, Sendable {
        public var kind: String?
        public var ip: String?
        public var port: Int?
    }

    public struct Relay: Codable, Sendable {
        public var pid: Int?
        public var executable: String?
        public var args: [String]?
        public var `protocol`: String?
        public var destination: EndpointDocument?
    }

    public struct DataConnection: Codable, Sendable {
        public var mode: String?
        public var announcedBy: String?
        public var start: String?
        public var end: String?
        public var source: EndpointDocument?
        public var destination: EndpointDocument?
        enum CodingKeys: String, CodingKey {
            case mode, start, end, source, destination
            case announcedBy = "announced_by"
        }
    }

    public struct Yara: Codable, Sendable {
        /// A rule's metadata value as the rule declares it.
        public enum Value: Codable, Sendable, Equatable {
            case string(String)
            case integer(Int)
            case boolean(Bool)

            public init(from decoder: Decoder) throws {
                let container = try decoder.singleValueContainer()
                if let flag = try? container.decode(Bool.self) {
                    self = .boolean(flag)
                } else if let number = try? container.decode(Int.self) {
                    self = .integer(number)
                } else {
                    self = .string(try container.decode(String.self))
                }
            }

            public func encode(to encoder: Encoder) throws {
                var container = encoder.singleValueContainer()
                switch self {
                case .string(let text): try container.encode(text)
                case .integer(let number): try container.encode(number)
                case .boolean(let flag): try container.encode(flag)
                }
            }
        }
        public var rule: String?
        public var namespace: String?
        public var tags: [String]?
        public var meta: [String: Value]?
    }

    public var analytic: String?
    public var reasons: [String]?
    public var interactive: Bool?
    public var interactiveReasons: [String]?
    public var flowID: Int?
    public var state: String?
    public var bytesExact: Bool?
    public var transfer: Transfer?
    public var process: ProcessDetails?
    public var ancestry: [Ancestor]?
    public var networkNamespace: Int?
    public var destinationProcess: ServerProcess?
    public var attributed: String?
    public var tftp: TFTP?
    public var protocolEvidence: String?
    public var protocolMismatch: String?
    public var ftp: FTP?
    public var ssh: SSH?
    public var tftpRequest: TFTPRequest?
    public var smbVersion: Int?
    public var smb: SMB?
    public var proxy: Proxy?
    public var relay: Relay?
    public var dataConnections: [DataConnection]?
    public var yara: Yara?

    enum CodingKeys: String, CodingKey {
        case analytic, reasons, interactive, state, transfer, process, ancestry, attributed, tftp, ftp, ssh, smb, proxy, relay, yara
        case interactiveReasons = "interactive_reasons"
        case flowID = "flow_id"
        case bytesExact = "bytes_exact"
        case networkNamespace = "network_namespace"
        case destinationProcess = "destination_process"
        case protocolEvidence = "protocol_evidence"
        case protocolMismatch = "protocol_mismatch"
        case tftpRequest = "tftp_request"
        case smbVersion = "smb_version"
        case dataConnections = "data_connections"
    }
}
