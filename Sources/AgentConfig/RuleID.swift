/// The stable ids of xferwatch's rules, as agent.conf and alerts spell them.
public enum RuleID: String, CaseIterable, Sendable, Hashable {
    case noninteractiveTransfer = "an1170.noninteractive_transfer"
    case largeTransfer = "an1170.large_transfer"
    case commandLine = "an1170.command_line"
    case lolbinTransfer = "an1169.lolbin_transfer"
    case outboundRatio = "an1169.outbound_ratio"
    case suspiciousFilename = "an1169.suspicious_filename"
    case scriptedFTP = "ftp.scripted"
    case ftpToInternet = "ftp.internet"
    case ftpToInternetOtherPath = "ftp.internet_other_path"
    case smbToInternet = "smb.internet"
    case noFileExecutable = "transfer.no_file_executable"
    case nonstandardPort = "transfer.nonstandard_port"
    case protocolMismatch = "transfer.protocol_mismatch"
    case firstSeenProcess = "network.first_seen_process"
    case yaraMatch = "yara.match"
    case agentHealth = "agent.health"
}
