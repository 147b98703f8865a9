import AuditIngest
import Foundation
import TestSupport
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
        let key = try #require(catalog.file(at: copy))
        func path(inode: UInt64, device: UInt64) throws -> AuditRecord {
            // glibc's dev_t back to the kernel's major:minor in hex, as PATH records write it.
            let major = device >> 8 & 0xfff | device >> 32 & 0xffff_f000, minor = device & 0xff | device >> 12 & 0xffff_ff00
            let dev = String(major, radix: 16) + ":" + String(minor, radix: 16)
            return try parse("type=PATH msg=audit(1.000:1): item=0 name=\"\(copy)\" inode=\(inode) dev=\(dev) mode=0100755")
        }
        #expect(ProcessTable.isAudited(key, in: [try path(inode: key.inode, device: key.device)]))
        #expect(!ProcessTable.isAudited(key, in: [try path(inode: key.inode &+ 1, device: key.device)]))
        #expect(!ProcessTable.isAudited(key, in: []))
        #expect(catalog.identity(of: key, at: copy)?.name == "tnftp")
    }

    /// A binary without a build-id (Go, stripped, packed) is known by its content: a copy is
    /// the program, a file of the same size with other bytes is not, and a file of another size
    /// is not even read.
    @Test func aBinaryWithoutABuildIDIsKnownByItsContent() throws {
        let installed = try makeTemporaryDirectory()
        let elsewhere = try makeTemporaryDirectory()
        defer {
            try? FileManager.default.removeItem(atPath: installed)
            try? FileManager.default.removeItem(atPath: elsewhere)
        }
        // An ELF header with no program headers: no note, no build-id.
        var binary = [UInt8](repeating: 0, count: 64)
        binary[0...5] = [0x7F, 0x45, 0x4C, 0x46, 2, 1]
        binary += (0..<20_000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
        try SyntheticBinary.write(binary, to: installed + "/rclone")
        let catalog = ProgramCatalog(names: ["rclone"], directories: [installed])
        #expect(ProgramCatalog.buildID(path: installed + "/rclone") == nil)
        #expect(catalog.count == 1)
        try SyntheticBinary.write(binary, to: elsewhere + "/.sync")
        #expect(catalog.identify(path: elsewhere + "/.sync") == ProgramIdentity(name: "rclone", path: installed + "/rclone"))
        var other = binary
        other[100] ^= 0xFF
        try SyntheticBinary.write(other, to: elsewhere + "/other")
        #expect(catalog.identify(path: elsewhere + "/other") == nil)
        #expect(catalog.counters.filesHashed == 2)
        try SyntheticBinary.write(binary + [0], to: elsewhere + "/longer")
        #expect(catalog.identify(path: elsewhere + "/longer") == nil)
        #expect(catalog.counters.filesHashed == 2, "another size is no known program: not hashed")
        _ = catalog.identify(path: elsewhere + "/.sync")
        #expect(catalog.counters.filesHashed == 2, "each file version once")
        // An upgrade replaces the installed file: the catalog learns the new one, and a copy of
        // the new version is the program then.
        catalog.refreshIfChanged()
        #expect(catalog.counters.relearned == 0, "nothing changed")
        try SyntheticBinary.write(other, to: installed + "/rclone.new")
        #expect(rename(installed + "/rclone.new", installed + "/rclone") == 0)
        catalog.refreshIfChanged()
        #expect(catalog.counters.relearned == 1)
        #expect(catalog.identify(path: elsewhere + "/other") == ProgramIdentity(name: "rclone", path: installed + "/rclone"))
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

/// Containers from /proc/<pid>/cgroup as each runtime names them (v1 and v2 lines).
@Suite struct ContainerIdentityTests {
    static let id = "3f4e8a2b1c9d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f"

    @Test func eachRuntimesNaming() {
        func parse(_ text: String) -> ContainerIdentity? { ContainerIdentity.parse(cgroup: text) }
        #expect(parse("0::/system.slice/docker-\(Self.id).scope\n") == ContainerIdentity(id: Self.id, runtime: "docker"))
        #expect(parse("12:pids:/docker/\(Self.id)\n11:memory:/docker/\(Self.id)\n") == ContainerIdentity(id: Self.id, runtime: "docker"))
        let uid = "6f1e3a2b-4c5d-4e6f-8a9b-0c1d2e3f4a5b"
        #expect(
            parse(
                "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod6f1e3a2b_4c5d_4e6f_8a9b_0c1d2e3f4a5b.slice/cri-containerd-\(Self.id).scope"
            )
                == ContainerIdentity(id: Self.id, runtime: "containerd", podUID: uid))
        #expect(parse("3:cpu:/kubepods/besteffort/pod\(uid)/\(Self.id)") == ContainerIdentity(id: Self.id, runtime: "kubernetes", podUID: uid))
        #expect(parse("0::/kubepods.slice/kubepods-pod\(uid.replacingOccurrences(of: "-", with: "_")).slice/crio-\(Self.id).scope")?.runtime == "cri-o")
        #expect(parse("0::/machine.slice/libpod-\(Self.id).scope/container") == ContainerIdentity(id: Self.id, runtime: "podman"))
        #expect(parse("0::/machine.slice/libpod-conmon-\(Self.id).scope") == nil, "conmon is the monitor, not the container")
        #expect(parse("0::/machine.slice/machine-web\\x2d1.scope/payload") == ContainerIdentity(id: "web-1", runtime: "systemd-nspawn"))
        #expect(parse("0::/lxc.payload.db/init.scope") == ContainerIdentity(id: "db", runtime: "lxc"))
        #expect(parse("4:memory:/lxc/db\n") == ContainerIdentity(id: "db", runtime: "lxc"))
        // The host: services, sessions, the root; and an id of the wrong shape.
        #expect(parse("0::/system.slice/ssh.service\n") == nil && parse("0::/user.slice/user-0.slice/session-1.scope") == nil && parse("0::/") == nil)
        #expect(parse("0::/system.slice/docker-\(Self.id.prefix(63)).scope") == nil)
        // v1 and v2 disagree: the v2 line wins.
        #expect(parse("4:memory:/docker/\(Self.id)\n0::/system.slice/docker-\(String(Self.id.reversed())).scope")?.id == String(Self.id.reversed()))
    }
}
