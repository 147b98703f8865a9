import Foundation
import Runtime
import Scanning
import TestSupport
import Testing

@Suite struct ScanningTests {
    let directory: String

    init() throws {
        directory = NSTemporaryDirectory() + "xferwatch-scan-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    func shippedRules() throws -> YaraRules {
        let (rules, errors) = YaraRules.compile(globs: [Repo.path("rules/yara/*.yar")])
        #expect(errors.isEmpty, "\(errors)")
        return try #require(rules)
    }

    func scan(_ bytes: [UInt8], name: String, with scanner: FileScanner) throws -> ScanResult {
        let path = "\(directory)/\(name)"
        try SyntheticBinary.write(bytes, to: path)
        return scanner.scan(ScanTarget(path: path))
    }

    @Test func lightFTPRuleNeedsFourOfItsFiveStringsInASmallPE() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let scanner = FileScanner(rules: try shippedRules(), maximumSize: 64 << 20)

        let four = try scan(SyntheticBinary.lightFTPPE(strings: 4), name: "four.exe", with: scanner)
        #expect(four.outcome == .scanned)
        let match = try #require(four.matches.first)
        #expect(four.matches.count == 1 && match.rule == "LightFTP_fftp_x86_64")
        #expect(match.metaString("author")?.hasPrefix("Florian Roth") == true)
        #expect(match.metaString("reference") == "https://github.com/hfiref0x/LightFTP")
        #expect(match.meta("score") == .integer(50))
        #expect(match.namespace == Repo.path("rules/yara/lightftp.yar"))
        let sha = try runCommand("/usr/bin/sha256sum", ["\(directory)/four.exe"]).stdout.prefix(64)
        #expect(four.file?.sha256 == String(sha))

        #expect(try scan(SyntheticBinary.lightFTPPE(strings: 5), name: "five.exe", with: scanner).matches.map(\.rule) == ["LightFTP_fftp_x86_64"])
        #expect(try scan(SyntheticBinary.lightFTPPE(strings: 3), name: "three.exe", with: scanner).matches.isEmpty)
        // All five strings, but 300 KB: over the rule's 250 KB.
        let big = try scan(SyntheticBinary.lightFTPPE(strings: 5, size: 300 * 1024), name: "big.exe", with: scanner)
        #expect(big.outcome == .scanned && big.matches.isEmpty && big.file?.sha256 == nil)
        // Four strings without the PE header.
        #expect(try scan(SyntheticBinary.lightFTPPE(strings: 4, magic: Array("#!".utf8)), name: "four.sh", with: scanner).matches.isEmpty)
    }

    @Test func linuxLightFTPRuleWantsAnELFWithTheBanner() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let scanner = FileScanner(rules: try shippedRules(), maximumSize: 64 << 20)
        let elf: [UInt8] = [0x7f] + Array("ELF".utf8) + [UInt8](repeating: 0, count: 60)
        let banner = Array("220 LightFTP server ready\r\n".utf8) + [0]
        let config = Array("fftp.conf".utf8) + [0]
        #expect(try scan(elf + banner + config, name: "fftp", with: scanner).matches.map(\.rule) == ["LightFTP_fftp_linux"])
        #expect(try scan(elf + banner, name: "banner-only", with: scanner).matches.isEmpty)
        #expect(try scan(Array("MZ".utf8) + banner + config, name: "not-elf", with: scanner).matches.isEmpty)
    }

    /// Files are scanned a window at a time (`YaraRules.scanWindow`): what a whole-file scan
    /// finds is found across windows' ends, in the last window, and at absolute offsets.
    @Test func aFileLargerThanTheScanWindowIsScannedWhole() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let window = Int(YaraRules.scanWindow), overlap = Int(YaraRules.scanOverlap)
        let size = 3 * window
        let ruleFile = "\(directory)/windows.yar"
        try """
        rule across_a_window_end { strings: $a = "xferwatch-marker-across" condition: $a at \(window - 10) }
        rule second_window_end { strings: $a = "xferwatch-marker-second" condition: $a at \(2 * window - overlap - 5) }
        rule in_the_last_bytes { strings: $a = "xferwatch-marker-last" condition: $a at \(size - 25) and filesize == \(size) }
        rule header_and_tail { condition: uint32(0) == 0x464c457f and uint32(\(size - 4)) == 0x21646e65 }
        rule absent { strings: $a = "xferwatch-marker-absent" condition: $a }
        """.write(toFile: ruleFile, atomically: true, encoding: .utf8)
        let (compiled, errors) = YaraRules.compile(globs: [ruleFile])
        #expect(errors.isEmpty, "\(errors)")
        let scanner = FileScanner(rules: try #require(compiled), maximumSize: 64 << 20)

        var bytes = [UInt8](repeating: 0x41, count: size)
        func put(_ text: String, at offset: Int) { bytes.replaceSubrange(offset..<offset + text.utf8.count, with: Array(text.utf8)) }
        put("\u{7f}ELF", at: 0)
        put("xferwatch-marker-across", at: window - 10)
        // The second window begins `overlap` before the first ends: this one crosses its end.
        put("xferwatch-marker-second", at: 2 * window - overlap - 5)
        put("xferwatch-marker-last", at: size - 25)
        put("end!", at: size - 4)
        let result = try scan(bytes, name: "large", with: scanner)
        #expect(result.outcome == .scanned)
        #expect(Set(result.matches.map(\.rule)) == ["across_a_window_end", "second_window_end", "in_the_last_bytes", "header_and_tail"])
    }

    /// A file truncated while it is scanned: the mapping's pages past the new end raise
    /// SIGBUS, which libyara catches; the scan fails and the agent goes on. A size past the
    /// file's end does the same without a race.
    @Test func aFileTruncatedUnderTheScanFailsTheScanOnly() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let rules = try shippedRules()
        let path = "\(directory)/shrunk"
        try SyntheticBinary.write([UInt8](repeating: 0x41, count: 64 * 1024), to: path)
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        #expect(fd >= 0)
        defer { close(fd) }
        #expect(throws: YaraRules.ScanError.self) { try rules.scan(fd: fd, size: 3 * YaraRules.scanWindow) }
        #expect(try rules.scan(fd: fd, size: 64 * 1024).isEmpty)
    }

    @Test func aBrokenRuleFileIsReportedWithItsLineAndSkipped() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let broken = directory + "/broken.yar"
        try "rule broken\n{\n    strings: $a = \"x\"\n    condition: $a and\n}\n".write(toFile: broken, atomically: true, encoding: .utf8)
        let mine = directory + "/mine.yar"
        // The same rule name as a shipped rule: each file has its own namespace.
        try
            "rule LightFTP_fftp_linux : staging\n{\n    meta:\n        description = \"mine\"\n        urgent = true\n    condition:\n        filesize == 7\n}\n"
            .write(toFile: mine, atomically: true, encoding: .utf8)
        let (rules, errors) = YaraRules.compile(globs: [Repo.path("rules/yara/*.yar"), directory + "/*.yar", directory + "/missing-*.yar"])
        #expect(errors.count == 1)
        #expect(errors.first?.file == broken && errors.first?.line == 5, "\(errors)")
        let loaded = try #require(rules)
        #expect(loaded.files == [Repo.path("rules/yara/lightftp.yar"), mine] && loaded.ruleCount == 3)

        let scanner = FileScanner(rules: loaded, maximumSize: 1024)
        let seven = try scan(Array("seven!!".utf8), name: "seven", with: scanner)
        let match = try #require(seven.matches.first)
        #expect(match.namespace == mine && match.tags == ["staging"] && match.meta("urgent") == .boolean(true))
        #expect(match.metaString("description") == "mine")

        let (none, allErrors) = YaraRules.compile(globs: [broken])
        #expect(none == nil && allErrors.count == 1)
    }

    @Test func resultsAreCachedByFileIdentity() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let scanner = FileScanner(rules: try shippedRules(), maximumSize: 8192)
        let path = directory + "/four.exe"
        try SyntheticBinary.write(SyntheticBinary.lightFTPPE(strings: 4), to: path)
        var info = stat()
        stat(path, &info)
        let target = ScanTarget(path: path, expectedInode: UInt64(info.st_ino))
        #expect(scanner.scan(target).outcome == .scanned)
        let again = scanner.scan(target)
        #expect(again.outcome == .cached && again.matches.count == 1 && again.file?.sha256 != nil)
        #expect(scanner.counters.scans == 1 && scanner.counters.cacheHits == 1 && scanner.counters.filesMatched == 1)

        // Rewritten in place (new size): scanned again, and now clean.
        try SyntheticBinary.write(SyntheticBinary.lightFTPPE(strings: 3, size: 5000), to: path)
        let rewritten = scanner.scan(target)
        #expect(rewritten.outcome == .scanned && rewritten.matches.isEmpty)

        // Replaced by another file: not the file audit saw, so not scanned; the fallback is. A hard
        // link keeps audit's inode alive the way /proc/<pid>/exe keeps a replaced binary open.
        let fallback = directory + "/kept.exe"
        #expect(link(path, fallback) == 0)
        try SyntheticBinary.write(SyntheticBinary.lightFTPPE(strings: 5), to: fallback)
        try SyntheticBinary.write(SyntheticBinary.lightFTPPE(strings: 4), to: path + ".new")
        #expect(rename(path + ".new", path) == 0)
        #expect(scanner.scan(ScanTarget(path: path, expectedInode: UInt64(info.st_ino))).outcome == .gone)
        let viaFallback = scanner.scan(ScanTarget(path: path, expectedInode: UInt64(info.st_ino), locations: [path, fallback]))
        #expect(viaFallback.file?.path == path && viaFallback.matches.count == 1)

        // Over max_file_size, a directory: counted, not scanned.
        try SyntheticBinary.write(SyntheticBinary.lightFTPPE(strings: 4, size: 9000), to: directory + "/large.exe")
        #expect(scanner.scan(ScanTarget(path: directory + "/large.exe")).outcome == .tooLarge)
        #expect(scanner.scan(ScanTarget(path: directory)).outcome == .notRegular)
        #expect(scanner.counters.tooLarge == 1 && scanner.counters.notRegular == 1 && scanner.counters.gone == 1)
        #expect(scanner.counters.scans == 3 && scanner.counters.cacheHits == 1)
    }

    @Test func theEventLoopKnowsWhatTheWorkerFoundClean() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let queue = try #require(ScanQueue<Int>.start(scanner: FileScanner(rules: try shippedRules(), maximumSize: 1 << 20), capacity: 8))
        defer { queue.stop() }
        let clean = directory + "/clean.exe", matching = directory + "/matching.exe"
        try SyntheticBinary.write(SyntheticBinary.lightFTPPE(strings: 3), to: clean)
        try SyntheticBinary.write(SyntheticBinary.lightFTPPE(strings: 4), to: matching)
        func identity(_ path: String) -> FileVersion {
            var info = stat()
            stat(path, &info)
            return FileVersion(info)
        }
        #expect(!queue.isKnownClean(identity(clean)), "nothing is known before a scan")
        #expect(queue.submit(ScanTarget(path: clean), context: 1) && queue.submit(ScanTarget(path: matching), context: 2))
        var results: [Int] = []
        for _ in 0..<200 where results.isEmpty {
            results += queue.takeResults().map(\.context)
            usleep(10_000)
        }
        #expect(results == [2])
        let scanned = identity(clean)
        #expect(queue.isKnownClean(scanned) && !queue.isKnownClean(identity(matching)))
        #expect(queue.counters.scanner.cacheHits == 1, "an answer from the clean set counts as a cache hit")
        // Rewritten in place: another identity, not known until scanned.
        try SyntheticBinary.write(SyntheticBinary.lightFTPPE(strings: 4, size: 5000), to: clean)
        #expect(!queue.isKnownClean(identity(clean)))
        // New rules: what the old ones found clean is forgotten.
        #expect(queue.isKnownClean(scanned))
        queue.replace(scanner: FileScanner(rules: try shippedRules(), maximumSize: 1 << 20))
        #expect(!queue.isKnownClean(scanned))
        #expect(queue.counters.scanner.cacheHits == 2)
    }

    @Test func theWorkerHandsBackMatchesWithTheirContext() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let queue = try #require(ScanQueue<String>.start(scanner: FileScanner(rules: try shippedRules(), maximumSize: 1 << 20), capacity: 64))
        defer { queue.stop() }
        for (index, strings) in [4, 3, 5].enumerated() {
            let path = "\(directory)/\(index).exe"
            try SyntheticBinary.write(SyntheticBinary.lightFTPPE(strings: strings), to: path)
            #expect(queue.submit(ScanTarget(path: path), context: "target \(index)"))
        }
        var results: [(result: ScanResult, context: String)] = []
        let deadline = Date().addingTimeInterval(10)
        while results.count < 2 && Date() < deadline {
            var ready = pollfd(fd: queue.descriptor, events: Int16(POLLIN), revents: 0)
            _ = poll(&ready, 1, 100)
            results += queue.takeResults()
        }
        #expect(results.map(\.context) == ["target 0", "target 2"], "only matches come back")
        #expect(queue.counters.queued == 3 && queue.counters.scanner.scans == 3 && queue.counters.dropped == 0)
    }
}
