// Fuzz target: a control request line as agentctl (or anyone who reaches the socket) sends it.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzControl(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let line = Array(UnsafeBufferPointer(start: data, count: size))
    if let request = try? ControlProtocol.decode(ControlRequest.self, from: line) {
        _ = ControlProtocol.line(request)
    }
    _ = try? ControlProtocol.decode(ControlResponse.self, from: line)
    return 0
}
