/// A prefix of either family such as 192.168.0.0/24 or fd00:db8:1::/64.
public struct IPSubnet: Hashable, Sendable, CustomStringConvertible {
    public let network: IPAddress
    public let prefixLength: Int

    public enum ParseError: Error, CustomStringConvertible, Equatable {
        case notCIDR(String, IPFamily?)
        case hostBitsSet(String, network: String)

        public var description: String {
            switch self {
            case .notCIDR(let text, .v4?): "invalid subnet '\(text)': expected an IPv4 CIDR such as 192.168.0.0/24"
            case .notCIDR(let text, .v6?): "invalid subnet '\(text)': expected an IPv6 CIDR such as fd00:db8:1::/64"
            case .notCIDR(let text, nil): "invalid subnet '\(text)': expected a CIDR such as 192.168.0.0/24 or fd00:db8:1::/64"
            case .hostBitsSet(let text, let network): "invalid subnet '\(text)': host bits set (did you mean \(network)?)"
            }
        }
    }

    public init(network: IPAddress, prefixLength: Int) {
        precondition((0...network.family.bitWidth).contains(prefixLength))
        self.prefixLength = prefixLength
        self.network = IPAddress(family: network.family, value: network.value & Self.mask(prefixLength, network.family))
    }

    /// Parses `ADDRESS/N` of either family (or only `family`'s); host bits must be zero.
    public init(parsing text: String, family: IPFamily? = nil) throws {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let address = IPAddress(parts[0]), family == nil || address.family == family,
              (1...3).contains(parts[1].count), parts[1].allSatisfy({ $0.isASCII && $0.isNumber }),
              let length = Int(parts[1]), length <= address.family.bitWidth
        else { throw ParseError.notCIDR(text, family) }
        let subnet = IPSubnet(network: address, prefixLength: length)
        guard subnet.network == address else { throw ParseError.hostBitsSet(text, network: subnet.description) }
        self = subnet
    }

    public var family: IPFamily { network.family }

    /// The network mask, in the family's width (the low 32 bits for IPv4).
    public var mask: UInt128 { Self.mask(prefixLength, family) }

    public func contains(_ address: IPAddress) -> Bool {
        address.family == family && address.value & mask == network.value
    }

    /// Whether the two subnets share an address (one contains the other).
    public func overlaps(_ other: IPSubnet) -> Bool { contains(other.network) || other.contains(network) }

    /// The last address of the prefix (IPv4's broadcast address).
    public var last: IPAddress {
        IPAddress(family: family, value: network.value | (Self.all(family) & ~mask))
    }

    /// The addresses an endpoint may have: the prefix less its first address (IPv4's network
    /// address, IPv6's subnet-router anycast) and, for IPv4, its broadcast address. Empty when
    /// there are none.
    public var hostRange: ClosedRange<UInt128>? {
        // A /32 or /128 has no host part (and its network address may be the last of all).
        guard prefixLength < family.bitWidth else { return nil }
        let first = network.value + 1
        let last = family == .v4 ? self.last.value &- 1 : self.last.value
        return first <= last ? first...last : nil
    }

    /// Number of addresses in the prefix, saturated at UInt128.max for a /0 of IPv6.
    public var size: UInt128 {
        let bits = family.bitWidth - prefixLength
        return bits >= 128 ? .max : UInt128(1) << UInt128(bits)
    }

    /// The address `offset` past the network address, wrapping within the family's width (callers
    /// keep it inside the prefix; one past the last address of all is the first, never a trap).
    public func address(at offset: UInt128) -> IPAddress { IPAddress(family: family, value: network.value &+ offset) }

    /// Why an IPv6 prefix cannot be an overlay network's, or nil when it can: link-local,
    /// multicast, loopback/unspecified and IPv4-mapped space are the kernel's or another
    /// protocol's, and a prefix shorter than /48 would claim more of the IPv6 reverse tree (and
    /// overlap more networks) than any overlay needs.
    public var unusableAsNetwork6: String? {
        guard family == .v6 else { return nil }
        if prefixLength < 48 { return "shorter than /48" }
        let special: [(String, String)] = [("fe80::/10", "link-local"), ("ff00::/8", "multicast"), ("::ffff:0:0/96", "IPv4-mapped"),
                                            ("::/8", "reserved (loopback, unspecified)")]
        for (text, what) in special where (try? IPSubnet(parsing: text))?.overlaps(self) == true { return "\(what) space" }
        return nil
    }

    public var description: String { "\(network)/\(prefixLength)" }

    /// The network mask of a prefix of `length` bits in the family's width (in the low bits).
    private static func mask(_ length: Int, _ family: IPFamily) -> UInt128 {
        let all = all(family)
        return length == 0 ? 0 : all ^ (all >> UInt128(length))
    }

    /// Every bit of the family's width.
    private static func all(_ family: IPFamily) -> UInt128 {
        family == .v6 ? .max : UInt128(UInt32.max)
    }
}
