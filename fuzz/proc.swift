// Fuzz target: what /proc and the executables on disk hand the agent, which a process can
// shape (its name in stat, its cgroup path, the notes of an ELF it runs): the stat line, the
// cgroup file, an fd link, ELF notes. The first byte picks the parser.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzProc(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let bytes = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    switch data[0] % 4 {
    case 0: _ = ProcFS.parseStat(bytes[...])
    case 1: _ = ContainerIdentity.parse(cgroup: String(decoding: bytes, as: UTF8.self))
    case 2:
        _ = ProcFS.classifyStdin(bytes[...])
        _ = ProcFS.bracketedNumber(bytes[...], prefix: "socket:[")
    default: _ = ProgramCatalog.gnuBuildID(inNotes: bytes)
    }
    return 0
}
