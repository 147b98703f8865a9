import Runtime

#if canImport(Glibc)
    import Glibc
#endif

/// ECS `agent.id`: a random UUID made at the first start and kept in state_dir, so that it
/// stays the same across restarts and package upgrades (the package keeps state_dir), and a
/// SIEM can tell two agents on hosts with the same name apart.
enum AgentID {
    static func path(stateDirectory: String) -> String { stateDirectory + "/agent-id" }

    /// The kept id, or a new one written there; the error says why it could not be kept (the
    /// id returned then lasts this run only).
    static func load(stateDirectory: String) -> (id: String, problem: String?) {
        let path = path(stateDirectory: stateDirectory)
        if let text = readTextFile(path, limit: 128, regularOnly: true), let id = valid(text) { return (id, nil) }
        let id = random()
        let temporary = path + ".new"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o644)
        guard fd >= 0 else { return (id, "cannot write \(temporary): \(String(cString: strerror(errno)))") }
        let line = Array((id + "\n").utf8)
        let written = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd) == 0
        close(fd)
        guard written == line.count, synced, rename(temporary, path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            return (id, "cannot write \(path): \(reason)")
        }
        return (id, nil)
    }

    /// A UUID's text form (8-4-4-4-12 lowercase hex).
    static func valid(_ text: String) -> String? {
        let id = text.prefix { $0 != "\n" }
        let groups = id.split(separator: "-", omittingEmptySubsequences: false).map(\.count)
        return groups == [8, 4, 4, 4, 12] && id.allSatisfy({ $0 == "-" || $0.isHexDigit && !$0.isUppercase }) ? String(id) : nil
    }

    /// A version 4 (random) UUID.
    static func random() -> String {
        // The system generator reads the kernel's (getrandom).
        var generator = SystemRandomNumberGenerator()
        var bytes = (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) }
        bytes[6] = bytes[6] & 0x0f | 0x40
        bytes[8] = bytes[8] & 0x3f | 0x80
        let characters = bytes.flatMap { byte in [byte >> 4, byte & 0x0f].map { Character(String($0, radix: 16)) } }
        return [0..<8, 8..<12, 12..<16, 16..<20, 20..<32].map { String(characters[$0]) }.joined(separator: "-")
    }
}
