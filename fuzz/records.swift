// Fuzz target: audit records (log lines, audisp lines) through the parser and the assembler,
// and every value decoder on what parses.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRecords(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    let assembler = EventAssembler(settings: AssemblerSettings(logTimeoutMilliseconds: 1000, arrivalTimeoutMilliseconds: 1000, maximumPendingEvents: 64)) {
        event in
        _ = FieldDecoding.argv(event.records)
        for record in event.records {
            _ = record.rawValue("saddr").flatMap { SocketAddress(hex: $0) }
            _ = record.value("proctitle")
            _ = record.interpretedString("UID")
            _ = record.deviceNumber("dev")
        }
    }
    var splitter = LineSplitter()
    splitter.feed(bytes) { line, _ in
        if case .text(let text) = line, let record = try? RecordParser.parseLine(text) { assembler.add(record) }
    }
    splitter.finish { line, _ in
        if case .text(let text) = line, let record = try? RecordParser.parseLine(text) { assembler.add(record) }
    }
    if size >= 2 { _ = try? RecordParser.parseNetlink(type: UInt16(bytes[0]) + 1300, body: UnsafeRawBufferPointer(rebasing: bytes[2...])) }
    assembler.flush()
    return 0
}
