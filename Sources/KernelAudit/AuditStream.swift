/// The kernel's audit records from whichever netlink socket carries them now: the unicast
/// socket of the audit daemon, or the multicast group beside another daemon. A switch between
/// them loses nothing and repeats nothing. The new socket is receiving before the old one stops,
/// and the old one is then read to its end. kauditd sends each record to the multicast group and
/// then to the daemon, in one order, so the records both sockets got are the first ones the new
/// socket holds: those are skipped.
public final class AuditStream {
    public private(set) var reader: NetlinkAuditReader
    /// Identities of the records the old socket delivered after the new one opened, until the
    /// new socket's first record that is not among them.
    private var overlap: Set<Int> = []
    /// What earlier sockets counted, so the counters cover the whole run.
    private var retired = NetlinkCounters()
    public private(set) var duplicatesSkipped = 0
    public private(set) var switches = 0

    init(reader: NetlinkAuditReader) { self.reader = reader }

    public var fd: Int32 { reader.fd }
    public var mode: NetlinkAuditReader.Mode { reader.mode }

    public var counters: NetlinkCounters { retired + reader.counters }

    /// Reads every record waiting into `handle`; returns how many messages were read.
    @discardableResult
    public func drain(_ handle: (UInt16, UnsafeRawBufferPointer) -> Void) -> Int {
        guard !overlap.isEmpty else { return reader.drain(handle) }
        return reader.drain { type, body in
            if !overlap.isEmpty {
                if overlap.contains(Self.identity(type, body)) {
                    duplicatesSkipped += 1
                    return
                }
                overlap = []
            }
            handle(type, body)
        }
    }

    /// Moves to `next`, which is already receiving: `release` stops the old socket's delivery
    /// (clears the audit pid; nothing for the multicast group), then what the old socket holds
    /// goes to `handle` and it is closed.
    func switchTo(
        _ next: NetlinkAuditReader, release: () throws(KernelAuditError) -> Void, handle: (UInt16, UnsafeRawBufferPointer) -> Void
    ) throws(KernelAuditError) {
        try release()
        var delivered = Set<Int>()
        reader.drain { type, body in
            delivered.insert(Self.identity(type, body))
            handle(type, body)
        }
        retired = retired + reader.counters
        reader = next
        overlap = delivered
        switches += 1
    }

    /// A record's identity: its type and bytes (the event stamp and serial are in them).
    static func identity(_ type: UInt16, _ body: UnsafeRawBufferPointer) -> Int {
        var hasher = Hasher()
        hasher.combine(type)
        hasher.combine(bytes: body)
        return hasher.finalize()
    }
}
