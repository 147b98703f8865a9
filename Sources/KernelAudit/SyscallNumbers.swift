import AuditIngest
import CAudit

extension SyscallCatalog {
    /// The syscalls xferwatch acts on, numbered for every architecture libaudit knows.
    public static func fromLibaudit() -> SyscallCatalog {
        let names: [(String, SyscallKind)] = [
            ("execve", .execve), ("execveat", .execve), ("connect", .connect), ("accept", .accept), ("accept4", .accept),
            ("sendto", .sendto), ("sendmsg", .sendto), ("listen", .listen),
        ]
        var catalog = SyscallCatalog()
        for machine in Int32(0)..<Int32(32) {
            let arch = audit_machine_to_elf(machine)
            guard arch != 0 else { continue }
            for (name, kind) in names {
                let number = audit_name_to_syscall(name, machine)
                if number >= 0 { catalog.add(arch: arch, number: number, kind: kind) }
            }
        }
        return catalog
    }
}
