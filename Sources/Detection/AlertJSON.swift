import AuditIngest
import ByteJSON
import Flows
import HostState
import Scanning

/// An alert as one ECS-aligned JSON object (`event.kind` = alert); xferwatch's own fields
/// under `xferwatch`.
public enum AlertJSON {
    public static func write(_ alert: Alert, origin: AlertOrigin, users: UserNames, to json: inout JSONWriter) {
        let info = alert.rule.info
        json.beginObject()
        json.key("@timestamp"); json.timestamp(milliseconds: alert.time)
        json.key("event")
        json.beginObject()
        json.key("kind"); json.string("alert")
        json.key("id"); json.string(alert.id)
        json.key("severity"); json.number(alert.severity)
        json.key("category"); json.beginArray()
        json.string(alert.flow != nil || alert.remote != nil ? "network" : alert.yara != nil ? "malware" : "process")
        json.endArray()
        json.endObject()

        json.key("rule")
        json.beginObject()
        json.key("id"); json.string(alert.rule.rawValue)
        if let yara = alert.yara {
            yaraRule(alert, yara, info: info, to: &json)
        } else {
            json.key("name"); json.string(info.name)
            json.key("description"); json.string(info.description)
        }
        json.endObject()

        if let technique = info.technique, let tactic = info.tactic {
            json.key("threat")
            json.beginObject()
            json.key("framework"); json.string("MITRE ATT&CK")
            json.key("technique"); json.beginObject()
            json.key("id"); json.string(technique.id); json.key("name"); json.string(technique.name)
            json.endObject()
            json.key("tactic"); json.beginObject()
            json.key("id"); json.string(tactic.id); json.key("name"); json.string(tactic.name)
            json.endObject()
            json.endObject()
        }

        host(origin.host, to: &json)
        if let agent = origin.agent { self.agent(agent, to: &json) }

        if let process = alert.process {
            json.key("user")
            json.beginObject()
            if let uid = process.uid {
                json.key("id"); json.string(String(uid))
                if let name = users.name(of: uid) { json.key("name"); json.string(name) }
            }
            json.endObject()
            json.key("process")
            FlowJSON.process(process, to: &json, withParent: true, interactive: alert.interactivity?.isInteractive)
            FlowJSON.container(of: process, to: &json)
        }

        if let flow = alert.flow {
            json.key("network"); FlowJSON.network(flow, to: &json)
            FlowJSON.endpoints(flow, bytesOut: flow.sessionBytesOut, bytesIn: flow.sessionBytesIn, to: &json)
        } else if let remote = alert.remote {
            json.key("destination")
            json.beginObject()
            json.key("ip"); json.string(remote.address.description)
            json.key("port"); json.number(remote.port)
            json.endObject()
        }

        if let yara = alert.yara {
            json.key("file")
            json.beginObject()
            json.key("path"); json.string(yara.file.path)
            json.key("size"); json.number(yara.file.identity.size)
            json.key("inode"); json.string(String(yara.file.identity.inode))
            if let sha256 = yara.file.sha256 {
                json.key("hash"); json.beginObject(); json.key("sha256"); json.string(sha256); json.endObject()
            }
            json.endObject()
        }

        related(alert, users: users, to: &json)

        json.key("xferwatch")
        json.beginObject()
        json.key("analytic")
        if let analytic = info.analytic { json.string(analytic) } else { json.null() }
        json.key("reasons"); FlowJSON.strings(alert.reasons, to: &json)
        if let interactivity = alert.interactivity {
            json.key("interactive_reasons"); FlowJSON.strings(interactivity.reasons, to: &json)
        }
        if let flow = alert.flow {
            FlowJSON.content(flow, to: &json)
            FlowJSON.hops(flow, to: &json)
        }
        if let process = alert.process {
            json.key("ancestry"); FlowJSON.ancestry(of: process, to: &json)
            json.key("process"); FlowJSON.processDetails(process, program: alert.flow?.transferProcess ?? process, to: &json)
        }
        if let yara = alert.yara {
            json.key("yara")
            json.beginObject()
            json.key("rule"); json.string(yara.match.rule)
            json.key("namespace"); json.string(yara.match.namespace)
            json.key("tags"); FlowJSON.strings(yara.match.tags, to: &json)
            json.key("meta")
            json.beginObject()
            for (key, value) in yara.match.meta {
                json.key(key.utf8)
                switch value {
                case .string(let text): json.string(text)
                case .integer(let number): json.number(number)
                case .boolean(let flag): json.bool(flag)
                }
            }
            json.endObject()
            json.endObject()
        }
        if let flow = alert.flow {
            json.key("flow_id"); json.number(flow.id)
            json.key("transfer")
            json.beginObject()
            json.key("direction"); json.string(flow.transferDirection.rawValue)
            if let program = flow.transferProcess {
                json.key("program"); FlowJSON.process(program, to: &json, withParent: false)
            }
            json.endObject()
            json.key("bytes_exact"); json.bool(flow.bytesExact && flow.dataConnections.allSatisfy(\.bytesExact))
        }
        json.endObject()
        json.endObject()
    }

    /// ECS `host`: its names, the machine id, the system and the addresses (a replay knows
    /// only the log's `node=`).
    private static func host(_ host: HostFacts, to json: inout JSONWriter) {
        guard host.hostname != nil || host.id != nil else { return }
        json.key("host")
        json.beginObject()
        if let hostname = host.hostname {
            json.key("hostname"); json.string(hostname)
            json.key("name"); json.string(hostname)
        }
        if let id = host.id { json.key("id"); json.string(id) }
        if let architecture = host.architecture { json.key("architecture"); json.string(architecture) }
        if !host.addresses.isEmpty { json.key("ip"); FlowJSON.strings(host.addresses, to: &json) }
        if let os = host.os {
            json.key("os")
            json.beginObject()
            json.key("type"); json.string("linux")
            for (key, value) in [
                ("family", os.family), ("platform", os.platform), ("name", os.name), ("version", os.version), ("full", os.full), ("kernel", os.kernel),
            ] {
                if let value { json.key(key.utf8); json.string(value) }
            }
            json.endObject()
        }
        json.endObject()
    }

    private static func agent(_ agent: AlertOrigin.Agent, to json: inout JSONWriter) {
        json.key("agent")
        json.beginObject()
        json.key("type"); json.string(AlertOrigin.Agent.type)
        json.key("version"); json.string(agent.version)
        if let id = agent.id { json.key("id"); json.string(id) }
        if let ephemeral = agent.ephemeralID { json.key("ephemeral_id"); json.string(ephemeral) }
        json.endObject()
    }

    /// ECS `related`: the addresses, users and hashes the alert names, each once, to pivot on.
    private static func related(_ alert: Alert, users: UserNames, to json: inout JSONWriter) {
        var addresses: [String] = []
        var names: [String] = []
        var hashes: [String] = []
        func add(_ value: String?, to list: inout [String]) {
            if let value, !value.isEmpty, !list.contains(value) { list.append(value) }
        }
        if let flow = alert.flow {
            add(flow.socket.flatMap { $0.localPort != 0 ? $0.localAddress.description : nil }, to: &addresses)
            if case .address(let bytes)? = flow.content.proxy?.target { add(IPAddress(bytes: bytes).description, to: &addresses) }
            add(flow.remoteAddress.description, to: &addresses)
            add(flow.content.ftpUser, to: &names)
        } else if let remote = alert.remote {
            add(remote.address.description, to: &addresses)
        }
        var processes: [ProcessRecord] = []
        for process in [alert.process, alert.process?.parent, alert.flow?.transferProcess] {
            if let process, !processes.contains(where: { $0 === process }) { processes.append(process) }
        }
        for process in processes {
            for uid in [process.uid, process.euid].compactMap({ $0 }) { add(users.name(of: uid) ?? String(uid), to: &names) }
            if let digests = process.executableDigests {
                add(digests.md5, to: &hashes); add(digests.sha1, to: &hashes); add(digests.sha256, to: &hashes)
            }
        }
        add(alert.yara?.file.sha256, to: &hashes)
        guard !addresses.isEmpty || !names.isEmpty || !hashes.isEmpty else { return }
        json.key("related")
        json.beginObject()
        if !addresses.isEmpty { json.key("ip"); FlowJSON.strings(addresses, to: &json) }
        if !names.isEmpty { json.key("user"); FlowJSON.strings(names, to: &json) }
        if !hashes.isEmpty { json.key("hash"); FlowJSON.strings(hashes, to: &json) }
        json.endObject()
    }

    /// ECS rule fields from the YARA rule: its name (prefixed `yara:`), its meta's description,
    /// author and reference, and the rule file as the ruleset.
    private static func yaraRule(_ alert: Alert, _ yara: YaraFinding, info: RuleInfo, to json: inout JSONWriter) {
        json.key("name"); json.string(alert.ruleName)
        json.key("description"); json.string(yara.match.metaString("description") ?? info.description)
        if let author = yara.match.metaString("author") {
            json.key("author"); json.beginArray(); json.string(author); json.endArray()
        }
        if let reference = yara.match.metaString("reference") { json.key("reference"); json.string(reference) }
        json.key("ruleset"); json.string(yara.match.namespace)
    }
}
