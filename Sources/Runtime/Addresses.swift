#if canImport(Glibc)
    import Glibc
#endif

/// The bytes (4 or 16) of a literal IPv4 or IPv6 address, nil when `text` is neither:
/// agent.conf's networks and the address a client asks a proxy for.
public func literalIPAddress(_ text: String) -> [UInt8]? {
    var v4 = in_addr()
    if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
    var v6 = in6_addr()
    if inet_pton(AF_INET6, text, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
    return nil
}
