import ByteJSON
import Flows
import HostState
import Scanning

/// An alert as one ECS-aligned JSON object (`event.kind` = alert); xferwatch's own fields
/// under `xferwatch`.
public enum AlertJSON {
    public static func write(_ alert: Alert, hostname: String?, users: UserNames, to json: inout JSONWriter) {
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

        if let hostname { json.key("host"); json.beginObject(); json.key("hostname"); json.string(hostname); json.endObject() }

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
