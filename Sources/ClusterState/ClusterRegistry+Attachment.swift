import Addressing
import Store

/// An attachment's claims in the cluster, each committed in one store transaction: what makes an
/// attach (and a stop) one round trip on the hot path instead of five.
extension ClusterRegistry {
    /// What one attachment claims: the sandbox's name (nil when the sandbox holds it already:
    /// `connect`), one address of each family of its network (the endpoint's), and its endpoint
    /// record, all under `lease`.
    public struct AttachmentClaim: Sendable {
        public var name: HostLabel?
        public var network: NetworkRecord
        public var endpoint: EndpointState
        public var addresses: [IPAddress] { endpoint.addresses }

        public init(name: HostLabel?, network: NetworkRecord, endpoint: EndpointState) {
            self.name = name
            self.network = network
            self.endpoint = endpoint
        }
    }

    /// Commits `claim` in one transaction: the name absent, the address absent and the network as
    /// read (not removed, not re-created), then the name, the address and the endpoint written
    /// under `lease` and the network's claims marker rewritten (which a concurrent removal checks).
    /// Returns the addresses found taken when one was taken meanwhile (empty: claimed; the caller
    /// picks again around those, and only those: on a dual-stack network the other family's
    /// address may well be free); throws
    /// `nameTaken`, `noSuchNetwork` or `networkChanged` when the commit failed for that, and a
    /// store error when nothing explains the failure. A failure costs reads to tell which; a
    /// success is one round trip.
    public func claim(_ claim: AttachmentClaim, host: String, lease: LeaseID?) throws -> Set<IPAddress> {
        let label = try claim.network.label
        var revision = claim.network.revision
        if revision == 0 {
            // A record not read from the store (a cache): its revision first.
            guard let entry = try store.get(Keys.network(label)) else { throw ClusterError.noSuchNetwork(claim.network.name) }
            revision = entry.modRevision
        }
        let addressKeys = claim.addresses.map { Keys.address(label, $0) }
        var conditions: [KeyCondition] = [.unchanged(Keys.network(label), modRevision: revision)] + addressKeys.map { .absent($0) }
        var puts: [(key: String, value: [UInt8])] = addressKeys.map { ($0, Array(host.utf8)) }
        if let name = claim.name {
            conditions.append(.absent(Keys.name(name)))
            puts.append((Keys.name(name), try JSON.encode(NameClaim(name: name.text, host: host))))
        }
        puts.append((Keys.endpoint(label, claim.endpoint.id), try JSON.encode(claim.endpoint)))
        if try store.commit(conditions, puts: puts, unleasedPuts: [(Keys.claimsMarker(label), Array(host.utf8))],
                            deletes: [], lease: lease) {
            return []
        }
        // Which condition failed: the name (a refusal), the network (a refusal), else the address.
        if let name = claim.name, let holder = try store.get(Keys.name(name)) {
            throw ClusterError.nameTaken(name.text, host: Self.nameHolder(holder))
        }
        guard let current = try store.get(Keys.network(label)) else { throw ClusterError.noSuchNetwork(claim.network.name) }
        guard current.modRevision == revision else { throw ClusterError.networkChanged(claim.network.name) }
        var taken: Set<IPAddress> = []
        for (address, key) in zip(claim.addresses, addressKeys) where try store.get(key) != nil { taken.insert(address) }
        guard !taken.isEmpty else {
            // Nothing the conditions name explains it (Consul refuses a `lock` under a session
            // that lapsed a moment ago): not "address taken", or the caller would walk the subnet.
            throw StoreError.refused(operation: "claim of \(claim.addresses.map(\.description).joined(separator: " and ")) on \(claim.network.name)", status: 409,
                                     detail: "the transaction failed although its conditions held (an expired lease?)")
        }
        return taken
    }

    /// The addresses claimed on `network` now (one listing): what an allocator starts again from
    /// when its view proved stale.
    public func claimedAddresses(on network: HostLabel) throws -> Set<IPAddress> {
        try addressClaims(on: network.text).claims
    }

    /// Withdraws a sandbox's endpoints and releases their addresses and (when given) its name, in
    /// one transaction conditioned on every claim being still this host's under `lease`. When
    /// that does not hold (a claim made under an earlier lease, one already gone, another host's
    /// meanwhile), each piece goes the careful way: the endpoint deleted, each claim released only
    /// if `host` holds it. A store error is thrown with nothing assumed done. The address claims
    /// of the endpoints in `keepingAddressesOf` (by id) stay: a Docker endpoint's address is its
    /// IPAM's, released by Docker.
    public func release(name: HostLabel?, endpoints: [EndpointState], keepingAddressesOf kept: Set<String> = [], host: String,
                        lease: LeaseID?) throws {
        var claims: [String] = []
        var deletes: [String] = []
        for endpoint in endpoints {
            let network = try HostLabel(endpoint.network, what: "network")
            deletes.append(Keys.endpoint(network, endpoint.id))
            if !kept.contains(endpoint.id) { claims += endpoint.addresses.map { Keys.address(network, $0) } }
        }
        if let name { claims.append(Keys.name(name)) }
        if let lease, claims.count + deletes.count + claims.count <= KeyCondition.maximumOperations,
           try store.commit(claims.map { .heldBy($0, lease: lease) }, puts: [], deletes: deletes + claims, lease: nil) {
            return
        }
        for endpoint in endpoints {
            let network = try HostLabel(endpoint.network, what: "network")
            try withdraw(endpoint: endpoint.id, network: network)
            if !kept.contains(endpoint.id) {
                for address in endpoint.addresses { try releaseAddress(address, on: network, heldBy: host) }
            }
        }
        if let name { try releaseName(name, heldBy: host) }
    }
}
