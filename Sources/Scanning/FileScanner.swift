import Hashing
import Runtime

#if canImport(Glibc)
    import Glibc
#endif

/// What to scan: the path an event names, and how to be sure it is the file the event meant.
public struct ScanTarget: Sendable, Equatable {
    /// The file as the event named it: what results report.
    public var path: String
    /// The inode audit recorded (PATH record): a different file at a location is not scanned.
    public var expectedInode: UInt64?
    /// Where to open it, first that works: the path through the process's own root
    /// (`/proc/<pid>/root/...`, right for containers and for an agent in a private mount
    /// namespace), through the host's, then `/proc/<pid>/exe`, which still opens a deleted binary.
    public var locations: [String]

    public init(path: String, expectedInode: UInt64? = nil, locations: [String]? = nil) {
        self.path = path
        self.expectedInode = expectedInode
        self.locations = locations ?? [path]
    }
}

public struct ScannedFile: Sendable, Equatable {
    public let path: String
    public let identity: FileVersion
    /// Computed for matched files only.
    public let sha256: String?
}

public struct ScanResult: Sendable {
    public enum Outcome: Sendable, Equatable {
        case scanned, cached, tooLarge, gone, notRegular
        case failed(String)
    }

    public let outcome: Outcome
    public let file: ScannedFile?
    public let matches: [YaraMatch]
}

/// Scans files with one rule set and remembers results by file identity. One thread uses it.
public final class FileScanner {
    public struct Counters: Sendable, Equatable {
        public var scans = 0
        public var cacheHits = 0
        public var filesMatched = 0
        public var tooLarge = 0
        /// Gone, replaced since the event, or unreadable.
        public var gone = 0
        public var notRegular = 0
        public var failed = 0
        public var bytesScanned: Int64 = 0

        public func adding(_ other: Counters) -> Counters {
            Counters(
                scans: scans + other.scans, cacheHits: cacheHits + other.cacheHits, filesMatched: filesMatched + other.filesMatched,
                tooLarge: tooLarge + other.tooLarge, gone: gone + other.gone, notRegular: notRegular + other.notRegular,
                failed: failed + other.failed, bytesScanned: bytesScanned + other.bytesScanned)
        }
    }

    public private(set) var counters = Counters()
    private let rules: YaraRules
    private let maximumSize: Int64
    private let cacheCapacity: Int
    private var cache: [FileVersion: (sha256: String?, matches: [YaraMatch])] = [:]
    /// Insertion order, for evicting the oldest entry.
    private var cacheOrder: [FileVersion] = []
    private var cacheOldest = 0

    public init(rules: YaraRules, maximumSize: Int64, cacheCapacity: Int = 16_384) {
        self.rules = rules
        self.maximumSize = maximumSize
        self.cacheCapacity = max(1, cacheCapacity)
    }

    public func scan(_ target: ScanTarget) -> ScanResult {
        var sawIrregular = false
        for location in target.locations {
            var info = stat()
            guard stat(location, &info) == 0 else { continue }
            guard info.st_mode & S_IFMT == S_IFREG else {
                sawIrregular = true
                continue
            }
            if let expected = target.expectedInode, UInt64(info.st_ino) != expected { continue }
            return scan(location, reportedAs: target.path, identity: FileVersion(info))
        }
        if sawIrregular {
            counters.notRegular += 1
            return ScanResult(outcome: .notRegular, file: nil, matches: [])
        }
        counters.gone += 1
        return ScanResult(outcome: .gone, file: nil, matches: [])
    }

    private func scan(_ location: String, reportedAs path: String, identity: FileVersion) -> ScanResult {
        if let cached = cache[identity] {
            counters.cacheHits += 1
            return ScanResult(outcome: .cached, file: ScannedFile(path: path, identity: identity, sha256: cached.sha256), matches: cached.matches)
        }
        guard identity.size <= maximumSize else {
            counters.tooLarge += 1
            return ScanResult(outcome: .tooLarge, file: ScannedFile(path: path, identity: identity, sha256: nil), matches: [])
        }
        // O_NONBLOCK: a FIFO swapped in after stat must not block the worker.
        let fd = open(location, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)
        guard fd >= 0 else {
            counters.gone += 1
            return ScanResult(outcome: .gone, file: nil, matches: [])
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG, FileVersion(info) == identity else {
            counters.gone += 1
            return ScanResult(outcome: .gone, file: nil, matches: [])
        }
        let matches: [YaraMatch]
        do {
            matches = try rules.scan(fd: fd, size: UInt64(info.st_size))
        } catch {
            counters.failed += 1
            return ScanResult(outcome: .failed(error.description), file: ScannedFile(path: path, identity: identity, sha256: nil), matches: [])
        }
        counters.scans += 1
        counters.bytesScanned += identity.size
        let sha256 = matches.isEmpty ? nil : SHA256.hex(fd: fd)
        if !matches.isEmpty { counters.filesMatched += 1 }
        remember(identity, sha256: sha256, matches: matches)
        return ScanResult(outcome: .scanned, file: ScannedFile(path: path, identity: identity, sha256: sha256), matches: matches)
    }

    private func remember(_ identity: FileVersion, sha256: String?, matches: [YaraMatch]) {
        if cacheOrder.count < cacheCapacity {
            cacheOrder.append(identity)
        } else {
            cache[cacheOrder[cacheOldest]] = nil
            cacheOrder[cacheOldest] = identity
            cacheOldest = (cacheOldest + 1) % cacheCapacity
        }
        cache[identity] = (sha256, matches)
    }
}
