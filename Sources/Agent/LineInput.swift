import AuditIngest

#if canImport(Glibc)
    import Glibc
#endif

/// Reads a file descriptor in large chunks and hands out its lines.
struct LineInput {
    let fd: Int32
    let name: String
    private var splitter = LineSplitter()
    private var chunk = [UInt8](repeating: 0, count: 1 << 20)

    init(fd: Int32, name: String) {
        self.fd = fd
        self.name = name
    }

    enum ReadResult {
        case data, endOfInput, wouldBlock
        case failed(Int32)
    }

    /// Reads once and feeds the complete lines to the pipeline.
    mutating func readOnce(into pipeline: Pipeline, arrivalTime: Int64) -> ReadResult {
        let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if count < 0 {
            if errno == EINTR { return .data }
            if errno == EAGAIN { return .wouldBlock }
            return .failed(errno)
        }
        if count == 0 { return .endOfInput }
        let name = self.name
        chunk.withUnsafeBytes { bytes in
            splitter.feed(UnsafeRawBufferPointer(rebasing: bytes[0..<count])) { line, number in
                deliver(line, number, name, pipeline, arrivalTime)
            }
        }
        return .data
    }

    /// The last line of a stream that did not end in a newline.
    mutating func finish(into pipeline: Pipeline) {
        let name = self.name
        splitter.finish { line, number in deliver(line, number, name, pipeline, 0) }
    }
}

@inline(__always)
private func deliver(_ line: LineSplitter.Line, _ number: Int, _ name: String, _ pipeline: Pipeline, _ arrivalTime: Int64) {
    switch line {
    case .text(let bytes):
        pipeline.ingest(line: bytes, position: "\(name):\(number)", arrivalTime: arrivalTime)
    case .tooLong(let length):
        pipeline.malformed(.tooLong(length), "\(name):\(number)")
    }
}
