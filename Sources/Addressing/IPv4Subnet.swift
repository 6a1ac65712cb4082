/// An IPv4 prefix such as 192.168.0.0/24: an `IPSubnet` known to be IPv4, for the parts that
/// only IPv4 has (the host's bridges, their NAT, routes through a gateway).
public struct IPv4Subnet: Hashable, Sendable, CustomStringConvertible {
    public let subnet: IPSubnet

    public init(network: IPv4Address, prefixLength: Int) {
        subnet = IPSubnet(network: IPAddress(network), prefixLength: prefixLength)
    }

    /// Parses `A.B.C.D/N`; host bits must be zero.
    public init(parsing text: String) throws {
        subnet = try IPSubnet(parsing: text, family: .v4)
    }

    /// `subnet` if it is IPv4.
    public init?(_ subnet: IPSubnet) {
        guard subnet.family == .v4 else { return nil }
        self.subnet = subnet
    }

    public var network: IPv4Address { subnet.network.v4! }
    public var prefixLength: Int { subnet.prefixLength }
    public var mask: UInt32 { UInt32(truncatingIfNeeded: subnet.mask) }

    public func contains(_ address: IPv4Address) -> Bool { address.value & mask == network.value }

    /// Whether the two subnets share an address (one contains the other).
    public func overlaps(_ other: IPv4Subnet) -> Bool { subnet.overlaps(other.subnet) }

    /// Number of addresses in the prefix (2^(32-N)).
    public var size: UInt64 { UInt64(subnet.size) }

    public var description: String { subnet.description }
}
