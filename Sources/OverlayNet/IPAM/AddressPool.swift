import Addressing

/// Address management for one network on one host: hands out free addresses of the subnet,
/// never the network address, the broadcast address or the gateway.
///
/// The cluster-wide version keeps the same rules and adds a create-if-absent in the store per
/// address, so two hosts never hand out one address.
public struct AddressPool: Sendable {
    public enum Failure: Error, CustomStringConvertible, Equatable {
        case exhausted(IPv4Subnet)
        case outside(IPv4Address, IPv4Subnet)
        case reserved(IPv4Address, IPv4Subnet)
        case inUse(IPv4Address)

        public var description: String {
            switch self {
            case .exhausted(let subnet): "no free address left in \(subnet)"
            case .outside(let address, let subnet): "address \(address) is not in subnet \(subnet)"
            case .reserved(let address, let subnet): "address \(address) is reserved in \(subnet) (network, broadcast or gateway)"
            case .inUse(let address): "address \(address) is already in use"
            }
        }
    }

    public let subnet: IPv4Subnet
    public let gateway: IPv4Address
    private var used: Set<UInt32> = []
    /// Where the next search starts, so addresses are not reused at once after a release.
    private var cursor: UInt32

    /// `gateway` defaults to the first address of the subnet (Docker's convention).
    public init(subnet: IPv4Subnet, gateway: IPv4Address? = nil) throws {
        precondition(subnet.prefixLength <= 30, "a subnet needs room for a gateway and endpoints")
        self.subnet = subnet
        let gateway = gateway ?? IPv4Address(subnet.network.value + 1)
        guard subnet.contains(gateway) else { throw Failure.outside(gateway, subnet) }
        self.gateway = gateway
        cursor = subnet.network.value + 1
    }

    private var first: UInt32 { subnet.network.value + 1 }
    private var last: UInt32 { subnet.network.value + UInt32(subnet.size - 2) }

    /// The next free address.
    public mutating func allocate() throws -> IPv4Address {
        let count = UInt32(subnet.size - 2)
        for step in 0..<count {
            let candidate = first + (cursor - first + step) % count
            if candidate == gateway.value || used.contains(candidate) { continue }
            used.insert(candidate)
            cursor = candidate + 1 > last ? first : candidate + 1
            return IPv4Address(candidate)
        }
        throw Failure.exhausted(subnet)
    }

    /// Takes a specific address (`--ip`).
    public mutating func reserve(_ address: IPv4Address) throws {
        guard subnet.contains(address) else { throw Failure.outside(address, subnet) }
        guard address.value >= first, address.value <= last, address != gateway else { throw Failure.reserved(address, subnet) }
        guard used.insert(address.value).inserted else { throw Failure.inUse(address) }
    }

    public mutating func release(_ address: IPv4Address) { used.remove(address.value) }

    public func isAllocated(_ address: IPv4Address) -> Bool { used.contains(address.value) }

    public var allocatedCount: Int { used.count }
}
