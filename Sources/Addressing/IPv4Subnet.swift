/// An IPv4 prefix such as 192.168.0.0/24.
public struct IPv4Subnet: Hashable, Sendable, CustomStringConvertible {
    public let network: IPv4Address
    public let prefixLength: Int

    public enum ParseError: Error, CustomStringConvertible, Equatable {
        case notCIDR(String)
        case hostBitsSet(String, network: String)

        public var description: String {
            switch self {
            case .notCIDR(let text): "invalid subnet '\(text)': expected an IPv4 CIDR such as 192.168.0.0/24"
            case .hostBitsSet(let text, let network): "invalid subnet '\(text)': host bits set (did you mean \(network)?)"
            }
        }
    }

    public init(network: IPv4Address, prefixLength: Int) {
        precondition((0...32).contains(prefixLength))
        self.prefixLength = prefixLength
        self.network = IPv4Address(network.value & Self.mask(prefixLength))
    }

    /// Parses `A.B.C.D/N`; host bits must be zero.
    public init(parsing text: String) throws {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let address = IPv4Address(parts[0]),
              parts[1].count <= 2, parts[1].allSatisfy(\.isASCII), let length = Int(parts[1]), (0...32).contains(length)
        else { throw ParseError.notCIDR(text) }
        let subnet = IPv4Subnet(network: address, prefixLength: length)
        guard subnet.network == address else { throw ParseError.hostBitsSet(text, network: subnet.description) }
        self = subnet
    }

    public var mask: UInt32 { Self.mask(prefixLength) }

    public func contains(_ address: IPv4Address) -> Bool { address.value & mask == network.value }

    /// Whether the two subnets share an address (one contains the other).
    public func overlaps(_ other: IPv4Subnet) -> Bool { contains(other.network) || other.contains(network) }

    /// Number of addresses in the prefix (2^(32-N)).
    public var size: UInt64 { UInt64(1) << UInt64(32 - prefixLength) }

    public var description: String { "\(network)/\(prefixLength)" }

    private static func mask(_ length: Int) -> UInt32 {
        length == 0 ? 0 : UInt32.max << UInt32(32 - length)
    }
}
