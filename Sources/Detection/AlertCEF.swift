import AgentConfig
import Flows
import HostState
import Runtime

/// An alert as one ArcSight CEF record (`CEF:0|xferwatch|xferwatch|version|rule id|name|severity|ext`)
/// with the standard extension keys: rt, src, spt, dst, dpt, proto, app, out, in, suser, suid,
/// spid, sproc, filePath, fname, fsize, fileHash, dvchost, externalId, msg, cat; and labelled
/// custom strings cs1 (rule id), cs2 (ATT&CK technique), cs3 (command line), cs4 (parent
/// executable), cs5 (analytic), cs6 (YARA rule file).
public enum AlertCEF {
    /// `valueLimit`: a value longer than this keeps its head and says how many bytes went (a
    /// bounded syslog message); nil writes every value whole.
    public static func write(_ alert: Alert, hostname: String?, users: UserNames, valueLimit: Int? = nil, to out: inout [UInt8]) {
        let info = alert.rule.info
        out += "CEF:0|xferwatch|xferwatch|".utf8
        header(XferwatchVersion.current, to: &out)
        header(alert.rule.rawValue, to: &out)
        header(alert.ruleName, to: &out)
        // CEF severity is 0-10; ECS severity 1-100.
        out += "\(min(10, (alert.severity + 5) / 10))|".utf8

        var first = true
        func field(_ key: String, _ value: String?) {
            guard let value, !value.isEmpty else { return }
            if !first { out.append(0x20) }
            first = false
            out += key.utf8
            out.append(UInt8(ascii: "="))
            var shown = value.utf8[...]
            var cut = 0
            if let valueLimit, shown.count > valueLimit {
                var end = shown.index(shown.startIndex, offsetBy: valueLimit)
                // Back up over continuation bytes to the start of the character that would be split.
                while end > shown.startIndex && shown[end] & 0xC0 == 0x80 { end = shown.index(before: end) }
                cut = shown.count - shown.distance(from: shown.startIndex, to: end)
                shown = shown[..<end]
            }
            defer { if cut > 0 { out += "…[\(cut) bytes cut]".utf8 } }
            for byte in shown {
                switch byte {
                case UInt8(ascii: "\\"), UInt8(ascii: "="): out += [UInt8(ascii: "\\"), byte]
                case 0x0A: out += "\\n".utf8
                case 0x0D: out += "\\r".utf8
                default: out.append(byte)
                }
            }
        }

        field("rt", String(alert.time))
        field("externalId", alert.id)
        field("dvchost", hostname)
        field("cat", alert.flow != nil || alert.remote != nil ? "network" : alert.yara != nil ? "malware" : "process")
        field("cs1Label", "ruleId"); field("cs1", alert.rule.rawValue)
        if let technique = info.technique { field("cs2Label", "mitreTechnique"); field("cs2", technique.id) }
        if let process = alert.process {
            field("spid", String(process.pid))
            field("sproc", process.executableName)
            if let uid = process.uid {
                field("suid", String(uid))
                field("suser", users.name(of: uid))
            }
            field("cs3Label", "commandLine"); field("cs3", process.commandLine)
            if let parent = process.parent { field("cs4Label", "parentExecutable"); field("cs4", parent.executable) }
        }
        if let analytic = info.analytic { field("cs5Label", "analytic"); field("cs5", analytic) }
        if let flow = alert.flow {
            if let socket = flow.socket, socket.localPort != 0 {
                field("src", socket.localAddress.description)
                field("spt", String(socket.localPort))
            }
            field("proto", (flow.transport ?? (flow.networkProtocol == .tftp ? .udp : .tcp)).rawValue.uppercased())
            field("app", flow.networkProtocol.rawValue)
            field("out", flow.sessionBytesOut.map(String.init))
            field("in", flow.sessionBytesIn.map(String.init))
        }
        if let destination = alert.destination {
            field("dst", destination.address.description)
            field("dpt", String(destination.port))
        }
        if let yara = alert.yara {
            field("filePath", yara.file.path)
            field("fname", String(yara.file.path.split(separator: "/").last ?? ""))
            field("fsize", String(yara.file.identity.size))
            field("fileHash", yara.file.sha256)
            field("cs6Label", "yaraRuleset"); field("cs6", yara.match.namespace)
        }
        field("msg", alert.reasons.joined(separator: "; "))
    }

    /// A header field: `|` and `\` escaped, line breaks as spaces (headers cannot carry them).
    private static func header(_ value: String, to out: inout [UInt8]) {
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "|"), UInt8(ascii: "\\"): out += [UInt8(ascii: "\\"), byte]
            case 0x0A, 0x0D: out.append(0x20)
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "|"))
    }
}
