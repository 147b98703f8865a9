/// Whether the agent hears a network namespace's socket closes now. While it listens, the
/// kernel defers every socket's destruction in that namespace to a workqueue that builds a
/// notification first: a host's fastest connect loop loses a third of its rate to that alone.
/// Past `perSecond` closes (counted over short windows) the gate shuts for `pauseMilliseconds`,
/// then opens to measure again. Flows that close meanwhile keep the counters their last poll read.
public struct CloseFloodGate: Sendable {
    public static let windowMilliseconds: Int64 = 250

    /// Closes a second past which the gate shuts; 0: never.
    public let perSecond: Int
    public let pauseMilliseconds: Int64
    private var windowStart: Int64?
    private var inWindow = 0
    /// Until when the gate is shut; nil while open.
    public private(set) var shutUntil: Int64?
    private var openedAt: Int64?

    public init(perSecond: Int, pauseMilliseconds: Int64) {
        self.perSecond = perSecond
        self.pauseMilliseconds = pauseMilliseconds
    }

    public var isShut: Bool { shutUntil != nil }

    public enum Verdict: Equatable, Sendable {
        case open
        /// Shut now: a flood begins, or one goes on (it shut again in the first window after
        /// the last pause).
        case shut(continuing: Bool)
    }

    /// Counts `closes` heard at `now`: shut now when they make a flood.
    public mutating func heard(_ closes: Int, now: Int64) -> Verdict {
        guard perSecond > 0, shutUntil == nil, closes > 0 else { return .open }
        if let start = windowStart, now - start < Self.windowMilliseconds {
            inWindow += closes
        } else {
            (windowStart, inWindow) = (now, closes)
        }
        guard inWindow * 1000 > perSecond * Int(Self.windowMilliseconds) else { return .open }
        let continuing = openedAt.map { now - $0 <= 2 * Self.windowMilliseconds } ?? false
        shutUntil = now + pauseMilliseconds
        (windowStart, inWindow, openedAt) = (nil, 0, nil)
        return .shut(continuing: continuing)
    }

    /// True once the pause is over: the gate opens now and measures again.
    public mutating func opens(now: Int64) -> Bool {
        guard let until = shutUntil, now >= until else { return false }
        (shutUntil, openedAt) = (nil, now)
        return true
    }

    /// Shut again at once (the groups could not be joined again): try after another pause.
    public mutating func staysShut(now: Int64) { shutUntil = now + pauseMilliseconds }
}
