#if canImport(Glibc)
import Glibc
#endif

/// An IPv6 address as two host-order 64-bit halves.
public struct IPv6Address: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var high: UInt64
    public var low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    public init(value: UInt128) {
        self.init(high: UInt64(truncatingIfNeeded: value >> 64), low: UInt64(truncatingIfNeeded: value))
    }

    /// The address as one 128-bit integer.
    public var value: UInt128 { UInt128(high) << 64 | UInt128(low) }

    /// Parses any textual form inet_pton accepts (`fd00::2`, `::ffff:1.2.3.4`); nil otherwise.
    public init?(_ text: String) {
        var raw = in6_addr()
        guard inet_pton(AF_INET6, text, &raw) == 1 else { return nil }
        self.init(bytes: withUnsafeBytes(of: raw) { Array($0) })
    }

    /// From 16 bytes in network order.
    public init(bytes: some Collection<UInt8>) {
        precondition(bytes.count == 16)
        var high: UInt64 = 0
        var low: UInt64 = 0
        for (i, b) in bytes.enumerated() {
            if i < 8 { high = high << 8 | UInt64(b) } else { low = low << 8 | UInt64(b) }
        }
        self.init(high: high, low: low)
    }

    /// The 16 bytes in network order.
    public var bytes: [UInt8] {
        (0..<16).map { i in
            let word = i < 8 ? high : low
            return UInt8(truncatingIfNeeded: word >> (56 - 8 * UInt64(i % 8)))
        }
    }

    public var description: String {
        var raw = in6_addr()
        withUnsafeMutableBytes(of: &raw) { dst in
            for (i, b) in bytes.enumerated() { dst[i] = b }
        }
        var text = [UInt8](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        _ = text.withUnsafeMutableBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { inet_ntop(AF_INET6, &raw, $0.baseAddress, socklen_t($0.count)) }
        }
        return String(decoding: text.prefix { $0 != 0 }, as: UTF8.self)
    }

    public static func < (lhs: IPv6Address, rhs: IPv6Address) -> Bool {
        (lhs.high, lhs.low) < (rhs.high, rhs.low)
    }
}
