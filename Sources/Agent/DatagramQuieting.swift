import HostState
import KernelAudit

#if canImport(Glibc)
    import Glibc
#endif

/// Processes that flood unconnected datagrams which are no transfer (a DNS or syslog server, a
/// metrics client): their sendto and sendmsg stop being audited one by one, with `never` rules
/// for their pid, so the host's own work is not slowed by records nobody uses. Only as the
/// audit daemon. Auditing comes back when the process exits, when the tap reads a TFTP request
/// no flow explains (a flood cannot hide a transfer behind it), and at stop.
final class DatagramQuieting {
    static let maximumQuieted = 32

    private let session: AuditSession
    private let procfs: ProcFS
    private let perSecond: Int
    private let log: Logger
    private var quieted: [Int32: (executable: String, startTicks: UInt64?)] = [:]
    private(set) var quietedTotal = 0
    private(set) var restoredForTFTP = 0

    init(session: AuditSession, procfs: ProcFS, perSecond: Int, log: Logger) {
        self.session = session
        self.procfs = procfs
        self.perSecond = perSecond
        self.log = log
    }

    var count: Int { quieted.count }

    func quiet(_ process: ProcessRecord) {
        guard quieted[process.pid] == nil else { return }
        guard quieted.count < Self.maximumQuieted else {
            log.debug("pid \(process.pid) floods datagrams, but \(Self.maximumQuieted) processes are quieted already")
            return
        }
        do { try session.quietDatagrams(of: process.pid) } catch {
            log.warning("cannot stop auditing the datagrams of pid \(process.pid): \(error)")
            return
        }
        // Beside another audit daemon nothing was done.
        guard session.quietedSenders[process.pid] != nil else { return }
        quieted[process.pid] = (process.executable, process.startTicks)
        quietedTotal += 1
        log.info(
            "pid \(process.pid) (\(process.executable)) sends over \(perSecond) datagrams a second, none a transfer: "
                + "its sendto and sendmsg are no longer audited, until it exits or a TFTP request no flow explains is read")
    }

    /// The tap read a TFTP request that no flow explains: its sender may be one of ours.
    func tftpRequestUnexplained() {
        guard !quieted.isEmpty else { return }
        log.warning(
            "a TFTP request no flow explains: the datagrams of \(quieted.count) quieted processes (\(quieted.keys.sorted().map(String.init).joined(separator: ", "))) are audited again"
        )
        for pid in quieted.keys { session.auditDatagrams(of: pid) }
        restoredForTFTP += quieted.count
        quieted.removeAll()
    }

    /// Exited processes (or their pid now another process's) are audited again.
    func pruneExited() {
        for (pid, entry) in quieted {
            let gone = session.quietedSenders[pid] == nil || kill(pid, 0) != 0 && errno == ESRCH
            guard gone || entry.startTicks != nil && procfs.stat(pid: pid)?.startTicks != entry.startTicks else { continue }
            session.auditDatagrams(of: pid)
            quieted[pid] = nil
        }
    }

    var summary: String {
        "\(quietedTotal) datagram floods quieted, \(restoredForTFTP) audited again for an unexplained TFTP request, \(quieted.count) quieted now"
    }
}
