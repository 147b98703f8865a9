import AgentConfig

/// What each rule is, for the alert: name, description, severity and the ATT&CK mapping.
public struct RuleInfo: Sendable {
    public let name: String
    public let description: String
    /// ECS event.severity, 1-100: 21 low, 47 medium, 73 high.
    public let severity: Int
    /// MITRE DET0416's analytic the rule implements (AN1170 on Linux, AN1169 brought from Windows).
    public let analytic: String?
    public let technique: (id: String, name: String)?
    public let tactic: (id: String, name: String)?
}

private let exfiltration = (id: "TA0010", name: "Exfiltration")
private let commandAndControl = (id: "TA0011", name: "Command and Control")
private let alternativeProtocol = (id: "T1048", name: "Exfiltration Over Alternative Protocol")
private let fileTransferProtocols = (id: "T1071.002", name: "Application Layer Protocol: File Transfer Protocols")

extension RuleID {
    public var info: RuleInfo {
        switch self {
        case .noninteractiveTransfer:
            RuleInfo(
                name: "File transfer by a non-interactive process",
                description:
                    "An FTP, SCP/SFTP or TFTP flow to an untrusted destination made by a process no person typed: no terminal, a script, cron, atd, a systemd unit, a CI runner or a web server.",
                severity: 47, analytic: "AN1170", technique: alternativeProtocol, tactic: exfiltration)
        case .largeTransfer:
            RuleInfo(
                name: "Large file transfer to an untrusted destination",
                description: "A file-transfer flow sent at least the configured number of bytes to a destination outside the trusted networks.",
                severity: 73, analytic: "AN1170", technique: alternativeProtocol, tactic: exfiltration)
        case .commandLine:
            RuleInfo(
                name: "Bulk copy of system directories by a transfer tool",
                description:
                    "A transfer tool's command line copies log, configuration or home directories recursively (scp -r /var/log/*, lftp mirror -R /etc, curl -T /root/...).",
                severity: 47, analytic: "AN1170", technique: alternativeProtocol, tactic: exfiltration)
        case .lolbinTransfer:
            RuleInfo(
                name: "File transfer started by a living-off-the-land binary",
                description:
                    "An FTP, TFTP, SMB or SCP/SFTP flow whose process or one of its two nearest ancestors is an interpreter running inline code, busybox, curl, wget, nc, socat, openssl or a Windows command image.",
                severity: 73, analytic: "AN1169", technique: fileTransferProtocols, tactic: commandAndControl)
        case .outboundRatio:
            RuleInfo(
                name: "Mostly outbound file transfer",
                description: "A file-transfer flow to an untrusted destination whose bytes went mostly out of the host.",
                severity: 47, analytic: "AN1169", technique: alternativeProtocol, tactic: exfiltration)
        case .suspiciousFilename:
            RuleInfo(
                name: "Transfer of an archive or hash-named file",
                description: "A file-transfer command line names an archive or a file named like a hash.",
                severity: 47, analytic: "AN1169", technique: alternativeProtocol, tactic: exfiltration)
        case .scriptedFTP:
            RuleInfo(
                name: "Scripted FTP client",
                description:
                    "An FTP client driven by a script: ftp -s:file, ftp reading commands from a file or pipe, lftp -f/-c/-e without a terminal, sftp -b, busybox ftpput/ftpget.",
                severity: 47, analytic: nil, technique: fileTransferProtocols, tactic: commandAndControl)
        case .ftpToInternet:
            RuleInfo(
                name: "FTP activity to the Internet",
                description: "TCP to port 20 or 21 from a private address to a destination outside private, loopback, link-local and multicast ranges.",
                severity: 21, analytic: nil, technique: alternativeProtocol, tactic: exfiltration)
        case .ftpToInternetOtherPath:
            RuleInfo(
                name: "FTP activity to the Internet by another path",
                description:
                    "An FTP or FTPS session, known by its content or its client, reaching a destination outside the trusted networks where Elastic's rule does not look: another port, through a proxy or a relay on this host, or from an IPv6 or public source.",
                severity: 21, analytic: nil, technique: alternativeProtocol, tactic: exfiltration)
        case .smbToInternet:
            RuleInfo(
                name: "SMB activity to the Internet",
                description:
                    "An SMB session, on port 139 or 445 or known by its content on any port, to a destination outside the trusted networks: Elastic's network rule, brought to the host with the process that made it.",
                severity: 47, analytic: nil, technique: alternativeProtocol, tactic: exfiltration)
        case .noFileExecutable:
            RuleInfo(
                name: "Transfer by a process whose executable has no file",
                description:
                    "A file transfer made by a process running a binary with no file on disk: loaded through memfd_create or deleted after it started, as fileless malware runs.",
                severity: 73, analytic: nil, technique: (id: "T1620", name: "Reflective Code Loading"), tactic: (id: "TA0005", name: "Defense Evasion"))
        case .nonstandardPort:
            RuleInfo(
                name: "File transfer on a non-standard port",
                description:
                    "A file-transfer client connected to a port other than its protocol's usual one (FTP over 443 or 80, SSH away from 22, TFTP away from 69).",
                severity: 47, analytic: nil, technique: (id: "T1571", name: "Non-Standard Port"), tactic: commandAndControl)
        case .protocolMismatch:
            RuleInfo(
                name: "File-transfer port carrying another protocol",
                description:
                    "A port of a file-transfer protocol (20, 21, 22, 69, 139, 445, 989, 990) carries traffic whose first bytes are another protocol (TLS or HTTP on 21, SSH on 21, FTP on 22).",
                severity: 47, analytic: nil, technique: (id: "T1071.002", name: "Application Layer Protocol: File Transfer Protocols"),
                tactic: commandAndControl)
        case .firstSeenProcess:
            RuleInfo(
                name: "First outbound connection of an executable",
                description: "After the learning period, an executable that never connected out before connected to an untrusted destination.",
                severity: 21, analytic: nil, technique: (id: "T1071", name: "Application Layer Protocol"), tactic: commandAndControl)
        case .yaraMatch:
            RuleInfo(
                name: "YARA rule match",
                description:
                    "A YARA rule matched a file a process executed or tried to execute, the executable of a process that started listening on TCP, or a file a transfer may upload.",
                severity: 73, analytic: nil, technique: nil, tactic: nil)
        case .agentHealth:
            RuleInfo(
                name: "xferwatch agent health",
                description: "The agent lost audit events, its kernel rules were changed by someone else, or an output fell behind.",
                severity: 73, analytic: nil, technique: nil, tactic: nil)
        }
    }
}
