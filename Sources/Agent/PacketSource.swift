import AgentConfig
import Control
import Flows
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

    private let taps: [(interface: String, tap: PacketTap)]
    private let tracker: FlowTracker
    private let health: HealthChannel
    private let log: Logger
    private(set) var counters = Counters()
    private var dropsReported: UInt64 = 0
    private var nextStatistics: Int64 = 0
    private var nextDropReport: Int64 = 0
    /// Packets read per interface per loop turn: a burst waits for the next turn, in the
    /// kernel's buffer, rather than hold up the audit stream.
    private static let batch = 512

    /// Opens a tap on each configured interface; nil (logged) when none opens.
    static func open(_ settings: AgentConfiguration.Inspection, tracker: FlowTracker, health: HealthChannel, log: Logger) -> PacketSource? {
        guard settings.enabled else {
            log.info("inspection: off ([inspection] enabled = false)")
            return nil
        }
        var taps: [(String, PacketTap)] = []
        for interface in settings.interfaces {
            do {
                taps.append(
                    (
                        interface,
                        try PacketTap(
                            interface: interface, snapLength: settings.snapLength, bufferBytes: settings.bufferBytes, filter: CaptureFilter.expression)
                    ))
            } catch {
                log.error("inspection: cannot capture on \(interface): \(error)")
            }
        }
        guard !taps.isEmpty else { return nil }
        log.info("inspection: capturing the first \(settings.snapLength) bytes of candidate packets on \(taps.map(\.0).joined(separator: ", "))")
        return PacketSource(taps: taps, tracker: tracker, health: health, log: log)
    }

    private init(taps: [(String, PacketTap)], tracker: FlowTracker, health: HealthChannel, log: Logger) {
        self.taps = taps
        self.tracker = tracker
        self.health = health
        self.log = log
    }

    func descriptors(into fds: inout [pollfd]) {
        for (_, tap) in taps { fds.append(pollfd(fd: tap.descriptor, events: Int16(POLLIN), revents: 0)) }
    }

    func service(_ polled: ArraySlice<pollfd>, time: LoopTime) -> LoopRequest {
        for ((_, tap), fd) in zip(taps, polled) where fd.revents != 0 {
            tap.read(limit: Self.batch) { bytes, _ in inspect(bytes, linkType: tap.linkType, now: time.realtime) }
        }
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

    /// Kernel drops, summed over the taps.
    var statistics: PacketTap.Statistics {
        taps.reduce(into: PacketTap.Statistics()) { total, entry in
            let s = entry.tap.statistics()
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
            enabled: enabled, interfaces: taps.map(\.interface), packets: counters.packets, kernelDropped: Int(s.dropped),
            malformed: counters.malformed, unidentified: counters.unidentified, identified: flows.packetsInspected,
            matchedToFlows: flows.packetsMatched, promoted: flows.promoted)
    }
}
