import Addressing
import FoundationEssentials

/// The records of the cluster's state (DESIGN.md §3), as stored under `dnsd/v1/` (the key layout
/// is ClusterState's `Keys`) and as the control API returns them.

/// A network of the cluster.
public struct NetworkRecord: Codable, Sendable, Equatable {
    public enum Driver: String, Codable, Sendable { case overlay, bridge }
    public var name: String
    public var driver: Driver
    /// The IPv4 subnet and gateway ("" for an IPv6-only network).
    public var subnet: String
    public var gateway: String
    /// The IPv6 prefix of a dual-stack or IPv6-only network and its gateway (nil: IPv4 only).
    /// Optional in the stored JSON, so records written before dual-stack read as IPv4-only.
    public var subnet6: String?
    public var gateway6: String?
    /// The network's number, unique in the cluster: an overlay's VXLAN network identifier, a
    /// bridge network's device number (0 for a bridge network made before numbers were given).
    public var vni: UInt32
    /// For a bridge network: the one host it lives on.
    public var host: String?
    /// The store revision the record was read at (0: not read from the store); not stored, and
    /// not part of equality.
    public var revision: Int64 = 0

    private enum CodingKeys: String, CodingKey { case name, driver, subnet, gateway, subnet6, gateway6, vni, host }

    public static func == (a: NetworkRecord, b: NetworkRecord) -> Bool {
        a.name == b.name && a.driver == b.driver && a.subnet == b.subnet && a.gateway == b.gateway && a.subnet6 == b.subnet6
            && a.gateway6 == b.gateway6 && a.vni == b.vni && a.host == b.host
    }

    public init(name: String, driver: Driver, subnet: String, gateway: String, subnet6: String? = nil, gateway6: String? = nil,
                vni: UInt32, host: String?) {
        self.name = name
        self.driver = driver
        self.subnet = subnet
        self.gateway = gateway
        self.subnet6 = subnet6
        self.gateway6 = gateway6
        self.vni = vni
        self.host = host
    }

    public var label: HostLabel { get throws { try HostLabel(name, what: "network") } }
    /// The IPv4 subnet (throws for an IPv6-only network: the parts only IPv4 has use it).
    public var parsedSubnet: IPv4Subnet { get throws { try IPv4Subnet(parsing: subnet) } }
    public var gatewayAddress: IPv4Address? { IPv4Address(gateway) }
    /// A network with an IPv6 prefix and no IPv4 subnet.
    public var isIPv6Only: Bool { subnet.isEmpty && subnet6 != nil }

    /// One address family of the network: its prefix and its gateway (the overlay bridge's
    /// address on every host, never handed to an endpoint).
    public struct Family: Sendable, Equatable {
        public var subnet: IPSubnet
        public var gateway: IPAddress?
        /// Endpoints' addresses are the prefix's first 2^32 only: on an IPv6-only network an
        /// endpoint's MAC and port names come from the low 32 bits of its address (as they come
        /// from the IPv4 address elsewhere), so no two may share them.
        public var lowHostsOnly: Bool
        public init(subnet: IPSubnet, gateway: IPAddress?, lowHostsOnly: Bool = false) {
            self.subnet = subnet
            self.gateway = gateway
            self.lowHostsOnly = lowHostsOnly
        }

        /// The addresses an endpoint may have (the gateway aside): the subnet less its first
        /// address and IPv4's broadcast address, within the first 2^32 when `lowHostsOnly`.
        public var hostRange: ClosedRange<UInt128>? {
            guard let range = subnet.hostRange else { return nil }
            guard lowHostsOnly else { return range }
            let (limit, overflow) = subnet.network.value.addingReportingOverflow(UInt128(UInt32.max))
            return range.lowerBound...(overflow ? range.upperBound : min(range.upperBound, limit))
        }
    }

    /// The network's families, IPv4 first: one for an IPv4 or IPv6-only network, two for a
    /// dual-stack one.
    public var families: [Family] {
        get throws {
            var result: [Family] = []
            if !subnet.isEmpty { result.append(Family(subnet: try parsedSubnet.subnet, gateway: gatewayAddress.map(IPAddress.init))) }
            if let family = try family6 { result.append(family) }
            return result
        }
    }

    /// The IPv6 family, nil for an IPv4-only network.
    public var family6: Family? {
        get throws {
            guard let subnet6 else { return nil }
            return Family(subnet: try IPSubnet(parsing: subnet6, family: .v6), gateway: gateway6.flatMap { IPAddress($0) },
                          lowHostsOnly: subnet.isEmpty)
        }
    }

    /// Its subnets as one text: "192.168.0.0/24", "192.168.0.0/24 fd00:db8:1::/64", "fd00:db8:1::/64".
    public var subnets: String { ([subnet] + (subnet6.map { [$0] } ?? [])).filter { !$0.isEmpty }.joined(separator: " ") }

    /// The family of `address`'s family, nil when the network has none.
    public func family(_ family: IPFamily) throws -> Family? {
        try families.first { $0.subnet.family == family }
    }
}

/// One sandbox's attachment to one network, published under its host's lease.
public struct EndpointState: Codable, Sendable, Equatable {
    public var id: String
    public var network: String
    public var name: String
    public var aliases: [String]
    /// Its IPv4 address ("" on an IPv6-only network).
    public var ipv4: String
    /// Its IPv6 address on a dual-stack or IPv6-only network (nil: none; absent in records
    /// written before dual-stack).
    public var ipv6: String?
    public var mac: String
    public var host: String
    /// The host's VTEP (underlay) address, where other hosts send this endpoint's frames.
    public var vtep: String
    /// "docker" for an endpoint of a Docker container (its host re-adopts it from dockerd after a
    /// restart, not from its journal); nil for dnsd's own sandboxes and CNI containers.
    public var runtime: String?

    public init(id: String, network: String, name: String, aliases: [String], ipv4: String, ipv6: String? = nil, mac: String,
                host: String, vtep: String, runtime: String? = nil) {
        self.runtime = runtime
        self.ipv6 = ipv6
        self.id = id
        self.network = network
        self.name = name
        self.aliases = aliases
        self.ipv4 = ipv4
        self.mac = mac
        self.host = host
        self.vtep = vtep
    }

    /// The validated view, or nil when a field is not what dnsd would have written.
    public var record: EndpointRecord? {
        guard let name = try? HostLabel(name) else { return nil }
        let aliases = aliases.compactMap { try? HostLabel($0) }
        guard aliases.count == self.aliases.count else { return nil }
        // An IPv4 address, an IPv6 one, or both; never neither, never one that does not read.
        var v4: [IPv4Address] = [], v6: [IPv6Address] = []
        if !ipv4.isEmpty || ipv6 == nil {
            guard let address = IPv4Address(ipv4) else { return nil }
            v4 = [address]
        }
        if let ipv6 {
            guard let address6 = IPAddress(ipv6)?.v6 else { return nil }
            v6 = [address6]
        }
        return EndpointRecord(name: name, aliases: aliases, ipv4: v4, ipv6: v6)
    }

    /// The endpoint's addresses, IPv4 first (unreadable ones left out).
    public var addresses: [IPAddress] {
        [IPAddress(ipv4), ipv6.flatMap { IPAddress($0) }].compactMap { $0 }
    }

    /// The address its MAC and port names come from: IPv4 where it has one, else IPv6.
    public var primaryAddress: IPAddress? { addresses.first }
}

/// A host of the cluster, under its own lease: gone when the host dies.
public struct HostRecord: Codable, Sendable, Equatable {
    public var id: String
    public var advertise: String

    public init(id: String, advertise: String) {
        self.id = id
        self.advertise = advertise
    }
}

/// Who holds a container name.
public struct NameClaim: Codable, Sendable, Equatable {
    public var name: String
    public var host: String
    public init(name: String, host: String) {
        self.name = name
        self.host = host
    }
}


/// A network and its endpoints (`GET /v1/networks/NAME`).
public struct NetworkDetail: Codable, Sendable {
    public var network: NetworkRecord
    public var endpoints: [EndpointState]
    public init(network: NetworkRecord, endpoints: [EndpointState]) {
        self.network = network
        self.endpoints = endpoints
    }
}
