import ByteJSON
import HostState

/// A process's ancestors in a flow document: parent first, their command lines cut to fit.
extension FlowJSON {
    /// Parent first, up to pid 1 or the first unknown ancestor.
    public static func ancestry(of process: ProcessRecord, to json: inout JSONWriter) {
        json.beginArray()
        for ancestor in process.ancestors() {
            json.beginObject()
            json.key("pid"); json.number(ancestor.pid)
            json.key("executable"); json.string(ancestor.executable)
            ancestorArguments(ancestor, commandLine: false, to: &json)
            json.endObject()
        }
        json.endArray()
    }

    /// `args` (and `command_line`) cut at `ancestorArgumentBytes`; `args_truncated` says how
    /// many argument bytes went.
    /// `countingCut`: `args_truncated` beside the arguments (ancestry, under xferwatch); the
    /// ECS parent has no such field, `xferwatch.process.parent_args_truncated` carries it.
    static func ancestorArguments(_ ancestor: ProcessRecord, commandLine: Bool, countingCut: Bool = true, to json: inout JSONWriter) {
        let (heads, omitted) = shownArguments(ancestor)
        json.key("args")
        json.beginArray()
        for head in heads { json.string(head) }
        json.endArray()
        if omitted > 0 && countingCut { json.key("args_truncated"); json.number(omitted) }
        if commandLine { json.key("command_line"); json.string(utf8Prefix(ancestor.commandLine, maximumBytes: ancestorArgumentBytes)) }
    }

    /// An ancestor's arguments within `ancestorArgumentBytes`: the heads shown and the bytes
    /// left out.
    static func shownArguments(_ ancestor: ProcessRecord) -> (heads: [ArraySlice<UInt8>], omitted: Int) {
        var heads: [ArraySlice<UInt8>] = []
        var room = ancestorArgumentBytes
        var omitted = 0
        var cut = false
        for argument in ancestor.arguments {
            let length = argument.utf8.count
            if cut { omitted += length; continue }
            let head = utf8Prefix(argument, maximumBytes: room)
            heads.append(head)
            room -= head.count
            if head.count < length { omitted += length - head.count; cut = true }
        }
        return (heads, omitted)
    }

    /// The first bytes of `value`, at most `maximumBytes`, never ending inside a character.
    static func utf8Prefix(_ value: String, maximumBytes: Int) -> ArraySlice<UInt8> {
        let bytes = Array(value.utf8)
        guard bytes.count > maximumBytes else { return bytes[...] }
        var end = max(maximumBytes, 0)
        while end > 0 && bytes[end] & 0xC0 == 0x80 { end -= 1 }
        return bytes[..<end]
    }
}
