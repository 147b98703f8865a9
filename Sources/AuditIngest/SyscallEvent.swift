/// A syscall event the agent acts on, decoded once where the event is routed: which syscall
/// (by the generated table), who made it, how it ended, and for socket calls the descriptor and
/// the address. The process table, the flow tracker and the scan stage all read this; none
/// classifies the event again.
public struct SyscallEvent {
    public let event: AuditEvent
    /// The SYSCALL record, for what only some stages read (ids, names, PATH items).
    public let syscall: AuditRecord
    public let kind: SyscallKind
    public let pid: Int32
    public let succeeded: Bool
    public let exit: Int64?
    /// The event's time, milliseconds since the epoch.
    public let time: Int64
    /// Socket calls: the descriptor (a0) and the address the SOCKADDR record carries.
    public let descriptor: Int32?
    public let address: SocketAddress?

    /// Nil for events that are no syscall the catalog lists, or carry no pid.
    public init?(_ event: AuditEvent, catalog: SyscallCatalog = .standard) {
        guard let syscall = event.records.first, syscall.type == .syscall, let kind = catalog.kind(of: syscall),
            let pid = syscall.integer("pid").map({ Int32(truncatingIfNeeded: $0) })
        else { return nil }
        self.event = event
        self.syscall = syscall
        self.kind = kind
        self.pid = pid
        succeeded = syscall.syscallSucceeded
        exit = syscall.integer("exit")
        time = event.key.time.totalMilliseconds
        switch kind {
        case .connect, .accept, .sendto:
            descriptor = syscall.hexInteger("a0").map { Int32(truncatingIfNeeded: $0) }
            address = event.first(.sockaddr)?.rawValue("saddr").flatMap { SocketAddress(hex: $0) }
        case .execve, .listen:
            descriptor = nil
            address = nil
        }
    }
}
