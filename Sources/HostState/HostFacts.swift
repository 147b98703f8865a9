import AuditIngest
import Runtime

#if canImport(Glibc)
    import Glibc
#endif

/// What an alert says of the host that raised it (ECS `host.*`): the id an asset inventory
/// knows it by (systemd's machine id), its names, operating system, architecture and
/// addresses. Names and addresses change while the agent runs: `refresh` reads them again.
public struct HostFacts: Sendable, Equatable {
    public struct OperatingSystem: Sendable, Equatable {
        /// /etc/os-release: `ID` (platform), the first of `ID_LIKE` or `ID` (family), `NAME`,
        /// `VERSION` (or `VERSION_ID`), `PRETTY_NAME` (full); uname's release (kernel).
        public var platform: String?
        public var family: String?
        public var name: String?
        public var version: String?
        public var full: String?
        public var kernel: String?
    }

    public var hostname: String?
    /// /etc/machine-id: 32 hex digits, the same across reboots and renames.
    public var id: String?
    /// uname's machine (`x86_64`, `aarch64`).
    public var architecture: String?
    public var os: OperatingSystem?
    /// The host's interface addresses, loopback left out.
    public var addresses: [String] = []

    public init(hostname: String? = nil) { self.hostname = hostname }

    /// This host, read now. `root`: where /etc is (tests).
    public static func read(root: String = "") -> HostFacts {
        var facts = HostFacts()
        facts.id = readTextFile(root + "/etc/machine-id", limit: 256, regularOnly: true).flatMap(machineID)
        var names = utsname()
        let release = uname(&names) == 0
        facts.architecture = release ? field(&names.machine) : nil
        let osRelease = readTextFile(root + "/etc/os-release", limit: 16_384) ?? readTextFile(root + "/usr/lib/os-release", limit: 16_384)
        var os = osRelease.map(operatingSystem) ?? OperatingSystem()
        os.kernel = release ? field(&names.release) : nil
        facts.os = os
        facts.refresh()
        return facts
    }

    /// The name and addresses as they are now.
    public mutating func refresh() {
        var buffer = [CChar](repeating: 0, count: 256)
        if gethostname(&buffer, buffer.count) == 0 {
            hostname = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        addresses = Self.interfaceAddresses()
    }

    static func machineID(_ text: String) -> String? {
        let id = text.prefix { $0 != "\n" }
        return id.utf8.count == 32 && id.allSatisfy(\.isHexDigit) ? String(id) : nil
    }

    /// os-release's `KEY=value` lines; values may be quoted (RFC-less, but shell-like).
    static func operatingSystem(_ text: String) -> OperatingSystem {
        var values: [Substring: String] = [:]
        for line in text.split(separator: "\n") {
            guard let equals = line.firstIndex(of: "="), !line.hasPrefix("#") else { continue }
            var value = line[line.index(after: equals)...].trimmingSpaces
            if value.count >= 2, let quote = value.first, quote == "\"" || quote == "'", value.last == quote {
                value = value.dropFirst().dropLast()
            }
            values[line[..<equals].trimmingSpaces] = String(value)
        }
        let platform = values["ID"]
        return OperatingSystem(
            platform: platform, family: values["ID_LIKE"]?.split(separator: " ").first.map(String.init) ?? platform, name: values["NAME"],
            version: values["VERSION"] ?? values["VERSION_ID"], full: values["PRETTY_NAME"])
    }

    private static func field<T>(_ tuple: inout T) -> String {
        withUnsafeBytes(of: &tuple) { bytes in String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self) }
    }

    /// getifaddrs' IPv4 and IPv6 addresses, each once, loopback left out.
    static func interfaceAddresses() -> [String] {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else { return [] }
        defer { freeifaddrs(list) }
        var result: [String] = []
        var next: UnsafeMutablePointer<ifaddrs>? = first
        while let entry = next {
            next = entry.pointee.ifa_next
            guard let address = entry.pointee.ifa_addr, entry.pointee.ifa_flags & UInt32(IFF_LOOPBACK) == 0 else { continue }
            let text: String
            switch Int32(address.pointee.sa_family) {
            case AF_INET:
                text = address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                    IPAddress(bytes: withUnsafeBytes(of: $0.pointee.sin_addr) { Array($0) }).description
                }
            case AF_INET6:
                text = address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                    IPAddress(bytes: withUnsafeBytes(of: $0.pointee.sin6_addr) { Array($0) }).description
                }
            default: continue
            }
            if !result.contains(text) { result.append(text) }
        }
        return result
    }
}

extension Substring {
    fileprivate var trimmingSpaces: Substring {
        let start = drop { $0 == " " || $0 == "\t" }
        var end = start.endIndex
        while end > start.startIndex, case let before = start.index(before: end), start[before] == " " || start[before] == "\t" { end = before }
        return start[..<end]
    }
}
