import HostState

/// A process's unconnected datagrams that are no transfer (not to port 69, not of a TFTP
/// client, not on a TFTP session's socket), counted per two-second window. Each one costs an
/// audit record made in the sender's own time (about 15 µs here, `bench/rule_cost.py`): a DNS
/// server or a metrics client sending thousands a second runs at a fifth of its speed.
struct DatagramRates {
    static let windowMilliseconds: Int64 = 2000
    static let maximumSenders = 4096

    private var windows: [Int32: (start: Int64, count: Int)] = [:]

    /// Counts one datagram of `pid`; true once per window, when it reaches `perSecond`.
    mutating func note(pid: Int32, time: Int64, perSecond: Int) -> Bool {
        if windows.count >= Self.maximumSenders {
            windows = windows.filter { time - $0.value.start < Self.windowMilliseconds }
            if windows.count >= Self.maximumSenders { windows.removeAll() }
        }
        var window = windows[pid] ?? (time, 0)
        if time - window.start >= Self.windowMilliseconds { window = (time, 0) }
        window.count += 1
        windows[pid] = window
        return window.count == perSecond * Int(Self.windowMilliseconds / 1000)
    }
}

extension FlowTracker {
    /// One unconnected datagram of `process` that is no transfer: past the flood rate the
    /// observer hears of the process, so that its datagrams stop being audited one by one.
    func noteDatagram(of process: ProcessRecord, time: Int64) {
        guard settings.datagramFloodPerSecond > 0, datagramRates.note(pid: process.pid, time: time, perSecond: settings.datagramFloodPerSecond)
        else { return }
        // A TFTP session's bytes are these records.
        guard !udpSessions.keys.contains(where: { $0.pid == process.pid }) else { return }
        observer.sendsManyDatagrams(process)
    }
}
