@_exported import ClusterRecords
import Addressing
import Foundation
import Logging
import Store

/// A refusal by the cluster: one line a user can act on.
/// A key that kept changing between reading and writing it: not a refusal (nobody else holds
/// it for sure), so the caller retries later like after a store error.
public struct ContendedKey: Error, CustomStringConvertible {
    public var key: String
    public var attempts: Int
    public init(key: String, attempts: Int) {
        self.key = key
        self.attempts = attempts
    }
    public var description: String { "\(key) changed on every one of \(attempts) attempts to write it" }
}

public enum ClusterError: Error, CustomStringConvertible, Equatable {
    case networkExists(String)
    case noSuchNetwork(String)
    case networkInUse(String, endpoints: Int)
    case addressesInUse(String, count: Int)
    case networkChanged(String)
    case nameTaken(String, host: String)
    case addressTaken(String)
    case subnetExhausted(String)
    case addressOutside(String, subnet: String)
    case addressReserved(String)
    case vniExhausted
    case subnetOverlaps(String, with: String)
    case noFamily(String, IPFamily)
    case prefixTooLong(String, maximum: Int)
    case unusablePrefix(String, reason: String)
    case noSubnet(String)
    case beyondLowHosts(String, network: String)

    public var description: String {
        switch self {
        case .networkExists(let name): "network '\(name)' already exists"
        case .noSuchNetwork(let name): "no network '\(name)'"
        case .networkInUse(let name, let count): "network '\(name)' still has \(count) endpoint(s)"
        case .addressesInUse(let name, let count): "network '\(name)' still has \(count) address(es) in use"
        case .networkChanged(let name): "network '\(name)' was removed or re-created meanwhile; try again"
        case .nameTaken(let name, let host): "name '\(name)' is already used in the cluster (on host \(host))"
        case .addressTaken(let address): "address \(address) is already in use"
        case .subnetExhausted(let subnet): "no free address left in \(subnet)"
        case .addressOutside(let address, let subnet): "address \(address) is not in subnet \(subnet)"
        case .addressReserved(let address): "address \(address) is reserved (network, broadcast or gateway)"
        case .vniExhausted: "no free VXLAN network identifier"
        case .subnetOverlaps(let subnet, let other): "subnet \(subnet) overlaps \(other)"
        case .noFamily(let network, let family): "network '\(network)' has no \(family) subnet"
        case .prefixTooLong(let subnet, let maximum): "subnet \(subnet) has no room for containers (at most /\(maximum))"
        case .unusablePrefix(let subnet, let reason): "subnet \(subnet) cannot be a network's IPv6 prefix: \(reason)"
        case .noSubnet(let network): "network '\(network)' needs a subnet (IPv4, IPv6 or one of each)"
        case .beyondLowHosts(let address, let network):
            "address \(address) is past the first 2^32 addresses of IPv6-only network '\(network)' (an endpoint's MAC comes from the low 32 bits of its address)"
        }
    }
}

/// The cluster-wide operations on the store: networks with unique VNIs, addresses allocated
/// with create-if-absent (two hosts never hand out one address), names unique in the cluster,
/// hosts and endpoints under the host's lease. The store is the truth; this type only writes
/// it and reads it, it keeps no state of its own.
public struct ClusterRegistry: Sendable {
    public let store: any KeyValueStore
    private let logger: Logger

    public init(store: any KeyValueStore, logger: Logger) {
        self.store = store
        self.logger = logger
    }

    // MARK: networks

    /// Creates a network with an IPv4 subnet, an IPv6 prefix, or both (at least one). Its
    /// subnets may overlap no other network's of the cluster, nor any of `reserved` (described as
    /// `what` in the refusal: built-in pools, the host's routes). Every network gets a number
    /// unique in the cluster (`vni`): an overlay's VXLAN network identifier, a bridge network's
    /// device name.
    public func createNetwork(name: HostLabel, driver: NetworkRecord.Driver, subnet: IPv4Subnet?,
                              gateway: IPv4Address?, subnet6: IPSubnet? = nil, gateway6: IPAddress? = nil, host: String?,
                              reserved: [(subnet: IPv4Subnet, what: String)] = []) throws -> NetworkRecord {
        var families: [NetworkRecord.Family] = []
        if let subnet {
            guard subnet.prefixLength <= 30 else { throw ClusterError.subnetExhausted(subnet.description) }
            families.append(NetworkRecord.Family(subnet: subnet.subnet, gateway: IPAddress(gateway ?? IPv4Address(subnet.network.value + 1))))
        }
        if let subnet6 {
            try Self.checkPrefix6(subnet6)
            families.append(NetworkRecord.Family(subnet: subnet6, gateway: gateway6 ?? subnet6.address(at: 1), lowHostsOnly: subnet == nil))
        }
        guard !families.isEmpty else { throw ClusterError.noSubnet(name.text) }
        for family in families {
            guard let gateway = family.gateway, family.subnet.contains(gateway), family.subnet.hostRange?.contains(gateway.value) == true else {
                throw ClusterError.addressOutside(family.gateway?.description ?? "", subnet: family.subnet.description)
            }
            guard family.hostRange?.contains(gateway.value) == true else { throw ClusterError.beyondLowHosts(gateway.description, network: name.text) }
        }
        if try store.get(Keys.network(name)) != nil { throw ClusterError.networkExists(name.text) }
        for other in try networks() {
            for theirs in (try? other.families) ?? [] {
                if let ours = families.first(where: { $0.subnet.overlaps(theirs.subnet) }) {
                    throw ClusterError.subnetOverlaps(ours.subnet.description, with: "network '\(other.name)' (\(theirs.subnet))")
                }
            }
        }
        if let subnet, let clash = reserved.first(where: { $0.subnet.overlaps(subnet) }) {
            throw ClusterError.subnetOverlaps(subnet.description, with: "\(clash.what) (\(clash.subnet))")
        }
        let vni = try claimVNI(for: name)
        let v4 = families.first { $0.subnet.family == .v4 }, v6 = families.first { $0.subnet.family == .v6 }
        let record = NetworkRecord(name: name.text, driver: driver, subnet: v4?.subnet.description ?? "", gateway: v4?.gateway?.description ?? "",
                                   subnet6: v6?.subnet.description, gateway6: v6?.gateway?.description,
                                   vni: vni, host: driver == .bridge ? host : nil)
        guard try store.create(Keys.network(name), JSON.encode(record)) else {
            // Another host made the network meanwhile: its number goes back. Should that fail,
            // the number stays taken (logged): never a second network on one VNI.
            do { try store.delete(Keys.vni(vni)) } catch {
                logger.warning("a VXLAN number claimed for a network that exists already stays taken", metadata: ["vni": "\(vni)", "error": "\(error)"])
            }
            throw ClusterError.networkExists(name.text)
        }
        return record
    }

    /// The longest IPv6 prefix a network may have (256 addresses).
    public static let longestPrefix6 = 120

    /// Refuses an IPv6 prefix no network may have: longer than /120 (point-to-point sized, no
    /// room for a gateway and endpoints), or of an unusable kind (`unusableAsNetwork6`). What
    /// `network create`, Docker's CreateNetwork and the reader of stored records all check.
    public static func checkPrefix6(_ subnet6: IPSubnet) throws {
        guard subnet6.family == .v6, subnet6.prefixLength <= longestPrefix6 else {
            throw ClusterError.prefixTooLong(subnet6.description, maximum: longestPrefix6)
        }
        if let reason = subnet6.unusableAsNetwork6 { throw ClusterError.unusablePrefix(subnet6.description, reason: reason) }
    }

    /// The lowest free VNI from 4097 (Docker's first overlay VNI was 256; anything not 0 works).
    private func claimVNI(for name: HostLabel) throws -> UInt32 {
        let taken = Set(try store.list(prefix: Keys.vnis).entries.compactMap { UInt32($0.key.dropFirst(Keys.vnis.count)) })
        var candidate: UInt32 = 4097
        while candidate < 1 << 24 {
            if !taken.contains(candidate), try store.create(Keys.vni(candidate), Array(name.text.utf8)) { return candidate }
            candidate += 1
        }
        throw ClusterError.vniExhausted
    }

    public func networks() throws -> [NetworkRecord] { try networksWithRevision().networks }

    /// Every readable network, and the revision to watch from (+1).
    public func networksWithRevision() throws -> (networks: [NetworkRecord], revision: Int64) {
        let (entries, revision) = try store.list(prefix: Keys.networks)
        return (entries.compactMap { Self.decodeNetwork($0, logger: logger) }, revision)
    }

    /// The network and address of an address claim's key, nil for any other key.
    public static func addressClaim(_ key: String) -> (network: String, address: IPAddress)? {
        guard key.hasPrefix(Keys.ipamRoot) else { return nil }
        let rest = key.dropFirst(Keys.ipamRoot.count)
        guard let slash = rest.firstIndex(of: "/"), let address = IPAddress(rest[rest.index(after: slash)...]) else { return nil }
        return (String(rest[..<slash]), address)
    }

    /// The address claims of one network (both families), and the revision of the listing.
    public func addressClaims(on network: String) throws -> (claims: Set<IPAddress>, revision: Int64) {
        let (entries, revision) = try store.list(prefix: Keys.ipam(network))
        return (Set(entries.compactMap { Self.addressClaim($0.key)?.address }), revision)
    }

    /// A watch event under `Keys.root`, read: a network or an endpoint put (decoded, or nil when
    /// unreadable: logged), a deletion of either, or nil for any other key.
    public enum Change {
        case network(name: String, NetworkRecord?)
        case endpoint(key: String, EndpointState?)
        /// An address claim made (true) or released (false): what allocators pick around.
        case addressClaim(network: String, IPAddress, Bool)
    }

    /// What `event` changes, or nil for a key that is neither a network nor an endpoint (names,
    /// addresses, hosts: not projected). A corrupt value reads as a deletion of what it was.
    public static func change(_ event: WatchEvent, logger: Logger) -> Change? {
        let key = event.entry.key
        if key.hasPrefix(Keys.networks) {
            let name = String(key.dropFirst(Keys.networks.count))
            return .network(name: name, event.kind == .put ? decodeNetwork(event.entry, logger: logger) : nil)
        }
        if key.hasPrefix(Keys.endpoints) {
            let k = String(key.dropFirst(Keys.endpoints.count))
            return .endpoint(key: k, event.kind == .put ? decodeEndpoint(event.entry, logger: logger) : nil)
        }
        if let claim = addressClaim(key) { return .addressClaim(network: claim.network, claim.address, event.kind == .put) }
        return nil
    }

    public func network(_ name: HostLabel) throws -> NetworkRecord {
        guard let entry = try store.get(Keys.network(name)), let record = Self.decodeNetwork(entry, logger: logger) else {
            throw ClusterError.noSuchNetwork(name.text)
        }
        return record
    }

    /// Decodes a stored network, or nil (logged) when it is corrupt or not what dnsd writes: its
    /// name must be its key's, its subnet and gateway must parse, an overlay needs a VNI.
    public static func decodeNetwork(_ entry: KeyValue, logger: Logger) -> NetworkRecord? {
        guard var record = JSON.decode(NetworkRecord.self, entry.value), let label = try? record.label, label.text == record.name,
              entry.key == Keys.network(label), Self.readable4(record), Self.readable6(record),
              record.driver == .bridge || (1..<(1 << 24)).contains(record.vni)
        else {
            logger.warning("skipping an unreadable network record", metadata: ["key": "\(entry.key)"])
            return nil
        }
        record.revision = entry.modRevision
        return record
    }

    /// Whether a record's IPv4 family is what dnsd writes: a subnet and a gateway in it (or none),
    /// or no IPv4 at all on an IPv6-only network (bridge networks are IPv4).
    private static func readable4(_ record: NetworkRecord) -> Bool {
        if record.subnet.isEmpty { return record.gateway.isEmpty && record.subnet6 != nil && record.driver == .overlay }
        guard let subnet = try? record.parsedSubnet else { return false }
        return record.gateway.isEmpty || record.gatewayAddress.map(subnet.contains) == true
    }

    /// Whether a record's IPv6 family, if any, is what dnsd writes: a prefix, and a gateway in it.
    private static func readable6(_ record: NetworkRecord) -> Bool {
        guard record.subnet6 != nil || record.gateway6 != nil else { return true }
        guard let family = try? record.family6, let gateway = family.gateway, (try? checkPrefix6(family.subnet)) != nil else { return false }
        return family.subnet.contains(gateway)
    }

    /// Removes a network, its number and its claims marker in one atomic commit, refused while
    /// an endpoint or an address claim exists. The commit is conditioned on the network record
    /// and the claims marker being as read: an address claimed meanwhile (every claim rewrites
    /// the marker) makes it fail, and the removal looks again.
    public func deleteNetwork(_ name: HostLabel) throws {
        for _ in 0..<Self.contentionRetries {
            guard let entry = try store.get(Keys.network(name)) else { throw ClusterError.noSuchNetwork(name.text) }
            let marker = try store.get(Keys.claimsMarker(name))
            let endpoints = try store.list(prefix: Keys.endpoints + name.text + "/").entries.count
            guard endpoints == 0 else { throw ClusterError.networkInUse(name.text, endpoints: endpoints) }
            let claims = try store.list(prefix: Keys.ipam(name.text)).entries.count
            guard claims == 0 else { throw ClusterError.addressesInUse(name.text, count: claims) }
            var deletes = [Keys.network(name), Keys.claimsMarker(name)]
            // The number goes with the record that names it (an unreadable record keeps it).
            if let record = Self.decodeNetwork(entry, logger: logger), record.vni != 0 { deletes.append(Keys.vni(record.vni)) }
            let conditions: [KeyCondition] = [
                .unchanged(Keys.network(name), modRevision: entry.modRevision),
                marker.map { .unchanged(Keys.claimsMarker(name), modRevision: $0.modRevision) } ?? .absent(Keys.claimsMarker(name)),
            ]
            if try store.commit(conditions, puts: [], deletes: deletes, lease: nil) { return }
        }
        throw ContendedKey(key: Keys.network(name), attempts: Self.contentionRetries)
    }

    // MARK: names

    /// Claims `name` for `host` (under its lease); refuses a name held by anyone.
    public func claimName(_ name: HostLabel, host: String, lease: LeaseID?) throws {
        guard try store.create(Keys.name(name), JSON.encode(NameClaim(name: name.text, host: host)), lease: lease) else {
            throw ClusterError.nameTaken(name.text, host: try holder(of: name) ?? "?")
        }
    }

    /// Keeps `name` for `host` under `lease` (a new lease after a restart or an expiry): written
    /// again if absent or already `host`'s, refused if another host holds it.
    public func holdName(_ name: HostLabel, host: String, lease: LeaseID?) throws {
        if let other = try hold(Keys.name(name), JSON.encode(NameClaim(name: name.text, host: host)), lease: lease,
                                ours: { Self.nameHolder($0) == host }) {
            throw ClusterError.nameTaken(name.text, host: Self.nameHolder(other))
        }
    }

    static func nameHolder(_ entry: KeyValue) -> String { JSON.decode(NameClaim.self, entry.value)?.host ?? "?" }

    private func holder(of name: HostLabel) throws -> String? {
        try store.get(Keys.name(name)).map(Self.nameHolder)
    }

    /// Releases `name` only if `host` holds it, with compare-and-delete: a host cleaning up
    /// after itself (a `stop` on a host that was cut off past its lease, a rollback, recovery)
    /// never drops a claim another host made meanwhile. There is no unconditional release.
    public func releaseName(_ name: HostLabel, heldBy host: String) throws {
        try release(Keys.name(name)) { Self.nameHolder($0) == host }
    }

    // MARK: addresses

    /// An address of `network`'s `family` for `host`: `requested` if free, else the first free
    /// one. Each candidate is taken with create-if-absent, so concurrent allocations on different
    /// hosts never return the same address.
    public func allocateAddress(on network: NetworkRecord, family: IPFamily, requested: IPAddress? = nil, host: String,
                                lease: LeaseID?) throws -> IPAddress {
        guard let addresses = try network.family(family) else { throw ClusterError.noFamily(network.name, family) }
        let label = try network.label
        var revision = network.revision
        if revision == 0 {
            guard let entry = try store.get(Keys.network(label)) else { throw ClusterError.noSuchNetwork(network.name) }
            revision = entry.modRevision
        }
        // Each claim is conditioned on the network being as read (not removed, not re-created)
        // and rewrites the network's claims marker, which a concurrent removal checks.
        func take(_ address: IPAddress) throws -> Bool {
            let key = Keys.address(label, address)
            if try store.commit([.unchanged(Keys.network(label), modRevision: revision), .absent(key)],
                                puts: [(key, Array(host.utf8))], unleasedPuts: [(Keys.claimsMarker(label), Array(host.utf8))],
                                deletes: [], lease: lease) {
                return true
            }
            guard try store.get(Keys.network(label))?.modRevision == revision else { throw ClusterError.networkChanged(network.name) }
            return false
        }
        if let requested {
            try Self.validate(requested, on: network)
            guard try take(requested) else { throw ClusterError.addressTaken(requested.description) }
            return requested
        }
        let used = try addressClaims(on: network.name).claims
        for address in Self.candidates(in: addresses) where !used.contains(address) {
            if try take(address) { return address }
        }
        throw ClusterError.subnetExhausted(addresses.subnet.description)
    }

    /// Refuses an address a user asked for that `network` cannot hand out: of a family the
    /// network does not have, outside its subnet, or its network, broadcast or gateway address.
    public static func validate(_ requested: IPAddress, on network: NetworkRecord) throws {
        guard let family = try network.family(requested.family) else { throw ClusterError.noFamily(network.name, requested.family) }
        guard family.subnet.contains(requested) else {
            throw ClusterError.addressOutside(requested.description, subnet: family.subnet.description)
        }
        guard family.subnet.hostRange?.contains(requested.value) == true, requested != family.gateway else {
            throw ClusterError.addressReserved(requested.description)
        }
        guard family.hostRange?.contains(requested.value) == true else {
            // An IPv6-only network's endpoints take their MACs from their addresses' low 32 bits.
            throw ClusterError.beyondLowHosts(requested.description, network: network.name)
        }
    }

    /// The addresses an endpoint of a network's `family` may have, lowest first: the subnet less
    /// its network address, IPv4's broadcast address and the gateway. Lazy: an IPv6 prefix has
    /// 2^64 of them, and a caller stops at the first free one.
    public static func candidates(in family: NetworkRecord.Family) -> some Sequence<IPAddress> {
        let subnet = family.subnet
        return (family.hostRange.map { [$0] } ?? []).lazy.joined()
            .map { IPAddress(family: subnet.family, value: $0) }
            .filter { $0 != family.gateway }
    }

    /// Keeps `address` for `host` under `lease`, like `holdName`.
    public func holdAddress(_ address: IPAddress, on network: HostLabel, host: String, lease: LeaseID?) throws {
        if try hold(Keys.address(network, address), Array(host.utf8), lease: lease, ours: { $0.text == host }) != nil {
            throw ClusterError.addressTaken(address.description)
        }
    }

    /// Releases `address` only if `host` holds it, like `releaseName(_:heldBy:)`.
    public func releaseAddress(_ address: IPAddress, on network: HostLabel, heldBy host: String) throws {
        try release(Keys.address(network, address)) { $0.text == host }
    }

    // MARK: holding a claim

    /// Writes `value` under `lease` if `key` is absent or holds a claim `ours` accepts, in one
    /// atomic step against what was read (create-if-absent, or compare-and-swap on its
    /// revision), so a claim another host makes between the read and the write is never
    /// overwritten. Returns the other host's entry when refused, nil when written.
    private func hold(_ key: String, _ value: [UInt8], lease: LeaseID?, ours: (KeyValue) -> Bool) throws -> KeyValue? {
        for _ in 0..<Self.contentionRetries {
            if let entry = try store.get(key) {
                guard ours(entry) else { return entry }
                if try store.compareAndSwap(key, expected: entry.modRevision, value, lease: lease) { return nil }
            } else if try store.create(key, value, lease: lease) {
                return nil
            }
            // Changed between the read and the write: read it again.
        }
        throw ContendedKey(key: key, attempts: Self.contentionRetries)
    }

    /// Deletes `key` if it holds a claim `ours` accepts, atomically against what was read: a
    /// claim another host made meanwhile stays.
    private func release(_ key: String, ours: (KeyValue) -> Bool) throws {
        for _ in 0..<Self.contentionRetries {
            guard let entry = try store.get(key), ours(entry) else { return }
            if try store.delete(key, ifUnchangedSince: entry.modRevision) { return }
        }
        throw ContendedKey(key: key, attempts: Self.contentionRetries)
    }

    static let contentionRetries = 8

    // MARK: hosts and endpoints

    public func registerHost(_ record: HostRecord, lease: LeaseID?) throws {
        try store.put(Keys.host(record.id), JSON.encode(record), lease: lease)
    }

    public func publish(_ endpoint: EndpointState, lease: LeaseID?) throws {
        let network = try HostLabel(endpoint.network, what: "network")
        try store.put(Keys.endpoint(network, endpoint.id), JSON.encode(endpoint), lease: lease)
    }

    public func withdraw(endpoint id: String, network: HostLabel) throws {
        try store.delete(Keys.endpoint(network, id))
    }

    /// Every readable endpoint, and the revision to watch from (+1).
    public func endpoints() throws -> (endpoints: [EndpointState], revision: Int64) {
        let (entries, revision) = try store.list(prefix: Keys.endpoints)
        return (entries.compactMap { Self.decodeEndpoint($0, logger: logger) }, revision)
    }

    /// The readable endpoints of one network, and the revision of the listing.
    public func endpoints(on network: String) throws -> (endpoints: [EndpointState], revision: Int64) {
        let (entries, revision) = try store.list(prefix: Keys.networkEndpoints(network))
        return (entries.compactMap { Self.decodeEndpoint($0, logger: logger) }, revision)
    }

    /// Decodes a stored endpoint, or nil (logged) when it is corrupt or inconsistent.
    public static func decodeEndpoint(_ entry: KeyValue, logger: Logger) -> EndpointState? {
        guard let endpoint = JSON.decode(EndpointState.self, entry.value), endpoint.record != nil,
              IPv4Address(endpoint.vtep) != nil, entry.key == Keys.endpoints + "\(endpoint.network)/\(endpoint.id)"
        else {
            logger.warning("skipping an unreadable endpoint record", metadata: ["key": "\(entry.key)"])
            return nil
        }
        return endpoint
    }
}
