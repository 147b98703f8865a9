import COpenSSL

#if canImport(Glibc)
    import Glibc
#endif

/// The MD5, SHA-1 and SHA-256 of a file, read once: the hashes analysts and threat
/// intelligence look binaries up by (ECS `*.hash.md5`, `.sha1`, `.sha256`), lowercase hex.
public struct FileDigests: Sendable, Equatable {
    public let md5: String
    public let sha1: String
    public let sha256: String

    public init(md5: String, sha1: String, sha256: String) {
        (self.md5, self.sha1, self.sha256) = (md5, sha1, sha256)
    }

    /// All three of the open file, from its start; nil when it cannot be read.
    public static func of(fd: Int32) -> FileDigests? {
        guard let hex = digests(fd: fd, [EVP_md5(), EVP_sha1(), EVP_sha256()]) else { return nil }
        return FileDigests(md5: hex[0], sha1: hex[1], sha256: hex[2])
    }

    /// Each algorithm's digest of the whole file in one pass over it.
    static func digests(fd: Int32, _ algorithms: [OpaquePointer?]) -> [String]? {
        var contexts: [OpaquePointer] = []
        defer { contexts.forEach(EVP_MD_CTX_free) }
        for algorithm in algorithms {
            guard let context = EVP_MD_CTX_new() else { return nil }
            contexts.append(context)
            guard EVP_DigestInit_ex(context, algorithm, nil) == 1 else { return nil }
        }
        var buffer = [UInt8](repeating: 0, count: 65_536)
        var offset: off_t = 0
        while true {
            let count = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, offset) }
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { return nil }
            if count == 0 { break }
            for context in contexts { guard EVP_DigestUpdate(context, buffer, count) == 1 else { return nil } }
            offset += off_t(count)
        }
        var result: [String] = []
        var digest = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        for context in contexts {
            var length: UInt32 = 0
            guard EVP_DigestFinal_ex(context, &digest, &length) == 1 else { return nil }
            result.append(hexadecimal(digest.prefix(Int(length))))
        }
        return result
    }

    private static func hexadecimal(_ bytes: ArraySlice<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}

/// SHA-256 alone, for what needs no other digest: a program's identity when its binary carries
/// no build-id, a scanned file's hash.
public enum SHA256 {
    public static func hex(fd: Int32) -> String? {
        FileDigests.digests(fd: fd, [EVP_sha256()])?.first
    }
}
