// Fuzz target: what a RELP receiver answers, after an open and two syslog commands; the first
// byte says where the answer is cut in two, as TCP may deliver it.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRELP(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Array(UnsafeBufferPointer(start: data, count: size))
    guard !bytes.isEmpty else { return 0 }
    var client = RELPClient()
    _ = client.openFrame(software: "fuzz")
    var frames: [UInt8] = []
    client.appendSyslog(Array("one".utf8), to: &frames)
    client.appendSyslog(Array("two".utf8), to: &frames)
    let cut = max(1, min(Int(bytes[0]), bytes.count))
    do {
        _ = try client.receive(bytes[1..<cut])
        _ = try client.receive(bytes[cut...])
    } catch {}
    return 0
}
