import AgentConfig
import AuditIngest
import Flows
import HostState
import Patterns
import Runtime

/// Why a flow matches: the reasons the rules quote, each from the flow and its processes alone.
extension Detector {
    /// Why the flow's bytes leave the trusted networks, or nil when they do not: the address a
    /// proxy was asked for (a name counts as outside: the host never resolved it), the
    /// connection of a relay on this host that carries it on, then the peer itself.
    func untrustedDestination(_ flow: Flow) -> String? {
        if let proxy = flow.content.proxy {
            let via = "the \(proxy.kind.rawValue) proxy \(flow.remoteAddress):\(flow.remotePort)"
            switch proxy.target {
            case .name(let name):
                return "destination \(name):\(proxy.port) is a name \(via) resolves, not a trusted address"
            case .address(let bytes) where !isTrusted(IPAddress(bytes: bytes)):
                return "destination \(IPAddress(bytes: bytes)):\(proxy.port), asked of \(via), is untrusted"
            case .address: break
            }
        }
        if let relay = flow.relay, !isTrusted(relay.remoteAddress) {
            return
                "relay \(Self.imageName(relay.process)) (pid \(relay.process.pid)) carries it to \(relay.remoteAddress):\(relay.remotePort), which is untrusted"
        }
        return isTrusted(flow.remoteAddress) ? nil : "destination \(flow.remoteAddress) is untrusted"
    }

    /// The process and its two nearest ancestors, each checked against process_image_filter
    /// (by the binary it is: a renamed python is python) and for an interpreter running a
    /// script from a scratch or hidden place.
    func lolbinReasons(_ flow: Flow) -> [String] {
        let roles = ["process", "parent", "grandparent"]
        var reasons: [String] = []
        for (role, image) in zip(roles, [flow.process] + flow.process.ancestors(limit: 2)) {
            let who = "\(role) \(Self.imageName(image)) (pid \(image.pid))"
            let subject = ([image.identity?.path ?? image.executable] + image.arguments.dropFirst()).joined(separator: " ")
            if let pattern = rules.imageFilter.first(where: { $0.matches(subject) }) {
                reasons.append("\(who) matches \(pattern.source)" + (image.identityNote.map { " (\($0))" } ?? ""))
            } else if TransferTools.isInterpreter(image), let script = TransferTools.scriptFile(image), TransferTools.isScratchOrHidden(script) {
                reasons.append("\(who) runs the script \(script) from a world-writable or hidden place")
            }
        }
        return reasons
    }

    /// The program's name; busybox applets as `busybox tftp`.
    static func imageName(_ p: ProcessRecord) -> String {
        let busybox = p.identity?.name == "busybox" || p.executableName == "busybox"
        return busybox && p.programName != "busybox" ? "busybox \(p.programName)" : p.programName
    }

    /// Words of the command line whose base name looks like an archive or a hash.
    func suspiciousNames(_ p: ProcessRecord) -> [String] { suspiciousNames(Array(p.arguments.dropFirst())) }

    func suspiciousNames(_ arguments: [String]) -> [String] {
        var found: [String] = []
        for argument in arguments {
            for word in argument.split(whereSeparator: { $0 == " " || $0 == ";" || $0 == "\t" }) {
                let name = baseName(String(word))
                if !name.isEmpty, !found.contains(name), rules.filenamePatterns.contains(where: { $0.matches(name) }) { found.append(name) }
            }
        }
        return found
    }

    /// A plain SSH session that moved `ssh_transfer_minimum_bytes` one way: what it carried.
    func sshTransfer(_ flow: Flow) -> String? {
        let minimum = UInt64(rules.settings.sshTransferMinimumBytes)
        let out = flow.bytesOut ?? 0, received = flow.bytesIn ?? 0
        guard max(out, received) >= minimum else { return nil }
        let driver = flow.transferProcess.map { " for \(Self.imageName($0)) (pid \($0.pid))" } ?? ""
        return "SSH session\(driver) carried \(out) bytes out and \(received) in (\(flow.transferDirection.rawValue); a transfer from \(minimum) bytes one way)"
    }

    /// FTP where Elastic's rule does not look: content or client said FTP, and the session
    /// reaches past the trusted networks on another port, through a proxy or relay, or from a
    /// source that is not RFC 1918 (IPv6 included).
    func ftpToInternetOtherPathReasons(_ flow: Flow, outside: String?) -> [String]? {
        guard flow.isFTPSession, let outside else { return nil }
        var paths: [String] = []
        if let proxy = flow.content.proxy { paths.append("through the \(proxy.kind.rawValue) proxy \(flow.remoteAddress):\(flow.remotePort)") }
        if let relay = flow.relay { paths.append("carried on by \(Self.imageName(relay.process)) (pid \(relay.process.pid)) on this host") }
        if flow.targetPort != 20 && flow.targetPort != 21 { paths.append("on port \(flow.targetPort)") }
        if let source = flow.socket?.localAddress, flow.socket?.localPort != 0, !source.isLoopback, !Self.rfc1918.contains(address: source.bytes) {
            paths.append("from \(source.bytes.count == 16 && !IPNetwork.isIPv4Mapped(source.bytes) ? "the IPv6" : "the non-RFC 1918") source \(source)")
        }
        guard !paths.isEmpty else { return nil }
        let how = flow.content.evidence.map { "content: \($0)" } ?? "client \(Self.imageName(flow.transferProcess ?? flow.process))"
        return ["\(flow.networkProtocol.rawValue.uppercased()) session " + paths.joined(separator: ", "), how, outside]
    }

    static let rfc1918 = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"].compactMap(IPNetwork.init)

    func ftpToInternetReasons(_ flow: Flow) -> [String]? {
        // Elastic's ports and source; its destination ranges are trusted_networks' defaults.
        guard flow.transport != .udp, flow.content.proxy == nil, flow.remotePort == 20 || flow.remotePort == 21, !isTrusted(flow.remoteAddress)
        else { return nil }
        let destination = "destination \(flow.remoteAddress):\(flow.remotePort) is on the Internet"
        // A replayed log has no local address (audit records only the peer).
        guard let source = flow.socket?.localAddress, flow.socket?.localPort != 0 else {
            return ["source address not recorded", destination]
        }
        guard Self.rfc1918.contains(address: source.bytes) else { return nil }
        return ["source \(source) is private (RFC 1918)", destination]
    }
}
