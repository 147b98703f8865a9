import Synchronization

/// An audit record type: the number the kernel puts in the netlink header, or the
/// name auditd writes after `type=`.
public struct AuditRecordType: Hashable, Sendable, CustomStringConvertible {
    public let code: UInt16

    public init(code: UInt16) { self.code = code }

    public static let login = AuditRecordType(code: 1006)
    public static let syscall = AuditRecordType(code: 1300)
    public static let path = AuditRecordType(code: 1302)
    public static let configChange = AuditRecordType(code: 1305)
    public static let sockaddr = AuditRecordType(code: 1306)
    /// A process joined or left the multicast group: emitted in the listener's syscall, which
    /// is rarely audited, so it usually comes alone.
    public static let eventListener = AuditRecordType(code: 1335)
    public static let cwd = AuditRecordType(code: 1307)
    public static let execve = AuditRecordType(code: 1309)
    public static let endOfEvent = AuditRecordType(code: 1320)
    public static let proctitle = AuditRecordType(code: 1327)

    /// Codes at or above this were handed out for names libaudit did not know.
    static let dynamicBase: UInt16 = 0xF000

    public var name: String { TypeNames.shared.name(of: code) }
    public var description: String { name }

    /// Types whose records belong to a syscall event: they arrive with SYSCALL and end with EOE.
    public var isSyscallAuxiliary: Bool { code >= 1300 && code < 1400 }

    /// Types the kernel and user space emit as events of one record, never followed by EOE:
    /// user-space messages (1100-1299: USER_*, DAEMON_*, ...) and kernel messages (2000-2099).
    public var isSingleRecordEvent: Bool {
        (code >= 1100 && code < 1300) || (code >= 2000 && code < 2100)
    }

    /// Records auditd writes about itself (DAEMON_START, DAEMON_END...), serialled by auditd.
    public var isDaemonMessage: Bool { code >= 1200 && code < 1300 }

    /// The type named by `bytes` (e.g. `SYSCALL`, `UNKNOWN[1334]`).
    public init?(name bytes: UnsafeRawBufferPointer) {
        guard let code = TypeNames.shared.code(of: bytes) else { return nil }
        self.code = code
    }
}

/// Name <-> code lookup. Known names are found in a fixed open-addressing table without
/// allocating; unknown names get a dynamic code under a lock (rare: newer auditd versions).
final class TypeNames: Sendable {
    static let shared = TypeNames()

    private let slots: [(hash: UInt64, code: UInt16, name: StaticString)?]
    private let mask: Int
    private let names: [UInt16: String]
    private let dynamic = Mutex<(byName: [String: UInt16], byCode: [UInt16: String])>(([:], [:]))

    private init() {
        var size = 1
        while size < AuditRecordType.knownTypes.count * 4 { size <<= 1 }
        var slots = [(hash: UInt64, code: UInt16, name: StaticString)?](repeating: nil, count: size)
        var names: [UInt16: String] = [:]
        for (code, name) in AuditRecordType.knownTypes {
            let hash = name.withUTF8Buffer { TypeNames.hash(UnsafeRawBufferPointer($0)) }
            var index = Int(truncatingIfNeeded: hash) & (size - 1)
            while slots[index] != nil { index = (index + 1) & (size - 1) }
            slots[index] = (hash, code, name)
            names[code] = name.description
        }
        self.slots = slots
        self.mask = size - 1
        self.names = names
    }

    static func hash(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return hash
    }

    func code(of bytes: UnsafeRawBufferPointer) -> UInt16? {
        guard !bytes.isEmpty else { return nil }
        let hash = TypeNames.hash(bytes)
        var index = Int(truncatingIfNeeded: hash) & mask
        while let slot = slots[index] {
            if slot.hash == hash, slot.name.withUTF8Buffer({ UnsafeRawBufferPointer($0).elementsEqual(bytes) }) {
                return slot.code
            }
            index = (index + 1) & mask
        }
        return unknownCode(of: bytes)
    }

    /// `UNKNOWN[1334]` is how auditd writes numbers it has no name for; anything else
    /// that looks like a type name is registered once.
    private func unknownCode(of bytes: UnsafeRawBufferPointer) -> UInt16? {
        let prefix = Array("UNKNOWN[".utf8)
        if bytes.count > prefix.count + 1, bytes.starts(with: prefix), bytes.last == UInt8(ascii: "]") {
            var value = 0
            for byte in bytes[prefix.count..<(bytes.count - 1)] {
                guard byte >= 0x30 && byte <= 0x39 else { return nil }
                value = value * 10 + Int(byte - 0x30)
                guard value < Int(AuditRecordType.dynamicBase) else { return nil }
            }
            return UInt16(value)
        }
        guard bytes.count <= 64, bytes.allSatisfy({ isTypeNameByte($0) }) else { return nil }
        let name = String(decoding: bytes, as: UTF8.self)
        return dynamic.withLock { table -> UInt16? in
            if let code = table.byName[name] { return code }
            let code = AuditRecordType.dynamicBase + UInt16(table.byName.count)
            guard code < UInt16.max else { return nil }
            table.byName[name] = code
            table.byCode[code] = name
            return code
        }
    }

    func name(of code: UInt16) -> String {
        if let name = names[code] { return name }
        if code >= AuditRecordType.dynamicBase, let name = dynamic.withLock({ $0.byCode[code] }) { return name }
        return "UNKNOWN[\(code)]"
    }
}

@inline(__always)
func isTypeNameByte(_ byte: UInt8) -> Bool {
    (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x30 && byte <= 0x39) || byte == UInt8(ascii: "_")
}
