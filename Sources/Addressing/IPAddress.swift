/// The two address families, as one value: what makes the code that handles "an address of the
/// network" (IPAM, claims, neighbour entries, hosts lines) one function instead of one per family.
public enum IPFamily: Int, Hashable, Sendable, CaseIterable, CustomStringConvertible, Comparable {
    case v4, v6

    /// Bits in an address of the family.
    public var bitWidth: Int { self == .v4 ? 32 : 128 }

    public var description: String { self == .v4 ? "IPv4" : "IPv6" }

    public static func < (a: IPFamily, b: IPFamily) -> Bool { a.rawValue < b.rawValue }
}

/// An address of either family: the family and the address's bits in a 128-bit integer (an IPv4
/// address in the low 32). Comparable (IPv4 before IPv6, then by value) and hashable, so the
/// allocator, the claim keys and the peer tables handle both families with the same code; the
/// typed `IPv4Address` and `IPv6Address` stay for the wire and the kernel.
public struct IPAddress: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let family: IPFamily
    public let value: UInt128

    public init(_ address: IPv4Address) {
        family = .v4
        value = UInt128(address.value)
    }

    public init(_ address: IPv6Address) {
        family = .v6
        value = address.value
    }

    /// `value` truncated to the family's width.
    public init(family: IPFamily, value: UInt128) {
        self.family = family
        self.value = family == .v4 ? value & UInt128(UInt32.max) : value
    }

    /// Dotted-quad IPv4 or any IPv6 text inet_pton accepts (a colon tells them apart); nil
    /// otherwise.
    public init?(_ text: some StringProtocol) {
        if text.utf8.contains(UInt8(ascii: ":")) {
            guard let address = IPv6Address(String(text)) else { return nil }
            self.init(address)
        } else {
            guard let address = IPv4Address(text) else { return nil }
            self.init(address)
        }
    }

    public var v4: IPv4Address? { family == .v4 ? IPv4Address(UInt32(truncatingIfNeeded: value)) : nil }
    public var v6: IPv6Address? { family == .v6 ? IPv6Address(value: value) : nil }

    /// An IPv6 link-local address (fe80::/10), which the kernel gives an interface by itself.
    public var isLinkLocal: Bool { family == .v6 && value >> 118 == 0x3FA }

    /// The address's bytes in network order (4 or 16).
    public var bytes: [UInt8] {
        let count = family.bitWidth / 8
        return (0..<count).map { UInt8(truncatingIfNeeded: value >> UInt128(8 * (count - 1 - $0))) }
    }

    public var description: String { v4.map(\.description) ?? IPv6Address(value: value).description }

    public static func < (a: IPAddress, b: IPAddress) -> Bool { (a.family, a.value) < (b.family, b.value) }
}
