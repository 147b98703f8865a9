import AuditIngest
import ByteJSON
import HostState

/// A finished flow as one JSON object with ECS field names; xferwatch's own under `xferwatch`.
public enum FlowJSON {
    public static func write(_ flow: Flow, to json: inout JSONWriter) {
        json.beginObject()
        json.key("@timestamp"); json.timestamp(milliseconds: flow.end ?? flow.start)
        json.key("event")
        json.beginObject()
        json.key("kind"); json.string("event")
        json.key("category"); json.beginArray(); json.string("network"); json.endArray()
        json.key("type"); json.beginArray(); json.string("connection"); json.string("end"); json.endArray()
        json.key("start"); json.timestamp(milliseconds: flow.start)
        if let end = flow.end { json.key("end"); json.timestamp(milliseconds: end) }
        json.endObject()

        json.key("network"); network(flow, to: &json)

        endpoints(flow, bytesOut: flow.sessionBytesOut, bytesIn: flow.sessionBytesIn, to: &json)

        json.key("process")
        process(flow.process, to: &json, withParent: true)
        json.key("user")
        json.beginObject()
        if let uid = flow.process.uid { json.key("id"); json.string(String(uid)) }
        json.endObject()

        container(of: flow.process, to: &json)

        json.key("xferwatch")
        json.beginObject()
        json.key("flow_id"); json.number(flow.id)
        json.key("state"); json.string(flow.endReason?.rawValue ?? "open")
        json.key("bytes_exact"); json.bool(flow.bytesExact && flow.dataConnections.allSatisfy(\.bytesExact))
        json.key("transfer")
        json.beginObject()
        json.key("direction"); json.string(flow.transferDirection.rawValue)
        if let program = flow.transferProcess {
            json.key("program")
            process(program, to: &json, withParent: false)
        }
        json.endObject()
        json.key("process"); processDetails(flow.process, program: flow.transferProcess ?? flow.process, to: &json)
        json.key("interactive"); json.bool(flow.interactivity.isInteractive)
        json.key("interactive_reasons")
        json.beginArray()
        for reason in flow.interactivity.reasons { json.string(reason) }
        json.endArray()
        json.key("ancestry"); ancestry(of: flow.process, to: &json)
        if let namespace = flow.namespace { json.key("network_namespace"); json.number(namespace) }
        // The server that accepted it, or one of its data connections (vsftpd's listener
        // accepts the data connections it announced).
        if let linked = ([flow] + flow.dataConnections).first(where: { $0.server != nil }), let server = linked.server {
            json.key("destination_process")
            json.beginObject()
            json.key("pid"); json.number(server.pid)
            json.key("executable"); json.string(server.executable)
            if let namespace = linked.serverNamespace {
                json.key("network_namespace"); json.number(namespace)
                json.key("other_network_namespace"); json.bool(namespace != (flow.namespace ?? flow.process.networkNamespace))
            }
            server.container.map {
                json.key("container_id"); json.string($0.id)
            }
            json.endObject()
        }
        // When the socket was found. (The audit record's own time comes from the kernel's coarse
        // clock: up to one tick, 4 ms at HZ=250, before the real time of the call.)
        if let attributed = flow.attributedAt { json.key("attributed"); json.timestamp(milliseconds: attributed) }
        if flow.networkProtocol == .tftp {
            json.key("tftp")
            json.beginObject()
            if let port = flow.transferPort { json.key("transfer_port"); json.number(port) }
            json.key("datagrams_out"); json.number(flow.datagramsOut)
            json.endObject()
        }
        content(flow, to: &json)
        hops(flow, to: &json)
        if flow.isFTPSession {
            json.key("data_connections")
            json.beginArray()
            for data in flow.dataConnections {
                json.beginObject()
                json.key("mode"); json.string(data.accepted ? "active" : "passive")
                if let verb = announcement(of: data, in: flow) { json.key("announced_by"); json.string(verb) }
                json.key("start"); json.timestamp(milliseconds: data.start)
                if let end = data.end { json.key("end"); json.timestamp(milliseconds: end) }
                endpoints(data, bytesOut: data.bytesOut, bytesIn: data.bytesIn, to: &json)
                json.endObject()
            }
            json.endArray()
        }
        json.endObject()
        json.endObject()
    }

    /// The argument bytes each ancestor (the parent too) may show. A parent such as
    /// `bash -c '<long script>'` can carry hundreds of kilobytes; the head says what it was, and
    /// an alert must still fit one syslog message. The process's own command line is never cut.
    public static let ancestorArgumentBytes = 1024

    /// `xferwatch.process` in flows and alerts, what ECS has no field for: stdin, how the
    /// process was learned, its login uid and audit session, the terminal's name, how much of
    /// the parent's arguments `process.parent.args` left out, and the identity of `program`
    /// (the flow's transfer program: scp for its ssh) with, under another path, `identity_note`.
    public static func processDetails(_ process: ProcessRecord, program: ProcessRecord, to json: inout JSONWriter) {
        json.beginObject()
        json.key("stdin"); json.string(process.stdin.rawValue)
        json.key("known_from"); json.string(process.source.rawValue)
        if let auid = process.auid { json.key("audit_user_id"); json.string(String(auid)) }
        if let session = process.sessionID { json.key("audit_session_id"); json.number(session) }
        if let tty = process.tty { json.key("tty"); json.string(tty) }
        if process.executableHasNoFile { json.key("executable_on_disk"); json.bool(false) }
        if let parent = process.parent, case let omitted = shownArguments(parent).omitted, omitted > 0 {
            json.key("parent_args_truncated"); json.number(omitted)
        }
        if let identity = program.identity {
            json.key("identity"); json.string(identity.name)
            if let note = program.identityNote { json.key("identity_note"); json.string(note) }
        }
        json.endObject()
    }

    /// The Linux character device of a terminal audit names (`pts3`, `tty1`, `ttyS0`), as ECS's
    /// `process.tty.char_device` wants it; nil for names it does not know.
    static func characterDevice(_ name: String) -> (major: Int, minor: Int)? {
        if name.hasPrefix("pts"), let n = Int(name.dropFirst(3)) { return (136 + n / 256, n % 256) }
        if name.hasPrefix("ttyS"), let n = Int(name.dropFirst(4)) { return (4, 64 + n) }
        if name.hasPrefix("tty"), let n = Int(name.dropFirst(3)), n < 64 { return (4, n) }
        return nil
    }

    /// ECS `container` (id, runtime, and as its runtime's state names them: name, image) and,
    /// for Kubernetes, `orchestrator` (type, the pod by its uid, name and namespace), as
    /// top-level keys; nothing for a process on the host.
    public static func container(of process: ProcessRecord, to json: inout JSONWriter) {
        guard let container = process.container else { return }
        let details = container.details
        json.key("container")
        json.beginObject()
        json.key("id"); json.string(container.id)
        json.key("runtime"); json.string(container.runtime)
        if let name = details?.name { json.key("name"); json.string(name) }
        if let image = details?.imageName {
            json.key("image"); json.beginObject()
            json.key("name"); json.string(image)
            if let tag = details?.imageTag { json.key("tag"); strings([tag], to: &json) }
            json.endObject()
        }
        json.endObject()
        guard container.podUID != nil || details?.podName != nil else { return }
        json.key("orchestrator")
        json.beginObject()
        json.key("type"); json.string("kubernetes")
        if let namespace = details?.podNamespace { json.key("namespace"); json.string(namespace) }
        json.key("resource"); json.beginObject(); json.key("type"); json.string("pod")
        if let pod = container.podUID { json.key("id"); json.string(pod) }
        if let name = details?.podName { json.key("name"); json.string(name) }
        json.endObject()
        json.endObject()
    }

    /// What the packet tap read, as keys of `xferwatch`: `protocol_evidence`,
    /// `protocol_mismatch`, `ftp` (user, transfer commands with their files, announced data
    /// ports), `ssh` (both identification strings), `tftp_request`, `smb_version`. No password
    /// is ever among them.
    public static func content(_ flow: Flow, to json: inout JSONWriter) {
        let content = flow.content
        if let evidence = content.evidence { json.key("protocol_evidence"); json.string(evidence) }
        if let mismatch = content.mismatch { json.key("protocol_mismatch"); json.string(mismatch) }
        if content.ftpUser != nil || !content.ftpTransfers.isEmpty || !content.announcedPorts.isEmpty {
            json.key("ftp")
            json.beginObject()
            if let user = content.ftpUser { json.key("user"); json.string(user) }
            json.key("transfers")
            json.beginArray()
            for transfer in content.ftpTransfers {
                json.beginObject(); json.key("command"); json.string(transfer.command); json.key("file"); json.string(transfer.file); json.endObject()
            }
            json.endArray()
            if content.authTLS { json.key("auth_tls"); json.bool(true) }
            json.endObject()
        }
        if content.sshClient != nil || content.sshServer != nil {
            json.key("ssh")
            json.beginObject()
            if let client = content.sshClient { json.key("client"); json.string(client) }
            if let server = content.sshServer { json.key("server"); json.string(server) }
            json.endObject()
        }
        if let request = content.tftpRequest {
            json.key("tftp_request")
            json.beginObject()
            json.key("opcode"); json.string(request.write ? "WRQ" : "RRQ")
            json.key("file"); json.string(request.file)
            json.key("mode"); json.string(request.mode)
            json.endObject()
        }
        if let version = content.smbVersion { json.key("smb_version"); json.number(version) }
        if !content.smbFiles.isEmpty {
            json.key("smb")
            json.beginObject()
            json.key("files")
            json.beginArray()
            for file in content.smbFiles {
                json.beginObject(); json.key("name"); json.string(file.file); json.key("write"); json.bool(file.write); json.endObject()
            }
            json.endArray()
            json.endObject()
        }
    }

    /// How a data connection was tied to its session: the PASV/EPSV reply or PORT/EPRT
    /// command that announced its port, when the tap read it.
    static func announcement(of data: Flow, in session: Flow) -> String? {
        let ports = session.content.announcedPorts
        guard !ports.isEmpty else { return nil }
        if data.accepted { return data.socket.flatMap { ports[$0.localPort] } }
        return ports[data.remotePort]
    }

    /// ECS network: transport, ip version, protocol, direction.
    public static func network(_ flow: Flow, to json: inout JSONWriter) {
        json.beginObject()
        if let transport = flow.transport { json.key("transport"); json.string(transport.rawValue) }
        json.key("type"); json.string(flow.family == 10 ? "ipv6" : "ipv4")
        json.key("protocol"); json.string(flow.networkProtocol.rawValue)
        json.key("direction"); json.string(flow.networkDirection)
        json.endObject()
    }

    /// ECS source (this host) and destination (the remote end); bytes each side sent.
    public static func endpoints(_ flow: Flow, bytesOut: UInt64?, bytesIn: UInt64?, to json: inout JSONWriter) {
        json.key("source")
        json.beginObject()
        if let socket = flow.socket, socket.localPort != 0 {
            json.key("ip"); json.string(socket.localAddress.description)
            json.key("port"); json.number(socket.localPort)
        }
        if let bytesOut { json.key("bytes"); json.number(bytesOut) }
        json.endObject()
        // Through a proxy, the destination is what the client asked it for; the proxy itself
        // is `xferwatch.proxy`.
        json.key("destination")
        json.beginObject()
        switch flow.content.proxy?.target {
        case .name(let name)?:
            json.key("address"); json.string(name)
            json.key("domain"); json.string(name)
        case .address(let bytes)?:
            json.key("ip"); json.string(IPAddress(bytes: bytes).description)
        case nil:
            json.key("ip"); json.string(flow.remoteAddress.description)
        }
        json.key("port"); json.number(flow.targetPort)
        if let bytesIn { json.key("bytes"); json.number(bytesIn) }
        json.endObject()
    }

    /// `xferwatch.proxy` (the proxy the client spoke to: kind, address, port) and
    /// `xferwatch.relay` (the process on this host that carried the flow on, and where to).
    public static func hops(_ flow: Flow, to json: inout JSONWriter) {
        if let proxy = flow.content.proxy {
            json.key("proxy")
            json.beginObject()
            json.key("kind"); json.string(proxy.kind.rawValue)
            json.key("ip"); json.string(flow.remoteAddress.description)
            json.key("port"); json.number(flow.remotePort)
            json.endObject()
        }
        if let relay = flow.relay {
            json.key("relay")
            json.beginObject()
            json.key("pid"); json.number(relay.process.pid)
            json.key("executable"); json.string(relay.process.executable)
            json.key("args"); strings(relay.process.arguments, to: &json)
            if let proto = relay.networkProtocol { json.key("protocol"); json.string(proto.rawValue) }
            json.key("destination")
            json.beginObject()
            json.key("ip"); json.string(relay.remoteAddress.description)
            json.key("port"); json.number(relay.remotePort)
            json.endObject()
            json.endObject()
        }
    }

    /// ECS process; `interactive` when the caller knows it (alerts do).
    public static func process(_ p: ProcessRecord, to json: inout JSONWriter, withParent: Bool, interactive: Bool? = nil) {
        json.beginObject()
        json.key("pid"); json.number(p.pid)
        json.key("name"); json.string(p.executableName)
        json.key("executable"); json.string(p.executable)
        json.key("args"); strings(p.arguments, to: &json)
        json.key("command_line"); json.string(p.commandLine)
        if let cwd = p.workingDirectory { json.key("working_directory"); json.string(cwd) }
        json.key("start"); json.timestamp(milliseconds: p.startTime)
        if let device = p.tty.flatMap(characterDevice) {
            json.key("tty"); json.beginObject(); json.key("char_device"); json.beginObject()
            json.key("major"); json.number(device.major); json.key("minor"); json.number(device.minor)
            json.endObject(); json.endObject()
        }
        // ECS: process.user and process.group are the effective ids, real_ and saved_ the others.
        func identity(_ name: StaticString, _ id: UInt32?) {
            guard let id else { return }
            json.key(name); json.beginObject(); json.key("id"); json.string(String(id)); json.endObject()
        }
        identity("user", p.euid)
        identity("real_user", p.uid)
        identity("saved_user", p.suid)
        identity("group", p.egid)
        identity("real_group", p.gid)
        identity("saved_group", p.sgid)
        if let interactive { json.key("interactive"); json.bool(interactive) }
        hash(of: p, to: &json)
        if withParent {
            json.key("parent")
            json.beginObject()
            json.key("pid"); json.number(p.ppid)
            if let parent = p.parent {
                json.key("name"); json.string(parent.executableName)
                json.key("executable"); json.string(parent.executable)
                ancestorArguments(parent, commandLine: true, countingCut: false, to: &json)
                hash(of: parent, to: &json)
            }
            json.endObject()
        }
        json.endObject()
    }

    /// ECS `hash` (md5, sha1, sha256) of the process's binary, when it was hashed.
    static func hash(of process: ProcessRecord, to json: inout JSONWriter) {
        guard let digests = process.executableDigests else { return }
        json.key("hash")
        json.beginObject()
        json.key("md5"); json.string(digests.md5)
        json.key("sha1"); json.string(digests.sha1)
        json.key("sha256"); json.string(digests.sha256)
        json.endObject()
    }

    public static func strings(_ values: [String], to json: inout JSONWriter) {
        json.beginArray()
        for value in values { json.string(value) }
        json.endArray()
    }
}
