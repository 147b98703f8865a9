#if canImport(Glibc)
    import Glibc
#endif

/// One line on standard error, written at once (the command-line tools' messages).
public func printError(_ text: String) {
    let bytes = Array((text + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}
