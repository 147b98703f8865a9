import ByteJSON
import Flows
import HostState

/// An alert as one ECS-aligned JSON object (`event.kind` = alert); xferwatch's own fields
/// under `xferwatch`.
public enum AlertJSON {
    public static func write(_ alert: Alert, hostname: String, users: UserNames, to json: inout JSONWriter) {
        let info = alert.rule.info
        json.beginObject()
        json.key("@timestamp"); json.timestamp(milliseconds: alert.time)
        json.key("event")
        json.beginObject()
        json.key("kind"); json.string("alert")
        json.key("id"); json.string(alert.id)
        json.key("severity"); json.number(info.severity)
        json.key("category"); json.beginArray(); json.string(alert.flow != nil || alert.remote != nil ? "network" : "process"); json.endArray()
        json.endObject()

        json.key("rule")
        json.beginObject()
        json.key("id"); json.string(alert.rule.rawValue)
        json.key("name"); json.string(info.name)
        json.key("description"); json.string(info.description)
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

        json.key("host"); json.beginObject(); json.key("hostname"); json.string(hostname); json.endObject()

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

        json.key("xferwatch")
        json.beginObject()
        json.key("analytic")
        if let analytic = info.analytic { json.string(analytic) } else { json.null() }
        json.key("reasons"); FlowJSON.strings(alert.reasons, to: &json)
        if let interactivity = alert.interactivity {
            json.key("interactive_reasons"); FlowJSON.strings(interactivity.reasons, to: &json)
        }
        if let process = alert.process { json.key("ancestry"); FlowJSON.ancestry(of: process, to: &json) }
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
}
