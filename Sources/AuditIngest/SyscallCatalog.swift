/// The syscalls the flow and process models act on, told apart by (arch, number) so that one
/// lookup per SYSCALL record replaces string compares. Numbers differ per architecture
/// (connect is 42 on x86_64, 203 on aarch64, 362 on i386): `SyscallTable.swift`, generated from
/// libaudit, lists them all, so a replay on any host reads a log from any architecture.
public enum SyscallKind: UInt8, Sendable {
    case execve, connect, accept, sendto, listen
}

public struct SyscallCatalog: Sendable {
    private var kinds: [UInt64: SyscallKind] = [:]

    public init() {}

    /// Every architecture's numbers, from the generated table.
    public static let standard: SyscallCatalog = {
        var catalog = SyscallCatalog()
        for entry in table { catalog.add(arch: entry.arch, number: entry.number, kind: entry.kind) }
        return catalog
    }()

    public mutating func add(arch: UInt32, number: Int32, kind: SyscallKind) {
        kinds[UInt64(arch) << 32 | UInt64(UInt32(bitPattern: number))] = kind
    }

    public func kind(arch: UInt32, number: Int32) -> SyscallKind? {
        kinds[UInt64(arch) << 32 | UInt64(UInt32(bitPattern: number))]
    }

    /// The catalog entry for an event's SYSCALL record (`arch` hex, `syscall` decimal).
    public func kind(of record: AuditRecord) -> SyscallKind? {
        guard let arch = record.hexInteger("arch"), let number = record.integer("syscall") else { return nil }
        return kind(arch: UInt32(truncatingIfNeeded: arch), number: Int32(truncatingIfNeeded: number))
    }
}
