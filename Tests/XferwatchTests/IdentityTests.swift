import Foundation
import Testing

@testable import HostState

/// Programs known by their binary: the ELF build-id of the installed clients, whatever a copy
/// is called; files that are no ELF, or hostile ones, identify as nothing.
@Suite struct IdentityTests {
    @Test func aCopyUnderAnyNameIsTheProgramItIs() throws {
        let catalog = ProgramCatalog(names: ["ftp", "tnftp", "lftp", "busybox"])
        #expect(catalog.count >= 3, "tnftp, lftp and busybox are installed by make test")
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let copy = directory + "/.cache-kworker"
        try FileManager.default.copyItem(atPath: "/usr/bin/tnftp", toPath: copy)
        #expect(catalog.identify(path: copy) == ProgramIdentity(name: "tnftp", path: "/usr/bin/tnftp"))
        // /usr/bin/ftp is a link through /etc/alternatives: the program is tnftp.
        #expect(catalog.identify(path: "/usr/bin/ftp")?.name == "tnftp")
        #expect(catalog.identify(path: "/bin/true") == nil, "not a program the catalog learned")
        #expect(catalog.identify(path: directory + "/missing") == nil)
        // Each distinct file is read once.
        let read = catalog.counters.filesRead
        _ = catalog.identify(path: copy)
        #expect(catalog.counters.filesRead == read)
        // The inode check for a process that is gone: another file at the path is not it.
        #expect(catalog.identify(path: copy, inodeAmong: [1]) == nil)
    }

    @Test func hostileAndForeignFilesIdentifyAsNothing() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let script = directory + "/script.sh"
        try "#!/bin/sh\necho hi\n".write(toFile: script, atomically: true, encoding: .utf8)
        #expect(ProgramCatalog.buildID(path: script) == nil)
        // An ELF header claiming program headers far beyond the file.
        var header = [UInt8](repeating: 0, count: 64)
        header[0...5] = [0x7F, 0x45, 0x4C, 0x46, 2, 1]
        header[0x20] = 0xFF; header[0x27] = 0x7F  // e_phoff huge
        header[0x36] = 56; header[0x38] = 255
        let forged = directory + "/forged"
        FileManager.default.createFile(atPath: forged, contents: Data(header))
        #expect(ProgramCatalog.buildID(path: forged) == nil)
        // Notes whose sizes overrun their segment, or loop, end the walk.
        let overrun: [UInt8] = [4, 0, 0, 0, 0xFF, 0xFF, 0, 0, 3, 0, 0, 0, 0x47, 0x4E, 0x55, 0]
        #expect(ProgramCatalog.gnuBuildID(inNotes: overrun) == nil)
        let good: [UInt8] = [4, 0, 0, 0, 4, 0, 0, 0, 3, 0, 0, 0, 0x47, 0x4E, 0x55, 0, 0xDE, 0xAD, 0xBE, 0xEF]
        #expect(ProgramCatalog.gnuBuildID(inNotes: good) == [0xDE, 0xAD, 0xBE, 0xEF])
        // A real binary has one.
        #expect((ProgramCatalog.buildID(path: "/usr/bin/tnftp")?.count ?? 0) >= 16)
    }
}
