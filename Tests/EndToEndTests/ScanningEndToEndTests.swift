import Foundation
import TestSupport
import Testing

extension KernelAuditTests {
    /// A LightFTP-like server for Linux: carries the shipped rule's strings, listens on a
    /// loopback port once a line (or end of input) arrives on stdin, then lingers.
    static let fakeLightFTP = """
        #include <netinet/in.h>
        #include <stdio.h>
        #include <string.h>
        #include <sys/socket.h>
        #include <unistd.h>
        static const char banner[] = "220 LightFTP server ready\\r\\n";
        static const char config[] = "fftp.conf";
        int main(void) {
            char line[8];
            if (read(0, line, sizeof line) < 0) return 1;
            int fd = socket(AF_INET, SOCK_STREAM, 0);
            struct sockaddr_in address;
            memset(&address, 0, sizeof address);
            address.sin_family = AF_INET;
            address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            if (bind(fd, (struct sockaddr *)&address, sizeof address) != 0 || listen(fd, 1) != 0) return 2;
            printf("%s%s\\n", banner, config);
            fflush(stdout);
            sleep(2);
            return 0;
        }
        """

    /// Every execve attempt and every TCP listen is scanned with the shipped rules: a Windows
    /// PE run through a shell (ENOEXEC), a Linux server found when it listens, and the same
    /// server found at execve (from the cache).
    @Test func yaraScansExecveAttemptsAndListeningServers() throws {
        let before = try Self.kernelState()
        try #require(before.pid == "0", "another process holds the audit socket")
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try SyntheticBinary.write(SyntheticBinary.lightFTPPE(strings: 4), to: directory + "/four.exe")
        try SyntheticBinary.write(SyntheticBinary.lightFTPPE(strings: 3), to: directory + "/three.exe")
        try SyntheticBinary.write(SyntheticBinary.lightFTPPE(strings: 5, size: 300 * 1024), to: directory + "/big.exe")
        try Self.fakeLightFTP.write(toFile: directory + "/fftp.c", atomically: true, encoding: .utf8)
        let cc = try runCommand("/usr/bin/cc", ["-O1", "-o", directory + "/fftp", directory + "/fftp.c"])
        try #require(cc.status == 0, "cc: \(cc.stderr)")

        // Started before the agent: only its listen can reveal it.
        let go = Pipe()
        let early = try Child(directory + "/fftp", [], stdin: go.fileHandleForReading)
        let config = try configFile(
            in: directory, source: "unicast",
            extra: """
                [rules.yara]
                paths = ["\(Repo.path("rules/yara"))/*.yar"]

                """)
        let agent = try Child(Repo.xferwatchd, ["run", "--config", config])
        defer { agent.stop() }
        try #require(agent.waitForStderr(containing: "ready: watching", seconds: 20), "agent did not start: \(agent.stderr)")
        // Logged once the scanning thread starts, after the privilege drop that follows the rules.
        #expect(agent.waitForStderr(containing: "yara: 2 rules from 1 files", seconds: 10), "\(agent.stderr)")

        go.fileHandleForWriting.write(Data("go\n".utf8))
        let shell = try runCommand("/bin/sh", ["-c", "cd \(directory) && ./four.exe; ./three.exe; ./big.exe; true"])
        #expect(shell.stderr.contains("Exec format error"))
        let late = try Child(directory + "/fftp", [], stdin: FileHandle(forReadingAtPath: "/dev/null"))
        late.waitUntilExit()
        early.waitUntilExit()

        let alertFile = directory + "/alerts.jsonl"
        func alerts() throws -> [AlertView] {
            guard let text = try? String(contentsOfFile: alertFile, encoding: .utf8) else { return [] }
            return try documents(text).map(AlertView.init).filter { $0.rule == "yara.match" }
        }
        let deadline = Date().addingTimeInterval(10)
        while try alerts().count < 3, Date() < deadline { usleep(100_000) }
        // A fourth match, if the agent made one, is written by the time it stops (the scanner's
        // last results become alerts at the stop).
        #expect(agent.stop() == 0)
        let found = try alerts()
        #expect(found.count == 3, "\(found.map { "\($0.json["rule.name"] ?? "") \($0.json["file.path"] ?? "") \($0.reasons)" })")
        for alert in found { #expect(ECSReference.violations(alert.json).isEmpty, "\(ECSReference.violations(alert.json))") }

        let pe = try #require(found.first { $0.json["rule.name"] as? String == "yara:LightFTP_fftp_x86_64" })
        #expect(pe.json["file.path"] as? String == directory + "/four.exe")
        #expect(pe.executable == "/usr/bin/dash" && pe.reasons.first == "tried to execute \(directory)/four.exe (Exec format error)")
        let sha = try runCommand("/usr/bin/sha256sum", [directory + "/four.exe"]).stdout.prefix(64)
        #expect(pe.json["file.hash.sha256"] as? String == String(sha))
        #expect(pe.json["rule.reference"] as? String == "https://github.com/hfiref0x/LightFTP")
        #expect(pe.json["event.severity"] as? Int == 50 && pe.json["xferwatch.yara.meta.score"] as? Int == 50)

        let listening = try #require(found.first { $0.pid == Int(early.pid) })
        #expect(listening.json["rule.name"] as? String == "yara:LightFTP_fftp_linux")
        #expect(listening.reasons.first?.hasPrefix("listening on TCP port ") == true, "\(listening.reasons)")
        #expect(listening.executable == directory + "/fftp")

        let executed = found.filter { $0.pid == Int(late.pid) }
        #expect(executed.count == 1, "found at execve, not again when it listens")
        #expect(executed.first?.reasons.first == "executed \(directory)/fftp")

        // The second fftp was the same file as the first: a cache hit.
        let summary = try #require(agent.stderr.split(separator: "\n").first { $0.contains("stopped: yara:") })
        let hits = summary.split(separator: ",").first { $0.hasSuffix("cache hits") }.flatMap { Int($0.split(separator: " ").first ?? "") }
        #expect((hits ?? 0) >= 1, "\(summary)")
        #expect(try Self.kernelState() == before)
    }
}
