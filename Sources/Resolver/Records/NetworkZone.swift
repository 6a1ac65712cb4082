import Addressing

/// The immutable DNS view of one network: every name and alias to its addresses, and every
/// address back to its endpoint's `name.network.` for PTR.
///
/// Addresses are kept in two flat pools with per-name ranges, so a zone of 100k names is a
/// handful of arrays rather than 100k small ones.
public final class NetworkZone: Sendable {
    public let name: HostLabel
    /// The network's prefixes, of both families (a dual-stack network has an IPv4 subnet and an
    /// IPv6 prefix): every address in them is the cluster's, so a reverse query for one is
    /// answered here and never forwarded.
    public let subnets: [IPSubnet]
    /// `subnets` by family as (network, mask) integers, built once: `covers` runs on every PTR
    /// query, and a compare against these allocates nothing and never converts an address.
    let v4Prefixes: [(network: UInt32, mask: UInt32)]
    let v6Prefixes: [(network: UInt128, mask: UInt128)]
    /// The zone's apex (`net.`) in wire form, for SOA records written without a pointer.
    let apexWire: [UInt8]

    struct Entry: Sendable {
        var v4Start: Int32, v4Count: Int32
        var v6Start: Int32, v6Count: Int32
    }

    let entries: [Entry]
    let names: NameIndex
    let v4Pool: [UInt32]
    let v6Pool: [IPv6Address]
    /// PTR targets (`name.network.` in wire form), concatenated; `ptrRanges[i]` locates one.
    let ptrPool: [UInt8]
    let ptrRanges: [Range<Int32>]
    let reverse4: [UInt32: Int32]
    let reverse6: [IPv6Address: Int32]

    public init(name: HostLabel, subnets: [IPSubnet], endpoints: some Sequence<EndpointRecord>) {
        self.name = name
        self.subnets = subnets
        v4Prefixes = subnets.compactMap { IPv4Subnet($0) }.map { ($0.network.value, $0.mask) }
        v6Prefixes = subnets.filter { $0.family == .v6 }.map { ($0.network.value, $0.mask) }
        apexWire = [UInt8(name.text.utf8.count)] + Array(name.text.utf8) + [0]

        // Gather addresses per label; several endpoints may share an alias.
        var byLabel: [String: (v4: [UInt32], v6: [IPv6Address])] = [:]
        var order: [String] = []
        var ptrPool: [UInt8] = []
        var ptrRanges: [Range<Int32>] = []
        var reverse4: [UInt32: Int32] = [:]
        var reverse6: [IPv6Address: Int32] = [:]
        // Endpoints in a stable order so a rebuild gives the same zone for the same input (the
        // IPv6 address too: a records file gives a dual-stack name one line per family).
        let none6 = IPv6Address(high: 0, low: 0)
        let sorted = endpoints.sorted {
            ($0.name, $0.ipv4.first ?? IPv4Address(0), $0.ipv6.first ?? none6)
                < ($1.name, $1.ipv4.first ?? IPv4Address(0), $1.ipv6.first ?? none6)
        }
        for endpoint in sorted {
            for label in [endpoint.name] + endpoint.aliases {
                let key = label.text
                if byLabel[key] == nil { order.append(key) }
                var slot = byLabel[key] ?? ([], [])
                for a in endpoint.ipv4 where !slot.v4.contains(a.value) { slot.v4.append(a.value) }
                for a in endpoint.ipv6 where !slot.v6.contains(a) { slot.v6.append(a) }
                byLabel[key] = slot
            }
            let start = Int32(ptrPool.count)
            for label in [endpoint.name.text, name.text] {
                ptrPool.append(UInt8(label.utf8.count))
                ptrPool.append(contentsOf: label.utf8)
            }
            ptrPool.append(0)
            let target = Int32(ptrRanges.count)
            ptrRanges.append(start..<Int32(ptrPool.count))
            for a in endpoint.ipv4 where reverse4[a.value] == nil { reverse4[a.value] = target }
            for a in endpoint.ipv6 where reverse6[a] == nil { reverse6[a] = target }
        }

        var entries: [Entry] = []
        var v4Pool: [UInt32] = []
        var v6Pool: [IPv6Address] = []
        entries.reserveCapacity(order.count)
        for key in order {
            let slot = byLabel[key]!
            entries.append(Entry(
                v4Start: Int32(v4Pool.count), v4Count: Int32(slot.v4.count),
                v6Start: Int32(v6Pool.count), v6Count: Int32(slot.v6.count)))
            v4Pool.append(contentsOf: slot.v4)
            v6Pool.append(contentsOf: slot.v6)
        }
        self.entries = entries
        self.names = NameIndex(order.enumerated().map { ($0.element, Int32($0.offset)) })
        self.v4Pool = v4Pool
        self.v6Pool = v6Pool
        self.ptrPool = ptrPool
        self.ptrRanges = ptrRanges
        self.reverse4 = reverse4
        self.reverse6 = reverse6
    }

    public var nameCount: Int { entries.count }

    /// True when `address` falls in one of the network's IPv4 subnets.
    @inline(__always)
    public func covers(_ address: IPv4Address) -> Bool {
        for prefix in v4Prefixes where address.value & prefix.mask == prefix.network { return true }
        return false
    }

    /// True when `address` falls in one of the network's IPv6 prefixes.
    @inline(__always)
    public func covers(_ address: IPv6Address) -> Bool {
        let value = address.value
        for prefix in v6Prefixes where value & prefix.mask == prefix.network { return true }
        return false
    }

    /// True when `address`, of either family, falls in one of the network's prefixes.
    public func covers(_ address: IPAddress) -> Bool {
        if let v4 = address.v4 { return covers(v4) }
        return covers(IPv6Address(value: address.value))
    }
}
