import HostState
import Runtime

/// What the flow model knows about file-transfer programs: which process is an FTP or TFTP
/// client, and which way a command line moves files.
public enum TransferDirection: String, Sendable {
    case upload, download, unknown
}

public enum TransferTools {
    /// Classic ftp clients that read their commands from stdin (tnftp is Debian's `ftp`).
    public static let commandFTPClients: Set<String> = ["ftp", "tnftp", "netkit-ftp", "pftp"]
    static let ftpClients: Set<String> = [
        "ftp", "tnftp", "netkit-ftp", "pftp", "lftp", "lftpget", "ncftp", "ncftpput",
        "ncftpget", "ncftpls", "ftpput", "ftpget", "wput", "gftp", "gftp-text", "yafc",
    ]
    static let tftpClients: Set<String> = ["tftp", "atftp"]
    static let smbClients: Set<String> = ["smbclient", "smbget", "smbcacls", "rpcclient"]
    /// Every program the flow model treats as a transfer client: their stdin and network
    /// namespace are read at execve (`ProcessTable.eagerPrograms`), whatever their lifetime.
    public static let clientPrograms: Set<String> = ftpClients.union(tftpClients).union(smbClients)
        .union(["ssh", "scp", "sftp", "busybox", "curl", "wget", "rsync"])
    /// Interpreters: running inline code, or a script from a world-writable or hidden place,
    /// they are living-off-the-land transfer tools (an1169.lolbin_transfer).
    static let interpreters: Set<String> = ["python", "python2", "python3", "perl", "ruby", "php", "node", "nodejs", "lua", "tclsh", "pwsh"]

    /// An interpreter by the program it is: `python3.11`, `perl5.36.0` and `lua5.4` too.
    public static func isInterpreter(_ p: ProcessRecord) -> Bool {
        let name = p.program
        let family = name.prefix { !$0.isNumber && $0 != "." }
        return interpreters.contains(String(family)) && name.dropFirst(family.count).allSatisfy { $0.isNumber || $0 == "." }
    }

    /// The script file an interpreter runs (its first operand), absolute; nil for inline code
    /// (`-c`, `-e`, `-r`), modules (`-m`) and standard input.
    public static func scriptFile(_ p: ProcessRecord) -> String? {
        // php's options that take a value (its built-in web server: -S address -t root).
        let valued: Set<String> = p.program.hasPrefix("php") ? ["-S", "-t", "-c", "-d", "-z"] : []
        var skipNext = false
        for argument in p.arguments.dropFirst() {
            if skipNext { skipNext = false; continue }
            if ["-c", "-e", "-E", "-r", "-m", "--eval", "-"].contains(argument) && !valued.contains(argument) { return nil }
            if valued.contains(argument) { skipNext = true; continue }
            if argument.hasPrefix("-") { continue }
            return resolve(argument, in: p)
        }
        return nil
    }

    /// World-writable scratch places and hidden directories or files: where dropped tools live.
    public static func isScratchOrHidden(_ path: String) -> Bool {
        ["/tmp/", "/var/tmp/", "/dev/shm/", "/run/user/"].contains { path.hasPrefix($0) }
            || path.split(separator: "/").contains { $0.hasPrefix(".") && $0 != "." && $0 != ".." }
    }
    /// Programs known by their binary (`ProgramCatalog`): a renamed or copied one is still itself.
    public static let identifiedPrograms: Set<String> = clientPrograms.union(interpreters).union([
        "nc", "ncat", "netcat", "nc.openbsd", "nc.traditional", "socat", "openssl", "telnet", "bash", "dash", "sh", "zsh",
    ])

    static func isFTPClient(_ p: ProcessRecord) -> Bool {
        p.isProgram(in: ftpClients)
    }

    static func isTFTPClient(_ p: ProcessRecord) -> Bool {
        p.isProgram(in: tftpClients) || url(in: p, schemes: ["tftp"]) != nil
    }

    /// The first `scheme://host[:port]` URL in the arguments: (host, port or nil).
    static func url(in p: ProcessRecord, schemes: Set<String>) -> (host: String, port: UInt16?)? {
        for argument in p.arguments.dropFirst() {
            // Most arguments have no "://": find it on bytes before building any substring.
            guard let separator = schemeSeparator(in: argument) else { continue }
            let scheme = argument[..<separator], rest = argument[argument.index(separator, offsetBy: 3)...]
            guard schemes.contains(scheme.lowercased()) else { continue }
            var authority = rest.prefix { $0 != "/" && $0 != "?" }
            if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
            if authority.hasPrefix("["), let close = authority.firstIndex(of: "]") {
                let host = String(authority[authority.index(after: authority.startIndex)..<close])
                let rest = authority[authority.index(after: close)...]
                return (host, rest.hasPrefix(":") ? UInt16(rest.dropFirst()) : nil)
            }
            if let colon = authority.lastIndex(of: ":") {
                return (String(authority[..<colon]), UInt16(authority[authority.index(after: colon)...]))
            }
            return (String(authority), nil)
        }
        return nil
    }

    /// Where "://" starts in `text`, if anywhere.
    private static func schemeSeparator(in text: String) -> String.Index? {
        let bytes = text.utf8
        var index = bytes.startIndex
        while let colon = bytes[index...].firstIndex(of: UInt8(ascii: ":")) {
            let slashes = bytes[bytes.index(after: colon)...].prefix(2)
            if slashes.elementsEqual("//".utf8) { return colon }
            index = bytes.index(after: colon)
        }
        return nil
    }

    /// The protocol of the FTP URL the process names for this port (curl, wget, lftp, ftp
    /// auto-fetch): `ftps://` is implicit FTPS, on 990 unless a port is given.
    static func ftpURL(_ p: ProcessRecord, port: UInt16) -> FlowProtocol? {
        for scheme in ["ftp", "ftps"] {
            guard let target = url(in: p, schemes: [scheme]) else { continue }
            if (target.port ?? (scheme == "ftps" ? 990 : 21)) == port { return scheme == "ftps" ? .ftps : .ftp }
        }
        return nil
    }

    // MARK: direction from the command line

    /// scp's direction: a remote target operand means upload, a remote source download.
    /// Also reads the legacy remote command (`scp -t` sink = upload, `scp -f` source = download)
    /// that scp -O passes to its ssh child.
    static func scpDirection(_ scp: ProcessRecord, ssh: ProcessRecord?) -> TransferDirection {
        // ssh receives the remote command as one argument: "scp -r -t -- /tmp".
        if let remote = ssh?.arguments.last(where: { $0.hasPrefix("scp ") }) {
            let words = remote.split(separator: " ")
            if words.contains("-t") { return .upload }
            if words.contains("-f") { return .download }
        }
        let operands = operands(scp.arguments, optionsWithValue: "cFiJloPSDX")
        guard operands.count >= 2, let target = operands.last else { return .unknown }
        if isRemote(target) { return .upload }
        if operands.dropLast().contains(where: isRemote) { return .download }
        return .unknown
    }

    /// `host:path`, `user@host:path`, `scp://...`; a local path with a colon starts with / or .
    static func isRemote(_ operand: String) -> Bool {
        if operand.hasPrefix("scp://") || operand.hasPrefix("sftp://") { return true }
        if operand.hasPrefix("/") || operand.hasPrefix(".") { return false }
        guard let colon = operand.firstIndex(of: ":") else { return false }
        return !operand[..<colon].contains("/")
    }

    static func sftpDirection(_ sftp: ProcessRecord, readFile: (String) -> String?) -> TransferDirection {
        let args = sftp.arguments
        if let b = args.firstIndex(of: "-b"), b + 1 < args.count, args[b + 1] != "-",
            let script = readFile(resolve(args[b + 1], in: sftp))
        {
            return commandsDirection(script)
        }
        // `sftp host:file` fetches the file.
        if let target = operands(args, optionsWithValue: "BbcDFiJlPRSsoX").last, isRemote(target),
            let colon = target.firstIndex(of: ":"), target.index(after: colon) < target.endIndex
        {
            return .download
        }
        return .unknown
    }

    /// FTP clients and curl/wget on an FTP URL.
    static func ftpDirection(_ p: ProcessRecord, readFile: (String) -> String?) -> TransferDirection {
        let args = p.arguments
        switch p.program {
        case "ftpput", "ncftpput", "wput": return .upload
        case "ftpget", "ncftpget", "lftpget", "wget": return .download
        case "curl":
            return args.contains { $0 == "-T" || $0.hasPrefix("--upload-file") || $0.hasPrefix("-T") } ? .upload : .download
        case "lftp":
            var scripts: [String] = []
            for (i, a) in args.enumerated() where i + 1 < args.count {
                if a == "-c" || a == "-e" { scripts.append(args[i + 1]) }
                if a == "-f", let text = readFile(resolve(args[i + 1], in: p)) { scripts.append(text) }
            }
            return scripts.isEmpty ? .unknown : commandsDirection(scripts.joined(separator: "\n"))
        case "ftp", "tnftp", "pftp":
            // tnftp: `-u URL file` uploads; a bare URL argument is an auto-fetch download.
            if args.contains("-u") { return .upload }
            return url(in: p, schemes: ["ftp", "http", "https"]) != nil ? .download : .unknown
        default: return .unknown
        }
    }

    static func tftpDirection(_ p: ProcessRecord) -> TransferDirection {
        let args = p.arguments
        if p.program == "curl" {
            return args.contains { $0 == "-T" || $0.hasPrefix("--upload-file") || $0.hasPrefix("-T") } ? .upload : .download
        }
        if let c = args.firstIndex(of: "-c"), c + 1 < args.count {
            switch args[c + 1] {
            case "put": return .upload;
            case "get": return .download;
            default: break
            }
        }
        for a in args.dropFirst() {
            if a == "--put" || a == "-p" { return .upload }
            if a == "--get" || a == "-g" { return .download }
            // busybox combines flags: -pl FILE, -gr REMOTE.
            if a.hasPrefix("-") && !a.hasPrefix("--") && a.count > 2 {
                if a.contains("p") && !a.contains("g") { return .upload }
                if a.contains("g") && !a.contains("p") { return .download }
            }
        }
        return .unknown
    }

    static func smbDirection(_ p: ProcessRecord) -> TransferDirection {
        if p.program == "smbget" { return .download }
        guard let c = p.arguments.firstIndex(where: { $0 == "-c" || $0 == "--command" }), c + 1 < p.arguments.count else { return .unknown }
        return commandsDirection(p.arguments[c + 1])
    }

    /// Client commands (lftp, sftp batch, smbclient -c): put/mput/reput/`mirror -R` upload,
    /// get/mget/pget/reget/mirror download; both or neither is unknown.
    static func commandsDirection(_ script: String) -> TransferDirection {
        var uploads = false
        var downloads = false
        for statement in script.split(whereSeparator: { $0 == "\n" || $0 == ";" }) {
            let words = statement.split(separator: " ").map { $0.lowercased() }
            guard var command = words.first else { continue }
            if command.hasPrefix("-") || command.hasPrefix("@") { command.removeFirst() }
            switch command {
            case "put", "mput", "reput", "append": uploads = true
            case "get", "mget", "pget", "reget", "cat": downloads = true
            case "mirror":
                if words.contains("-r") || words.contains("--reverse") { uploads = true } else { downloads = true }
            default: break
            }
        }
        if uploads != downloads { return uploads ? .upload : .download }
        return .unknown
    }

    /// When the command line does not say: the side that carried at least 4 times the other.
    static func directionFromBytes(out: UInt64?, in received: UInt64?) -> TransferDirection {
        let o = out ?? 0, i = received ?? 0
        if o >= 1024 && o >= 4 * i { return .upload }
        if i >= 1024 && i >= 4 * o { return .download }
        return .unknown
    }

    /// Operands after options; `optionsWithValue` lists single-letter options taking a value.
    static func operands(_ args: [String], optionsWithValue: String) -> [String] {
        var result: [String] = []
        var i = 1
        var optionsDone = false
        while i < args.count {
            let a = args[i]
            if !optionsDone && a == "--" { optionsDone = true; i += 1; continue }
            if !optionsDone && a.hasPrefix("-") && a.count > 1 {
                // -P 22 or -P22; a value-taking letter ends the cluster.
                for (offset, letter) in a.dropFirst().enumerated() where optionsWithValue.contains(letter) {
                    if offset == a.count - 2 { i += 1 }
                    break
                }
                i += 1
                continue
            }
            result.append(a)
            i += 1
        }
        return result
    }

    static func resolve(_ path: String, in p: ProcessRecord) -> String {
        path.hasPrefix("/") || p.workingDirectory == nil ? path : p.workingDirectory! + "/" + path
    }

    /// The transfer protocol of a new outgoing TCP/UDP connection, or nil for other traffic.
    static func classify(_ p: ProcessRecord, port: UInt16) -> (FlowProtocol, ProcessRecord?)? {
        if p.isProgram(in: ["ssh"]) {
            switch p.parent?.program {
            case "scp": return (.scp, p.parent)
            case "sftp": return (.sftp, p.parent)
            default: return (.ssh, sshDriver(p))
            }
        }
        if port == 53 { return nil }
        if let proto = ftpURL(p, port: port) { return (proto, nil) }
        if port == 990 || port == 989 { return (.ftps, nil) }
        if port == 21 || isFTPClient(p) { return (.ftp, nil) }
        if port == 445 || port == 139 || p.isProgram(in: smbClients) { return (.smb, nil) }
        if port == 69 || isTFTPClient(p) { return (.tftp, nil) }
        return nil
    }

    /// Programs that run ssh as their transport: file synchronisation, version control,
    /// backup tools.
    static let sshDrivers: Set<String> = [
        "rsync", "git", "svn", "hg", "bzr", "borg", "restic", "duplicity", "rdiff-backup", "unison", "rclone", "sshfs", "mosh", "ansible",
    ]

    /// What drives a plain ssh: the program that ran it when it is one of `sshDrivers` or an
    /// interpreter (a script), whose interactivity is the session's; nil otherwise (a shell's
    /// pipeline or a person: ssh's own stdin and terminal tell).
    static func sshDriver(_ ssh: ProcessRecord) -> ProcessRecord? {
        guard let parent = ssh.parent, parent.isProgram(in: sshDrivers) || isInterpreter(parent) else { return nil }
        return parent
    }

    /// The direction the command line (or the batch file it names) declares.
    static func declaredDirection(_ proto: FlowProtocol, _ p: ProcessRecord, _ transfer: ProcessRecord?, live: Bool) -> TransferDirection {
        // Batch files are read on the live host only: a replayed log's paths are not today's files.
        let read: (String) -> String? = { path in live ? readTextFile(path, limit: 65_536, regularOnly: true) : nil }
        switch proto {
        case .ftp, .ftps, .ftpData: return ftpDirection(p, readFile: read)
        case .ssh: return .unknown
        case .scp: return transfer.map { scpDirection($0, ssh: p) } ?? .unknown
        case .sftp: return transfer.map { sftpDirection($0, readFile: read) } ?? .unknown
        case .tftp: return tftpDirection(p)
        case .smb: return smbDirection(p)
        }
    }
}
