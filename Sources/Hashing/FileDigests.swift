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

    /// All three of the open file, from its start, in one pass over it; nil when it cannot be read.
    public static func of(fd: Int32) -> FileDigests? {
        var md5 = MD5_CTX()
        var sha1 = SHA_CTX()
        var sha256 = SHA256_CTX()
        guard MD5_Init(&md5) == 1, SHA1_Init(&sha1) == 1, SHA256_Init(&sha256) == 1,
            read(fd: fd, { MD5_Update(&md5, $0, $1) == 1 && SHA1_Update(&sha1, $0, $1) == 1 && SHA256_Update(&sha256, $0, $1) == 1 })
        else { return nil }
        var digest = [UInt8](repeating: 0, count: Int(SHA256_DIGEST_LENGTH))
        guard MD5_Final(&digest, &md5) == 1 else { return nil }
        let md5Hex = hexadecimal(digest.prefix(Int(MD5_DIGEST_LENGTH)))
        guard SHA1_Final(&digest, &sha1) == 1 else { return nil }
        let sha1Hex = hexadecimal(digest.prefix(Int(SHA_DIGEST_LENGTH)))
        guard SHA256_Final(&digest, &sha256) == 1 else { return nil }
        return FileDigests(md5: md5Hex, sha1: sha1Hex, sha256: hexadecimal(digest[...]))
    }

    /// Hands the whole file to `update` in blocks; false when a read fails or `update` does.
    static func read(fd: Int32, _ update: (UnsafeRawPointer, Int) -> Bool) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 65_536)
        var offset: off_t = 0
        while true {
            let count = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, offset) }
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { return false }
            if count == 0 { return true }
            guard buffer.withUnsafeBytes({ $0.baseAddress.map { update($0, count) } ?? false }) else { return false }
            offset += off_t(count)
        }
    }

    static func hexadecimal(_ bytes: ArraySlice<UInt8>) -> String {
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
        var context = SHA256_CTX()
        guard SHA256_Init(&context) == 1, FileDigests.read(fd: fd, { SHA256_Update(&context, $0, $1) == 1 }) else { return nil }
        var digest = [UInt8](repeating: 0, count: Int(SHA256_DIGEST_LENGTH))
        guard SHA256_Final(&digest, &context) == 1 else { return nil }
        return FileDigests.hexadecimal(digest[...])
    }
}
