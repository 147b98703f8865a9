import Hashing
import Runtime

#if canImport(Glibc)
    import Glibc
#endif

/// What a program is by its binary, not by what it is called.
public struct ProgramIdentity: Sendable, Equatable {
    /// The installed program's own name: `tnftp` for `/usr/bin/ftp` (a link through
    /// /etc/alternatives), `python3.11` for `/usr/bin/python3`.
    public let name: String
    /// Where it is installed.
    public let path: String
}

/// The transfer clients, interpreters and tools installed on the host, known by their ELF
/// build-id (the GNU note every distribution binary carries) or, for a binary without one (Go,
/// stripped, packed), by the SHA-256 of its content, so that a renamed, copied, hard-linked or
/// symlinked client is still the client it is. Learned at start from the
/// standard directories and again when one of those files changes; an executable is looked
/// up by (device, inode, size, mtime), so each distinct file is read once.
public final class ProgramCatalog {
    public struct Counters: Sendable {
        /// Executables read for their build-id (each distinct file once), and those hashed
        /// because they had none and their size was a known program's.
        public var filesRead = 0
        public var filesHashed = 0
        public var identified = 0
        /// Learned programs whose files changed (an upgrade) and were read again.
        public var relearned = 0
    }

    public static let directories = ["/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/local/bin", "/usr/local/sbin"]
    private let names: Set<String>
    private let directories: [String]
    private var byBuildID: [[UInt8]: ProgramIdentity] = [:]
    /// Installed programs without a build-id, by content; their sizes: a file of another size
    /// is none of them, without being read.
    private var byContent: [String: ProgramIdentity] = [:]
    private var hashedSizes: Set<Int64> = []
    /// The installed files learned, to notice upgrades.
    private var learned: [String: FileVersion] = [:]
    private var cache: [FileVersion: ProgramIdentity?] = [:]
    private static let cacheLimit = 16_384
    public private(set) var counters = Counters()
    public var count: Int { byBuildID.count + byContent.count }

    /// Learns `names` from `directories` now.
    public init(names: Set<String>, directories: [String] = ProgramCatalog.directories) {
        self.names = names
        self.directories = directories
        learn()
    }

    /// Reads the installed programs: each name in each directory, links followed.
    private func learn() {
        var seen: Set<String> = []
        for directory in directories {
            for name in names.sorted() {
                guard let real = realPath(directory + "/" + name), seen.insert(real).inserted else { continue }
                var info = stat()
                guard stat(real, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { continue }
                learned[real] = FileVersion(info)
                let program = ProgramIdentity(name: baseName(real), path: real)
                // The first directory wins (/usr/bin before /usr/local/bin), as PATH would.
                if let id = Self.buildID(path: real) {
                    if byBuildID[id] == nil { byBuildID[id] = program }
                } else if Self.isELF(path: real), let hash = Self.contentHash(path: real), byContent[hash] == nil {
                    byContent[hash] = program
                    hashedSizes.insert(Int64(info.st_size))
                }
            }
        }
    }

    /// Learns again when an installed program changed (a package upgrade replaces the file).
    public func refreshIfChanged() {
        let changed = learned.contains { path, key in
            var info = stat()
            return stat(path, &info) != 0 || FileVersion(info) != key
        }
        guard changed else { return }
        counters.relearned += 1
        byBuildID.removeAll()
        byContent.removeAll()
        hashedSizes.removeAll()
        learned.removeAll()
        cache.removeAll()
        learn()
    }

    /// The file at `path` as the catalog keys it; nil when it cannot be read. The path goes to
    /// stat as the String's own bytes: the implicit conversion copied it into a new array for
    /// every execve.
    public func file(at path: String) -> FileVersion? {
        var info = stat()
        guard path.withCString({ stat($0, &info) }) == 0, info.st_mode & S_IFMT == S_IFREG else { return nil }
        return FileVersion(info)
    }

    /// What the file `key` (at `path`) is; nil when it is none of the known programs. Each
    /// distinct file is read once.
    public func identity(of key: FileVersion, at path: String) -> ProgramIdentity? {
        if let known = cache[key] { return known }
        counters.filesRead += 1
        var program: ProgramIdentity?
        if let id = Self.buildID(path: path) {
            program = byBuildID[id]
        } else if hashedSizes.contains(key.size) {
            counters.filesHashed += 1
            program = Self.contentHash(path: path).flatMap { byContent[$0] }
        }
        if program != nil { counters.identified += 1 }
        if cache.count >= Self.cacheLimit { cache.removeAll(keepingCapacity: true) }
        cache[key] = program
        return program
    }

    /// What the executable at `path` is (`/proc/<pid>/exe` reaches it in any mount namespace,
    /// even deleted); nil when unreadable or none of the known programs.
    public func identify(path: String) -> ProgramIdentity? {
        file(at: path).flatMap { identity(of: $0, at: path) }
    }

    /// An ELF file: a binary without a build-id is known by content; a script is not (its
    /// interpreter is the executable).
    static func isELF(path: String) -> Bool {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var magic = [UInt8](repeating: 0, count: 4)
        return magic.withUnsafeMutableBytes { pread(fd, $0.baseAddress, 4, 0) } == 4 && magic == [0x7F, 0x45, 0x4C, 0x46]
    }

    static func contentHash(path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        return SHA256.hex(fd: fd)
    }

    private func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// The GNU build-id note of an ELF file (32 or 64 bit, little-endian), read with bounds on
    /// every length: the file may be an attacker's.
    static func buildID(path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        func readAt(_ offset: UInt64, _ count: Int) -> [UInt8]? {
            guard count > 0, count <= 65_536, offset < UInt64(Int64.max) else { return nil }
            var bytes = [UInt8](repeating: 0, count: count)
            let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count, off_t(offset)) }
            return n == count ? bytes : nil
        }
        guard let header = readAt(0, 64), header[0] == 0x7F, header[1] == 0x45, header[2] == 0x4C, header[3] == 0x46,
            header[5] == 1
        else { return nil }
        let wide = header[4] == 2
        let programHeaders = wide ? header.le(0x20, 8) : header.le(0x1C, 4)
        let entrySize = Int(wide ? header.le(0x36, 2) : header.le(0x2A, 2))
        let entries = Int(wide ? header.le(0x38, 2) : header.le(0x2C, 2))
        guard entrySize >= (wide ? 56 : 32), entries > 0, entries <= 256,
            let table = readAt(programHeaders, entrySize * entries)
        else { return nil }
        for index in 0..<entries {
            let entry = Array(table[(index * entrySize)..<((index + 1) * entrySize)])
            guard entry.le(0, 4) == 4 else { continue }  // PT_NOTE
            let offset = wide ? entry.le(0x08, 8) : entry.le(0x04, 4)
            let size = Int(min(wide ? entry.le(0x20, 8) : entry.le(0x10, 4), 4096))
            guard let notes = readAt(offset, size), let id = Self.gnuBuildID(inNotes: notes) else { continue }
            return id
        }
        return nil
    }

    /// Walks ELF notes (namesz, descsz, type, name, desc; 4-byte aligned) for NT_GNU_BUILD_ID.
    static func gnuBuildID(inNotes notes: [UInt8]) -> [UInt8]? {
        var at = 0
        while at + 12 <= notes.count {
            let nameSize = Int(notes.le(at, 4)), descSize = Int(notes.le(at + 4, 4)), type = notes.le(at + 8, 4)
            let nameStart = at + 12
            let descStart = nameStart + (nameSize + 3) & ~3
            let next = descStart + (descSize + 3) & ~3
            guard nameSize <= 256, descSize <= 1024, next <= notes.count, next > at else { return nil }
            if type == 3, nameSize == 4, notes[nameStart..<nameStart + 4].elementsEqual([0x47, 0x4E, 0x55, 0]), descSize > 0 {
                return Array(notes[descStart..<descStart + descSize])
            }
            at = next
        }
        return nil
    }
}

extension [UInt8] {
    /// A little-endian unsigned integer of `width` bytes at `offset` (inside the array).
    fileprivate func le(_ offset: Int, _ width: Int) -> UInt64 {
        var value: UInt64 = 0
        for index in stride(from: offset + width - 1, through: offset, by: -1) { value = value << 8 | UInt64(self[index]) }
        return value
    }
}
