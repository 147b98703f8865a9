// Fuzz target: captured packets through the tap's decoder and content parsers, as every link
// type the tap opens would deliver them.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPackets(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    for linkType in [PacketDecoder.linkLinuxCooked, PacketDecoder.linkLinuxCooked2, PacketDecoder.linkEthernet, PacketDecoder.linkRaw] {
        if let packet = PacketDecoder.decode(linkType: linkType, bytes) {
            precondition(packet.payloadOffset <= size)
            let content = ContentParser.parse(UnsafeRawBufferPointer(rebasing: bytes[packet.payloadOffset...]), udp: packet.transport == .udp)
            if case .ftpCommand(let verb, let argument) = content, verb == "PASS" { precondition(argument == "<redacted>") }
            if case .ftpReply(let code, let text) = content { _ = ContentParser.passivePort(code: code, text: text) }
            if case .ftpCommand(let verb, let argument) = content { _ = ContentParser.activePort(verb: verb, argument: argument) }
        }
    }
    // The payload parsers on the raw bytes too (a payload the decoder never reaches).
    _ = ContentParser.parse(bytes, udp: false)
    _ = ContentParser.parse(bytes, udp: true)
    return 0
}
