import AuditIngest
import HostState

/// What the flow tracker tells the stages after it (detection, printing), in event order.
public protocol FlowObserver: AnyObject {
    /// An outgoing connect (or addressed send) to an IP peer, transfer or not.
    func connected(_ process: ProcessRecord, to remote: IPAddress, port: UInt16, time: Int64)
    /// A transfer flow was attributed and classified (bytes still unknown).
    func flowStarted(_ flow: Flow)
    /// A top-level flow (with its data connections) has ended and is final.
    func flowReported(_ flow: Flow)
    /// The packet tap identified a flow's protocol by its content, or found its port carrying
    /// another protocol (`flow.content`); `previously` is what port and name had made of it.
    func flowIdentified(_ flow: Flow, previously: FlowProtocol)
    /// A process sends unconnected datagrams faster than the flood rate, none a transfer.
    func sendsManyDatagrams(_ process: ProcessRecord)
    /// The packet tap read a TFTP request that no flow or send explains (yet).
    func unexplainedTFTPRequest()
}

extension FlowObserver {
    public func flowIdentified(_ flow: Flow, previously: FlowProtocol) {}
    public func connected(_ process: ProcessRecord, to remote: IPAddress, port: UInt16, time: Int64) {}
    public func flowStarted(_ flow: Flow) {}
    public func sendsManyDatagrams(_ process: ProcessRecord) {}
    public func unexplainedTFTPRequest() {}
}
