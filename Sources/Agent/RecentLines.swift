/// The last lines of a stream (alerts, flows), bounded in count and bytes.
final class RecentLines {
    private let capacity: Int
    private let byteLimit: Int
    private var lines: [[UInt8]] = []
    private var bytes = 0

    init(capacity: Int, byteLimit: Int) {
        self.capacity = capacity
        self.byteLimit = byteLimit
    }

    func append(_ line: [UInt8]) {
        lines.append(line)
        bytes += line.count
        var excess = 0
        while lines.count - excess > capacity || (bytes > byteLimit && lines.count - excess > 1) {
            bytes -= lines[excess].count
            excess += 1
        }
        if excess > 0 { lines.removeFirst(excess) }
    }

    /// The last `count` lines, oldest first.
    func last(_ count: Int) -> ArraySlice<[UInt8]> { lines.suffix(max(0, count)) }
    var all: [[UInt8]] { lines }
}
