import Foundation

/// Files made to match (or nearly match) the shipped LightFTP rules.
public enum SyntheticBinary {
    public static func wide(_ text: String) -> [UInt8] { text.utf16.flatMap { [UInt8($0 & 0xff), UInt8($0 >> 8)] } }

    /// The five strings of the published LightFTP rule, in its order.
    public static let lightFTPStrings: [[UInt8]] = [
        wide("fftp.cfg"), Array("220 LightFTP server v1.0 ready".utf8), wide("*FTP thread exit*"),
        Array("PASS->logon successful".utf8), Array("250 Requested file action okay, completed.".utf8),
    ]

    /// A PE-looking file ("MZ") carrying the first `strings` of them, NUL-separated (whole words).
    public static func lightFTPPE(strings: Int, size: Int = 4096, magic: [UInt8] = Array("MZ".utf8)) -> [UInt8] {
        var bytes = magic + [UInt8](repeating: 0, count: 64 - magic.count)
        for string in lightFTPStrings.prefix(strings) { bytes += [0, 0] + string + [0, 0] }
        return bytes + [UInt8](repeating: 0, count: max(0, size - bytes.count))
    }

    public static func write(_ bytes: [UInt8], to path: String, executable: Bool = true) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        chmod(path, executable ? 0o755 : 0o644)
    }
}
