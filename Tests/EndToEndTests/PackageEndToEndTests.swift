import Foundation
import TestSupport
import Testing

/// The .deb as users get it (`make deb`, which `make test` runs first): lintian-clean, no Swift
/// runtime needed, installed on this machine, its own xferwatchd run against the real kernel
/// with the installed configuration, upgraded over an edited agent.conf, purged. The test
/// leaves the machine as it found it, failed or not.
extension KernelAuditTests.FlowEndToEnd {
    @Test func theDebianPackageInstallsRunsUpgradesAndPurges() throws {
        let packages = try FileManager.default.contentsOfDirectory(atPath: Repo.path(".build/deb")).filter { $0.hasSuffix(".deb") }
        let package = Repo.path(".build/deb/" + (try #require(packages.sorted().last, "no package in .build/deb: run make test (it runs make deb)")))
        let dpkgInstalled = { (try? runCommand("/usr/bin/dpkg-query", ["-W", "-f", "${Status}", "xferwatch"]))?.stdout.hasSuffix(" installed") == true }
        try #require(!dpkgInstalled(), "xferwatch is already installed here; the test needs a machine without it")
        let userExisted = try runCommand("/usr/bin/getent", ["passwd", "_xferwatch"]).status == 0
        defer {
            _ = try? dpkg(["--purge", "xferwatch"])
            if !userExisted { _ = try? runCommand("/usr/sbin/deluser", ["--system", "--quiet", "_xferwatch"]) }
        }

        // Lint: no errors, no warnings, and no overrides needed.
        let lint = try runCommand("/usr/bin/lintian", ["--fail-on", "error,warning", package])
        #expect(lint.status == 0, "lintian: \(lint.stdout) \(lint.stderr)")
        let depends = try runCommand("/usr/bin/dpkg-deb", ["-f", package, "Depends"]).stdout
        for library in ["libaudit1", "libcap2", "libyara", "libpcre2-8-0", "libssl3", "libc6", "adduser"] {
            #expect(depends.contains(library), "Depends: \(depends)")
        }
        // Runs without Swift: the runtime is inside, nothing links the toolchain's libraries.
        let extracted = work + "/extracted"
        try #require(try runCommand("/usr/bin/dpkg-deb", ["-x", package, extracted]).status == 0)
        for binary in ["/usr/sbin/xferwatchd", "/usr/bin/agentctl"] {
            let ldd = try runCommand("/usr/bin/ldd", [extracted + binary])
            #expect(ldd.status == 0 && !ldd.stdout.contains("swift") && !ldd.stdout.contains("libFoundation"), "\(ldd.stdout)")
            let file = try runCommand("/usr/bin/readelf", ["-d", extracted + binary])
            #expect(file.stdout.contains("BIND_NOW"), "immediate binding: \(binary)")
        }
        let security = try runCommand("/usr/bin/systemd-analyze", ["security", "--offline=true", extracted + "/lib/systemd/system/xferwatchd.service"])
        let exposure = security.stdout.split(separator: "\n").last { $0.contains("Overall exposure level") }
            .flatMap { line in line.split(separator: " ").compactMap { Double($0) }.first }
        #expect(exposure != nil && exposure! <= 3.0, "systemd-analyze security: \(security.stdout.suffix(300)) \(security.stderr)")

        // Install.
        let install = try dpkg(["-i", package])
        try #require(install.status == 0, "dpkg -i: \(install.stdout) \(install.stderr)")
        #expect(try runCommand("/usr/bin/getent", ["passwd", "_xferwatch"]).status == 0)
        for (path, mode, owner) in [
            ("/usr/sbin/xferwatchd", 0o755, "root"), ("/usr/bin/agentctl", 0o755, "root"),
            ("/etc/xferwatch/agent.conf", 0o644, "root"), ("/etc/xferwatch/yara/lightftp.yar", 0o644, "root"),
            ("/lib/systemd/system/xferwatchd.service", 0o644, "root"), ("/etc/audit/plugins.d/xferwatch.conf", 0o644, "root"),
            ("/usr/share/man/man8/xferwatchd.8.gz", 0o644, "root"), ("/usr/share/man/man8/agentctl.8.gz", 0o644, "root"),
            ("/usr/share/man/man5/agent.conf.5.gz", 0o644, "root"), ("/usr/share/doc/xferwatch/copyright", 0o644, "root"),
            ("/usr/share/doc/xferwatch/agentctl-status.schema.json", 0o644, "root"),
            ("/usr/share/bash-completion/completions/agentctl", 0o644, "root"), ("/usr/share/zsh/vendor-completions/_agentctl", 0o644, "root"),
            ("/usr/share/fish/vendor_completions.d/agentctl.fish", 0o644, "root"),
            ("/usr/share/bash-completion/completions/xferwatchd", 0o644, "root"), ("/usr/share/zsh/vendor-completions/_xferwatchd", 0o644, "root"),
            ("/usr/share/fish/vendor_completions.d/xferwatchd.fish", 0o644, "root"),
            ("/var/lib/xferwatch", 0o750, "_xferwatch"), ("/var/log/xferwatch", 0o750, "_xferwatch"),
        ] {
            let attributes = try? FileManager.default.attributesOfItem(atPath: path)
            #expect(
                (attributes?[.posixPermissions] as? Int) == mode && attributes?[.ownerAccountName] as? String == owner,
                "\(path): \(String((attributes?[.posixPermissions] as? Int) ?? 0, radix: 8)) \(attributes?[.ownerAccountName] ?? "missing")")
        }
        // Each shell finds the installed completion by itself and completes as people type,
        // options before the subcommand included.
        for (line, expected) in [
            ("agentctl st", "status"), ("agentctl --socket /run/xferwatch/agent.sock me", "metrics"),
            ("agentctl --timeout 3 al", "alerts"), ("agentctl status --j", "--json"), ("xferwatchd check-c", "check-config"),
        ] {
            let offered = try runCommand(Repo.path("Tests/support/shell-completions"), [line]).stdout.split(separator: "\n")
            for shell in ["bash", "fish", "zsh"] {
                #expect(offered.contains("\(shell): \(expected)"[...]), "\(shell) completing '\(line)' offered \(offered)")
            }
        }
        let conffiles = try runCommand("/usr/bin/dpkg-query", ["-W", "-f", "${Conffiles}", "xferwatch"]).stdout
        for conffile in ["/etc/xferwatch/agent.conf", "/etc/xferwatch/yara/lightftp.yar", "/etc/audit/plugins.d/xferwatch.conf"] {
            #expect(conffiles.contains(conffile + " "), "conffiles: \(conffiles)")
        }
        #expect(FileManager.default.fileExists(atPath: "/etc/systemd/system/multi-user.target.wants/xferwatchd.service"), "enabled on install")
        let verify = try runCommand("/usr/bin/systemd-analyze", ["verify", "/lib/systemd/system/xferwatchd.service"])
        #expect(verify.status == 0 && verify.stderr.isEmpty, "systemd-analyze verify: \(verify.stdout) \(verify.stderr)")
        let check = try runCommand("/usr/sbin/xferwatchd", ["check-config"])
        #expect(check.status == 0, "the shipped configuration: \(check.stderr)")

        // The installed agent, as root outside systemd, as systemd's MemoryDenyWriteExecute
        // would have it: drops to _xferwatch and sees a scripted upload.
        let agent = try Child(
            "/usr/bin/python3",
            [
                "-c",
                """
                import ctypes, os, sys
                if ctypes.CDLL(None, use_errno=True).prctl(65, 1, 0, 0, 0) != 0: sys.exit("PR_SET_MDWE failed")
                os.execv("/usr/sbin/xferwatchd", ["xferwatchd", "run"])
                """,
            ])
        #expect(agent.waitForStderr(containing: "running as _xferwatch", seconds: 20), "installed agent: \(agent.stderr)")
        try #require(agent.waitForStderr(containing: "host: ", seconds: 20), "installed agent: \(agent.stderr)")
        let file = try randomFile("packaged.bin", bytes: 300_000)
        let commands = try commandsFile("packaged.ftp", ["user anonymous x", "binary", "put \(file) upload/packaged.bin", "quit"])
        let script = try commandsFile("packaged.sh", ["ftp -n -p 203.0.113.10 < \(commands) > /dev/null"])
        _ = try client("/bin/bash", [script])
        let installedAlerts = "/var/log/xferwatch/alerts.jsonl"
        let deadline = Date().addingTimeInterval(20)
        var rules: [String] = []
        while Date() < deadline, !rules.contains("ftp.scripted") {
            usleep(200_000)
            rules = ((try? String(contentsOfFile: installedAlerts, encoding: .utf8)).flatMap { try? jsonLines($0) } ?? [])
                .map(AlertView.init).filter { $0.executable == "/usr/bin/tnftp" }.map(\.rule)
        }
        #expect(rules.contains("ftp.scripted"), "alerts of the installed agent: \(rules) \(agent.stderr.suffix(3000))")
        // The agent's id lives in its state directory, kept by the upgrade below.
        let agentID = try String(contentsOfFile: "/var/lib/xferwatch/agent-id", encoding: .utf8)
        let alertAgentIDs = Set(try documents(String(contentsOfFile: installedAlerts, encoding: .utf8)).map { AlertView($0).json["agent.id"] as? String })
        #expect(alertAgentIDs == [agentID.trimmingCharacters(in: .whitespacesAndNewlines)], "\(alertAgentIDs) \(agentID)")
        let status = try runCommand("/usr/bin/agentctl", ["status", "--json"])
        let document = try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any]
        #expect(value(document ?? [:], "privileges", "user") as? String == "_xferwatch", "\(status)")
        #expect(agent.stop() == 0, "installed agent: \(agent.stderr.suffix(3000))")
        #expect(!(try runCommand("/sbin/auditctl", ["-l"])).stdout.contains("key=xferwatch"), "rules left behind")

        // Upgrade over an edited agent.conf, with a new packaged one: the admin's edit stays,
        // the package's comes beside it, as dpkg does for conffiles.
        let edit = "\n# edited by the package test\n"
        let handle = try #require(FileHandle(forWritingAtPath: "/etc/xferwatch/agent.conf"))
        handle.seekToEndOfFile()
        handle.write(Data(edit.utf8))
        handle.closeFile()
        let next = work + "/next"
        try #require(try runCommand("/usr/bin/dpkg-deb", ["-R", package, next]).status == 0)
        let control = next + "/DEBIAN/control"
        let version = try runCommand("/usr/bin/dpkg-deb", ["-f", package, "Version"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        try String(contentsOfFile: control, encoding: .utf8).replacingOccurrences(of: "Version: \(version)", with: "Version: \(version)+test1")
            .write(toFile: control, atomically: true, encoding: .utf8)
        try (String(contentsOfFile: next + "/etc/xferwatch/agent.conf", encoding: .utf8) + "\n# changed in the next version\n")
            .write(toFile: next + "/etc/xferwatch/agent.conf", atomically: true, encoding: .utf8)
        try #require(try runCommand("/usr/bin/dpkg-deb", ["--root-owner-group", "--build", next, work + "/next.deb"]).status == 0)
        let upgrade = try dpkg(["--force-confdef", "--force-confold", "-i", work + "/next.deb"])
        #expect(upgrade.status == 0, "upgrade: \(upgrade.stdout) \(upgrade.stderr)")
        #expect(try runCommand("/usr/bin/dpkg-query", ["-W", "-f", "${Version}", "xferwatch"]).stdout == version + "+test1")
        #expect((try? String(contentsOfFile: "/etc/xferwatch/agent.conf", encoding: .utf8))?.hasSuffix(edit) == true, "the edit was kept")
        #expect((try? String(contentsOfFile: "/etc/xferwatch/agent.conf.dpkg-dist", encoding: .utf8))?.contains("changed in the next version") == true)
        #expect((try? String(contentsOfFile: "/var/lib/xferwatch/agent-id", encoding: .utf8)) == agentID, "the upgrade kept the agent's id")

        // Remove keeps the configuration; purge takes the rest.
        #expect(try dpkg(["--remove", "xferwatch"]).status == 0)
        #expect(!FileManager.default.fileExists(atPath: "/usr/sbin/xferwatchd") && FileManager.default.fileExists(atPath: "/etc/xferwatch/agent.conf"))
        #expect(FileManager.default.fileExists(atPath: "/var/log/xferwatch/alerts.jsonl"), "logs stay until purge")
        #expect(try dpkg(["--purge", "xferwatch"]).status == 0)
        for path in [
            "/etc/xferwatch", "/var/lib/xferwatch", "/var/log/xferwatch", "/run/xferwatch", "/usr/bin/agentctl",
            "/lib/systemd/system/xferwatchd.service", "/etc/systemd/system/multi-user.target.wants/xferwatchd.service",
            "/etc/audit/plugins.d/xferwatch.conf", "/usr/share/doc/xferwatch",
        ] {
            #expect(!FileManager.default.fileExists(atPath: path), "\(path) is left after purge")
        }
        #expect(!dpkgInstalled())
    }

    /// dpkg without questions (the conffile choice is given by --force-conf* where it matters).
    func dpkg(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        try runCommand("/usr/bin/env", ["DEBIAN_FRONTEND=noninteractive", "/usr/bin/dpkg"] + arguments)
    }
}
