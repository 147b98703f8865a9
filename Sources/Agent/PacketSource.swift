import AgentConfig
import Control
import Flows
import HostState
import Inspection
import PacketCapture
import Runtime

#if canImport(Glibc)
    import Glibc
#endif

/// The packet tap as a source of the event loop: the packets the kernel's filter passed are
/// decoded, their first bytes parsed, and what they say goes to the flow tracker. Its kernel
/// drops are the agent's trouble, on the health channel.
final class PacketSource: LoopSource {
    struct Counters {
        var packets = 0
        /// Headers that did not decode (truncated, fragments, other protocols).
        var malformed = 0
        /// Passed the filter but said none of the protocols once parsed.
        var unidentified = 0
    }

    /// One capture: its interface, which way its packets go, and for a link's own capture of
    /// what the host sends there, the link's index.
    struct Capture {
        let interface: String
        let direction: PacketTap.Direction
        let linkIndex: Int32?
        let tap: PacketTap

        var label: String {
            switch direction {
            case .both: interface
            case .incoming: "\(interface) (received)"
            case .outgoing: "\(interface) (sent)"
            }
        }
    }

    private var captures: [Capture]
    /// The links followed for their sent packets (with `any`); nil when the one capture of
    /// `any` takes both directions.
    private let links: NetworkLinks?
    private let settings: AgentConfiguration.Inspection
    private let tracker: FlowTracker
    private let health: HealthChannel
    private let log: Logger
    private(set) var counters = Counters()
    /// This turn's packets from every capture, put back in the order they were captured.
    private var turn: [(time: Int64, linkType: Int32, bytes: [UInt8])] = []
    /// Counts of the captures closed with their link.
    private var closedStatistics = PacketTap.Statistics()
    /// Captures closed so far, their links gone (the loop registers the descriptors again).
    private var capturesClosed = 0
    private var dropsReported: UInt64 = 0
    private var nextStatistics: Int64 = 0
    private var nextDropReport: Int64 = 0
    /// Packets read per interface per loop turn: a burst waits for the next turn, in the
    /// kernel's buffer, rather than hold up the audit stream.
    private static let batch = 512

    /// Opens the configured captures; nil (logged) when none opens. `any` is two kinds of
    /// capture: one of every packet the host receives, on every interface, and one per link
    /// but loopback of what the host sends there, opened and closed as links come and go. A
    /// single capture of both directions on `any` would be handed every packet the host sends
    /// to itself twice, the first time as a copy made for the tap alone: a datagram loop on
    /// loopback lost a tenth of its rate to that (`bench/sweep.py`).
    static func open(_ settings: AgentConfiguration.Inspection, tracker: FlowTracker, health: HealthChannel, log: Logger) -> PacketSource? {
        guard settings.enabled else {
            log.info("inspection: off ([inspection] enabled = false)")
            return nil
        }
        func tap(_ interface: String, _ direction: PacketTap.Direction, bufferBytes: Int) throws(PacketTap.Failure) -> PacketTap {
            try PacketTap(
                interface: interface, snapLength: settings.snapLength, bufferBytes: bufferBytes, filter: CaptureFilter.expression, direction: direction)
        }
        var captures: [Capture] = []
        var links: NetworkLinks?
        for interface in settings.interfaces {
            if interface == "any" && links == nil {
                do {
                    let received = try tap("any", .incoming, bufferBytes: settings.bufferBytes)
                    links = try NetworkLinks()
                    captures.append(Capture(interface: "any", direction: .incoming, linkIndex: nil, tap: received))
                    continue
                } catch {
                    log.warning("inspection: one capture of both directions on any: \(error)")
                }
            }
            do {
                captures.append(
                    Capture(interface: interface, direction: .both, linkIndex: nil, tap: try tap(interface, .both, bufferBytes: settings.bufferBytes)))
            } catch {
                log.error("inspection: cannot capture on \(interface): \(error)")
            }
        }
        guard !captures.isEmpty else { return nil }
        let source = PacketSource(captures: captures, links: links, settings: settings, tracker: tracker, health: health, log: log)
        source.followLinks()
        log.info(
            "inspection: capturing the first \(settings.snapLength) bytes of candidate packets on \(source.captures.map(\.label).joined(separator: ", "))")
        return source
    }

    private init(
        captures: [Capture], links: NetworkLinks?, settings: AgentConfiguration.Inspection, tracker: FlowTracker, health: HealthChannel, log: Logger
    ) {
        self.captures = captures
        self.links = links
        self.settings = settings
        self.tracker = tracker
        self.health = health
        self.log = log
    }

    /// A capture of what the host sends on each link but loopback while it is up, closed with
    /// its link.
    private func followLinks() {
        guard let links else { return }
        let complete = links.drain { change in
            switch change {
            case .present(let link) where !link.isUp:
                // Opened again when it comes up (libpcap refuses a link that is down).
                closeCaptures { $0.linkIndex == link.index }
            case .present(let link):
                guard !link.isLoopback, !captures.contains(where: { $0.linkIndex == link.index }) else { return }
                do {
                    // Sent packets only, and few pass the filter: a smaller buffer than any's.
                    let sent = try PacketTap(
                        interface: link.name, snapLength: settings.snapLength, bufferBytes: max(65_536, settings.bufferBytes / 16),
                        filter: CaptureFilter.expression, direction: .outgoing)
                    captures.append(Capture(interface: link.name, direction: .outgoing, linkIndex: link.index, tap: sent))
                    log.debug("inspection: capturing what is sent on \(link.name) (link \(link.index))")
                } catch {
                    log.warning("inspection: cannot capture what is sent on \(link.name): \(error)")
                }
            case .removed(let index):
                closeCaptures { $0.linkIndex == index }
            }
        }
        if !complete { log.warning("inspection: link changes were lost (the kernel's queue overran); the links were listed again") }
    }

    /// Closes the captures `matching` says, keeping their counts.
    private func closeCaptures(_ matching: (Capture) -> Bool) {
        for capture in captures where matching(capture) {
            let s = capture.tap.statistics()
            closedStatistics.received += s.received
            closedStatistics.dropped += s.dropped
            closedStatistics.interfaceDropped += s.interfaceDropped
            log.debug("inspection: closed the capture on \(capture.label)")
        }
        let before = captures.count
        captures.removeAll(where: matching)
        capturesClosed += before - captures.count
    }

    func descriptors(into fds: inout [pollfd]) {
        if let links { fds.append(pollfd(fd: links.fd, events: Int16(POLLIN), revents: 0)) }
        for capture in captures { fds.append(pollfd(fd: capture.tap.descriptor, events: Int16(POLLIN), revents: 0)) }
    }
    var descriptorChanges: Int { capturesClosed }

    /// Reads `any` first, then the links' captures, and inspects the packets in capture order:
    /// an FTP reply read from `any` may answer a command sent on a link, and the command must
    /// come first. A packet sent before one received was in its capture by the time that one
    /// was read.
    func service(_ polled: ArraySlice<pollfd>, time: LoopTime) -> LoopRequest {
        var failed: [Int32] = []
        for (capture, fd) in zip(captures, links == nil ? polled : polled.dropFirst()) where fd.revents != 0 {
            // A link's capture fails once its link is gone; the link's removal may have been lost.
            if fd.revents & Int16(POLLERR | POLLHUP | POLLNVAL) != 0, let index = capture.linkIndex {
                failed.append(index)
                continue
            }
            let linkType = capture.tap.linkType
            capture.tap.read(limit: Self.batch) { bytes, captured in turn.append((captured, linkType, Array(bytes))) }
        }
        if !turn.isEmpty {
            // Stable: each capture's own packets are in order already.
            let ordered = turn.enumerated().sorted { ($0.element.time, $0.offset) < ($1.element.time, $1.offset) }
            for (_, packet) in ordered { packet.bytes.withUnsafeBytes { inspect($0, linkType: packet.linkType, now: time.realtime) } }
            turn.removeAll(keepingCapacity: true)
        }
        if !failed.isEmpty { closeCaptures { $0.linkIndex.map(failed.contains) ?? false } }
        // Last: the captures read above are the ones polled.
        if links != nil, let first = polled.first, first.revents != 0 { followLinks() }
        if time.monotonic >= nextStatistics {
            nextStatistics = time.monotonic + 1000
            checkDrops(time: time)
        }
        return .none
    }

    private func inspect(_ bytes: UnsafeRawBufferPointer, linkType: Int32, now: Int64) {
        counters.packets += 1
        guard let packet = PacketDecoder.decode(linkType: linkType, bytes) else {
            counters.malformed += 1
            return
        }
        let payload = UnsafeRawBufferPointer(rebasing: bytes[packet.payloadOffset...])
        guard let content = ContentParser.parse(payload, udp: packet.transport == .udp) else {
            counters.unidentified += 1
            return
        }
        tracker.inspected(content, packet: packet, now: now)
    }

    /// Kernel counts, summed over the captures, closed ones too.
    var statistics: PacketTap.Statistics {
        captures.reduce(into: closedStatistics) { total, capture in
            let s = capture.tap.statistics()
            total.received += s.received
            total.dropped += s.dropped
            total.interfaceDropped += s.interfaceDropped
        }
    }

    /// Drops start: an agent.health finding, at most once a minute.
    private func checkDrops(time: LoopTime) {
        let dropped = statistics.dropped
        guard dropped > dropsReported, time.monotonic >= nextDropReport else { return }
        let reason = "the packet tap's kernel buffer dropped \(dropped - dropsReported) packets (\(dropped) since start)"
        log.warning(reason)
        health.report([reason], time: time.realtime)
        dropsReported = dropped
        nextDropReport = time.monotonic + 60_000
    }

    func status(enabled: Bool) -> AgentStatus.Inspection {
        let s = statistics
        let flows = tracker.counters
        return AgentStatus.Inspection(
            enabled: enabled, interfaces: captures.map(\.label), packets: counters.packets, kernelDropped: Int(s.dropped),
            malformed: counters.malformed, unidentified: counters.unidentified, identified: flows.packetsInspected,
            matchedToFlows: flows.packetsMatched, promoted: flows.promoted)
    }
}
