import CPcap

#if canImport(Glibc)
    import Glibc
#endif

/// libpcap wrapped once: an AF_PACKET capture (classic BPF, never bpf(2)) of the first bytes of
/// the packets a filter compiled by `pcap_compile` lets through, read without blocking from the
/// event loop.
public final class PacketTap {
    public struct Statistics: Sendable, Equatable {
        /// Packets the filter passed, and those the kernel dropped because the buffer was full.
        public var received: UInt64 = 0
        public var dropped: UInt64 = 0
        public var interfaceDropped: UInt64 = 0
        public init() {}
    }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// Which packets of the interface reach the filter.
    public enum Direction: Sendable {
        case both
        /// Only those the host receives (loopback's once, not twice): the kernel hands the
        /// tap none of those it sends (PACKET_IGNORE_OUTGOING), so they cost it no copy at all.
        case incoming
        /// Only those the host sends: libpcap sets aside the received packets the filter passed
        /// (few do). Not `outbound` in the filter: libpcap runs the filter once more in user
        /// space on the first packet it reads, where `outbound` fails, and that packet is lost.
        case outgoing
    }

    private let handle: OpaquePointer
    public let linkType: Int32
    /// Poll it for POLLIN; then `read`.
    public let descriptor: Int32
    private var totals = Statistics()
    private var last = pcap_stat()

    /// Opens `interface` ("any" for all), keeps `snapLength` bytes of each packet going
    /// `direction` that the `filter` passes, in a kernel buffer of `bufferBytes`.
    public init(interface: String, snapLength: Int, bufferBytes: Int, filter: String, direction: Direction = .both) throws(Failure) {
        var error = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE))
        guard let handle = pcap_create(interface, &error) else { throw Failure(description: String(cString: error)) }
        func check(_ status: Int32, _ what: String) throws(Failure) {
            guard status >= 0 else {
                let message = String(cString: pcap_geterr(handle))
                pcap_close(handle)
                throw Failure(description: "\(what): \(message.isEmpty ? String(cString: pcap_statustostr(status)) : message)")
            }
        }
        try check(pcap_set_snaplen(handle, Int32(snapLength)), "snap length")
        try check(pcap_set_immediate_mode(handle, 1), "immediate mode")
        try check(pcap_set_buffer_size(handle, Int32(clamping: bufferBytes)), "buffer size")
        try check(pcap_set_promisc(handle, 0), "promiscuous mode")
        try check(pcap_activate(handle), "capture on \(interface)")
        if direction == .incoming {
            var on: Int32 = 1
            guard setsockopt(pcap_fileno(handle), SOL_PACKET, PACKET_IGNORE_OUTGOING, &on, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
                let reason = String(cString: strerror(errno))
                pcap_close(handle)
                throw Failure(description: "leave out the packets sent on \(interface): \(reason)")
            }
        }
        if direction == .outgoing { try check(pcap_setdirection(handle, PCAP_D_OUT), "capture only what is sent on \(interface)") }
        var program = bpf_program()
        try check(pcap_compile(handle, &program, filter, 1, PCAP_NETMASK_UNKNOWN), "filter")
        defer { pcap_freecode(&program) }
        try check(pcap_setfilter(handle, &program), "filter")
        try check(pcap_setnonblock(handle, 1, &error), "non-blocking mode")
        self.handle = handle
        linkType = pcap_datalink(handle)
        descriptor = pcap_get_selectable_fd(handle)
    }

    deinit { pcap_close(handle) }

    /// Hands up to `limit` waiting packets to `body` (captured bytes, valid only during the
    /// call; the kernel's capture time in microseconds); returns how many. Never blocks.
    @discardableResult
    public func read(limit: Int, _ body: (UnsafeRawBufferPointer, Int64) -> Void) -> Int {
        var count = 0
        var header: UnsafeMutablePointer<pcap_pkthdr>?
        var data: UnsafePointer<UInt8>?
        while count < limit, pcap_next_ex(handle, &header, &data) == 1, let header, let data {
            let time = Int64(header.pointee.ts.tv_sec) * 1_000_000 + Int64(header.pointee.ts.tv_usec)
            body(UnsafeRawBufferPointer(start: data, count: Int(header.pointee.caplen)), time)
            count += 1
        }
        return count
    }

    /// Counts since the tap opened (the kernel's 32-bit counters carried over wrap-around).
    public func statistics() -> Statistics {
        var now = pcap_stat()
        guard pcap_stats(handle, &now) == 0 else { return totals }
        totals.received &+= UInt64(now.ps_recv &- last.ps_recv)
        totals.dropped &+= UInt64(now.ps_drop &- last.ps_drop)
        totals.interfaceDropped &+= UInt64(now.ps_ifdrop &- last.ps_ifdrop)
        last = now
        return totals
    }

    /// Checks that `filter` compiles for `linkType` without opening anything (configuration
    /// checks, tests); the compiled program's instruction count, or the error.
    public static func compile(_ filter: String, linkType: Int32 = 113, snapLength: Int = 256) -> Result<Int, Failure> {
        guard let dead = pcap_open_dead(linkType, Int32(snapLength)) else { return .failure(Failure(description: "pcap_open_dead failed")) }
        defer { pcap_close(dead) }
        var program = bpf_program()
        guard pcap_compile(dead, &program, filter, 1, PCAP_NETMASK_UNKNOWN) == 0 else {
            return .failure(Failure(description: String(cString: pcap_geterr(dead))))
        }
        defer { pcap_freecode(&program) }
        return .success(Int(program.bf_len))
    }
}
