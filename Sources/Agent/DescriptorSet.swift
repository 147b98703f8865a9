import CLinux

#if canImport(Glibc)
    import Glibc
#endif

/// The loop's descriptors in an epoll set kept between turns: a source's are registered again
/// only when they change, so a wait costs the same however many there are. poll() added and
/// removed every descriptor on every wait, 13% of the agent's time at 100 execve/s (9 of them).
/// What a turn reports is what poll() would: the same revents bits, level-triggered.
final class DescriptorSet {
    private let epoll: Int32
    /// Per source: its descriptors as registered, and its `descriptorChanges` then.
    private var registered: [(fds: [pollfd], changes: Int)]
    /// Per source: descriptors epoll refuses, with what poll() says of them at every turn:
    /// regular files and devices without a poll method (EPERM) are readable and writable,
    /// a closed descriptor (EBADF) is POLLNVAL.
    private var refused: [[pollfd]]
    private var anyRefused = false
    private var readyDescriptors = [Int32](repeating: 0, count: 32)
    private var readyEvents = [UInt32](repeating: 0, count: 32)

    init?(sourceCount: Int) {
        epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epoll >= 0 else { return nil }
        registered = Array(repeating: ([], 0), count: sourceCount)
        refused = Array(repeating: [], count: sourceCount)
    }

    deinit { close(epoll) }

    /// Brings the set in line with this turn's descriptors (`counts[i]` of them from source i,
    /// in order; `changes[i]` its count of descriptors closed). Every removal comes before any
    /// addition: a number one source closed may be another's new descriptor.
    func update(_ fds: [pollfd], counts: [Int], changes: [Int]) {
        var changed: [(index: Int, slice: ArraySlice<pollfd>)] = []
        var offset = 0
        for index in counts.indices {
            let slice = fds[offset..<offset + counts[index]]
            offset += counts[index]
            let old = registered[index]
            if old.changes == changes[index] && old.fds.elementsEqual(slice, by: { $0.fd == $1.fd && $0.events == $1.events }) { continue }
            changed.append((index, slice))
            for entry in old.fds where entry.fd >= 0 { _ = xw_epoll_control(epoll, xw_epoll_ctl_del, entry.fd, 0) }
        }
        for (index, slice) in changed {
            registered[index] = (Array(slice), changes[index])
            refused[index].removeAll()
            for entry in slice where entry.fd >= 0 {
                let events = slice.reduce(UInt32(0)) { $1.fd == entry.fd ? $0 | UInt32(UInt16(bitPattern: $1.events)) : $0 }
                if xw_epoll_control(epoll, xw_epoll_ctl_add, entry.fd, events) == 0 { continue }
                switch errno {
                case EEXIST: continue  // the same descriptor twice in the slice: added with both's events
                case EPERM: refused[index].append(pollfd(fd: entry.fd, events: entry.events, revents: entry.events & Self.alwaysReadyBits))
                default: refused[index].append(pollfd(fd: entry.fd, events: entry.events, revents: Int16(POLLNVAL)))
                }
            }
        }
        if !changed.isEmpty { anyRefused = refused.contains { !$0.isEmpty } }
    }

    private static let alwaysReadyBits = Int16(POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM)

    /// Waits up to `timeout` ms (not at all while a refused descriptor is "ready") and sets each
    /// of `fds`' revents; returns how many are ready, or -1 with errno set.
    func wait(_ fds: inout [pollfd], timeout: Int32) -> Int32 {
        let count = readyDescriptors.withUnsafeMutableBufferPointer { descriptors in
            readyEvents.withUnsafeMutableBufferPointer { events in
                xw_epoll_wait(epoll, descriptors.baseAddress, events.baseAddress, Int32(descriptors.count), anyRefused ? 0 : timeout)
            }
        }
        guard count >= 0 else { return -1 }
        var ready: Int32 = 0
        for index in fds.indices {
            let fd = fds[index].fd
            var revents: Int16 = 0
            for event in 0..<Int(count) where readyDescriptors[event] == fd {
                revents |= Int16(truncatingIfNeeded: readyEvents[event]) & (fds[index].events | Int16(POLLERR | POLLHUP))
            }
            if anyRefused, let entry = refused.lazy.flatMap({ $0 }).first(where: { $0.fd == fd }) { revents |= entry.revents }
            fds[index].revents = revents
            if revents != 0 { ready += 1 }
        }
        return ready
    }
}
