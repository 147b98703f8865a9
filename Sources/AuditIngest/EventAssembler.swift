/// The records of one event, in arrival order (EOE itself is not kept).
public struct AuditEvent: Sendable {
    public enum Completion: String, Sendable {
        /// The kernel's end-of-event record arrived.
        case endOfEvent = "eoe"
        /// A type that never has more than one record.
        case singleRecord = "single"
        /// In a stream without EOE (auditd's log): PROCTITLE, the last record the kernel
        /// writes for a syscall event, arrived.
        case processTitle = "proctitle"
        /// No record came for the event within the timeout (log time or wall time).
        case timeout
        /// The input ended or the pending table was full.
        case flush
    }

    public var key: EventKey
    public var records: [AuditRecord]
    public var completion: Completion
    /// Something the event should have is missing: EOE in a stream that carries EOE, the
    /// SYSCALL record of a syscall event, or PATH records announced by `items=`.
    public var partial: Bool

    /// SYSCALL for syscall events, otherwise the type of the first record.
    public var type: AuditRecordType {
        records.contains(where: { $0.type == .syscall }) ? .syscall : (records.first?.type ?? .endOfEvent)
    }

    public func first(_ type: AuditRecordType) -> AuditRecord? { records.first { $0.type == type } }
}

public struct AssemblerSettings: Sendable {
    /// An event with no new record for this long in log time (the newest stamp seen) is complete.
    public var logTimeoutMilliseconds: Int64
    /// The same on the wall clock, for live sources where the stream can go quiet.
    public var arrivalTimeoutMilliseconds: Int64
    /// Above this many open events the oldest are completed early (memory bound).
    public var maximumPendingEvents: Int

    public init(logTimeoutMilliseconds: Int64 = 3000, arrivalTimeoutMilliseconds: Int64 = 3000, maximumPendingEvents: Int = 2048) {
        self.logTimeoutMilliseconds = logTimeoutMilliseconds
        self.arrivalTimeoutMilliseconds = arrivalTimeoutMilliseconds
        self.maximumPendingEvents = maximumPendingEvents
    }
}

public struct AssemblyCounters: Sendable, Equatable {
    public var records = 0
    public var events = 0
    public var partialEvents = 0
    public var completedByTimeout = 0
    public var completedEarly = 0
    /// Serial numbers never seen: events the kernel or a forwarder lost.
    public var sequenceGaps = 0
}

/// Groups records into events by (time, serial, node). Records of different events may
/// interleave. Timeouts run on the time since an event's *last* record, not its stamp: the
/// stamp is taken at syscall entry, so a slow syscall's records arrive long after it.
public final class EventAssembler {
    private struct Pending {
        var records: [AuditRecord]
        /// The stream's newest log time when the event last grew, not the event's own stamp: a
        /// syscall is stamped at its entry, and one that blocked (an accept waiting for a
        /// client) comes stamped seconds before the records around it.
        var lastStreamTime: Int64
        var lastArrival: Int64
    }

    public let settings: AssemblerSettings
    public private(set) var counters = AssemblyCounters()
    private let emit: (AuditEvent) -> Void
    private var pending: [EventKey: Pending] = [:]
    /// Keys of pending events in the order they opened (some completed since): the memory
    /// bound completes the oldest without sorting every open event.
    private var opened: [EventKey] = []
    private var openedHead = 0
    private var sequences: [String?: SerialTracker] = [:]
    private var newestLogTime: Int64 = 0
    private var lastSweepLogTime: Int64 = 0
    /// Set once an EOE has been seen: from then on an event without one is partial.
    private var streamHasEndOfEvent = false

    public init(settings: AssemblerSettings = AssemblerSettings(), emit: @escaping (AuditEvent) -> Void) {
        self.settings = settings
        self.emit = emit
    }

    public var pendingCount: Int { pending.count }

    /// Adds one record. `arrivalTime` is a monotonic clock in milliseconds (0 for replays).
    public func add(_ record: consuming AuditRecord, arrivalTime: Int64 = 0) {
        counters.records += 1
        // Consumed: the record moves into its event without a copy (a retain of its storage).
        let key = record.key, type = record.type
        let logTime = key.time.totalMilliseconds
        if logTime > newestLogTime { newestLogTime = logTime }

        if type == .endOfEvent {
            streamHasEndOfEvent = true
            if let event = pending.removeValue(forKey: key) {
                complete(key, event.records, .endOfEvent)
            } else {
                observeSerial(key)
            }
        } else if type.isSingleRecordEvent, pending[key] == nil {
            // auditd numbers its own DAEMON_* records from a counter of its own.
            if !type.isDaemonMessage { observeSerial(key) }
            complete(key, [record], .singleRecord)
        } else if type == .proctitle, !streamHasEndOfEvent, let index = pending.index(forKey: key) {
            // Without EOE, such an event would wait for the timeout or the memory bound: 2,048
            // open events in a replay of auditd's log.
            var records = pending.remove(at: index).value.records
            records.append(record)
            complete(key, records, .processTitle)
        } else if let index = pending.index(forKey: key) {
            pending.values[index].records.append(record)
            pending.values[index].lastStreamTime = newestLogTime
            pending.values[index].lastArrival = arrivalTime
        } else {
            observeSerial(key)
            var records = [AuditRecord]()
            // An execve's SYSCALL, EXECVE, CWD, PATHs (three for a script), PROCTITLE and
            // BPRM_FCAPS fit without growing: 6 made every execve in auditd's log reallocate.
            records.reserveCapacity(8)
            records.append(record)
            pending[key] = Pending(records: records, lastStreamTime: newestLogTime, lastArrival: arrivalTime)
            opened.append(key)
            if pending.count > settings.maximumPendingEvents { completeOldest() }
            // Most events complete by EOE or timeout: forget their keys now and then.
            if opened.count - openedHead > 4 * max(settings.maximumPendingEvents, 1024) {
                opened = opened[openedHead...].filter { pending[$0] != nil }
                openedHead = 0
            }
        }

        // Sweep a few times per second of log time rather than per record.
        if newestLogTime - lastSweepLogTime >= 250 {
            lastSweepLogTime = newestLogTime
            sweep(logCutoff: newestLogTime - settings.logTimeoutMilliseconds, arrivalCutoff: nil)
        }
    }

    /// Completes events that went quiet on the wall clock; live sources call this periodically.
    public func tick(arrivalTime: Int64) {
        sweep(logCutoff: nil, arrivalCutoff: arrivalTime - settings.arrivalTimeoutMilliseconds)
    }

    /// Completes everything still open (end of input, shutdown).
    public func flush() {
        let keys = pending.keys.sorted(by: Self.streamOrder)
        for key in keys {
            complete(key, pending.removeValue(forKey: key)!.records, .flush)
        }
        forEachSequence { $0.finish() }
    }

    private func sweep(logCutoff: Int64?, arrivalCutoff: Int64?) {
        var expired: [EventKey] = []
        for (key, event) in pending {
            if let logCutoff, event.lastStreamTime < logCutoff {
                expired.append(key)
            } else if let arrivalCutoff, event.lastArrival < arrivalCutoff {
                expired.append(key)
            }
        }
        expired.sort(by: Self.streamOrder)
        for key in expired {
            counters.completedByTimeout += 1
            complete(key, pending.removeValue(forKey: key)!.records, .timeout)
        }
        forEachSequence { $0.expire() }
    }

    /// Each node's serial tracker, changed in place, its gaps counted. Assigning through the
    /// keys while iterating them copied the dictionary at every sweep, and a live agent sweeps
    /// every loop turn.
    private func forEachSequence(_ body: (inout SerialTracker) -> Int) {
        var index = sequences.startIndex
        while index != sequences.endIndex {
            counters.sequenceGaps += body(&sequences.values[index])
            sequences.formIndex(after: &index)
        }
    }

    /// Memory bound: completes the older half of the open events (by when they opened), in
    /// stream order.
    private func completeOldest() {
        var oldest: [EventKey] = []
        oldest.reserveCapacity(pending.count / 2)
        while oldest.count < pending.count / 2, openedHead < opened.count {
            let key = opened[openedHead]
            openedHead += 1
            if pending[key] != nil { oldest.append(key) }
        }
        for key in oldest.sorted(by: Self.streamOrder) {
            guard let event = pending.removeValue(forKey: key) else { continue }
            counters.completedEarly += 1
            complete(key, event.records, .flush)
        }
        if openedHead > opened.count / 2 {
            opened.removeFirst(openedHead)
            openedHead = 0
        }
    }

    private static func streamOrder(_ a: EventKey, _ b: EventKey) -> Bool {
        a.time != b.time ? a.time < b.time : a.serial < b.serial
    }

    private func observeSerial(_ key: EventKey) {
        counters.sequenceGaps += sequences[key.node, default: SerialTracker()].observe(key.serial)
    }

    private func complete(_ key: EventKey, _ records: [AuditRecord], _ completion: AuditEvent.Completion) {
        let partial = Self.isPartial(records, completion: completion, expectEndOfEvent: streamHasEndOfEvent)
        counters.events += 1
        if partial { counters.partialEvents += 1 }
        emit(AuditEvent(key: key, records: records, completion: completion, partial: partial))
    }

    static func isPartial(_ records: [AuditRecord], completion: AuditEvent.Completion, expectEndOfEvent: Bool) -> Bool {
        guard completion != .singleRecord else { return false }
        guard records.contains(where: { $0.type.isSyscallAuxiliary }) else { return false }
        // By index: a copy of the record would retain and release every array it holds.
        guard let syscall = records.firstIndex(where: { $0.type == .syscall }) else {
            // Records that stand before SYSCALL (CONFIG_CHANGE, LOGIN, EVENT_LISTENER) may come alone.
            return records.contains { $0.type != .configChange && $0.type != .login && $0.type != .eventListener && !$0.type.isSingleRecordEvent }
        }
        if completion != .endOfEvent && expectEndOfEvent { return true }
        if let items = records[syscall].integer("items"), items > records.count(where: { $0.type == .path }) { return true }
        return false
    }
}

/// Counts serial numbers that never arrived. Events complete out of order, so a serial
/// is only counted missing once the stream has moved `window` serials past it.
struct SerialTracker {
    static let window: UInt32 = 4096
    private var newest: UInt32?
    private var missing: Set<UInt32> = []
    private var missingOrder: [UInt32] = []
    private var missingHead = 0

    /// Records `serial`; returns the gaps too large to wait for (others come from `expire`).
    mutating func observe(_ serial: UInt32) -> Int {
        guard let newest else { self.newest = serial; return 0 }
        // Serial arithmetic: the counter wraps at 2^32.
        let distance = Int32(bitPattern: serial &- newest)
        if distance > 0 {
            self.newest = serial
            guard distance <= Self.window else { return Int(distance) - 1 }
            var next = newest &+ 1
            while next != serial {
                missing.insert(next); missingOrder.append(next)
                next &+= 1
            }
        } else if distance < 0 {
            missing.remove(serial)
        }
        return 0
    }

    /// Gaps older than the window.
    mutating func expire() -> Int {
        guard let newest else { return 0 }
        var gaps = 0
        while missingHead < missingOrder.count, newest &- missingOrder[missingHead] > Self.window {
            if missing.remove(missingOrder[missingHead]) != nil { gaps += 1 }
            missingHead += 1
        }
        if missingHead > 4096 { missingOrder.removeFirst(missingHead); missingHead = 0 }
        return gaps
    }

    /// All gaps still open.
    mutating func finish() -> Int {
        let gaps = missing.count
        missing.removeAll(); missingOrder.removeAll(); missingHead = 0
        return gaps
    }
}
