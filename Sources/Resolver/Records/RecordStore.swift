import Addressing
import Synchronization

/// The mutable source of the responder's records, safe to update from any thread.
///
/// Writers change the per-network endpoint sets and publish a new `RecordTable`; only the
/// networks they touched get their zone rebuilt. Readers never wait for a rebuild: the
/// published table is swapped under a lock held for one pointer copy.
public final class RecordStore: Sendable {
    fileprivate struct Network {
        /// Its prefixes, IPv4 and IPv6: what makes a reverse name the cluster's.
        var subnets: [IPSubnet]
        var endpoints: [String: EndpointRecord] = [:]
        var zone: NetworkZone?
    }

    fileprivate struct Sources {
        var networks: [HostLabel: Network] = [:]
        var attachments: [SandboxID: [HostLabel]] = [:]
    }

    private let sources = Mutex(Sources())
    private let published = Mutex(RecordTable.empty)

    public init() {}

    /// The current snapshot.
    @inline(__always)
    public var table: RecordTable { published.withLock { $0 } }

    /// A set of changes applied together: one rebuild and one publication for all of them.
    public struct Changes {
        fileprivate var sources: Sources
        fileprivate var dirty: Set<HostLabel> = []

        /// Adds the network or changes its subnets, of either family (a dual-stack network
        /// passes its IPv4 subnet and its IPv6 prefix): a PTR query for an address inside them
        /// that is no endpoint of the asking sandbox's networks is NXDOMAIN, never forwarded.
        public mutating func setNetwork(_ name: HostLabel, subnets: [IPSubnet] = []) {
            if sources.networks[name] == nil {
                sources.networks[name] = Network(subnets: subnets)
            } else {
                sources.networks[name]!.subnets = subnets
            }
            dirty.insert(name)
        }

        /// Removes the network and all its endpoints.
        public mutating func removeNetwork(_ name: HostLabel) {
            sources.networks[name] = nil
            dirty.insert(name)
        }

        /// Adds or replaces endpoint `id` on `network` (created if unknown).
        public mutating func setEndpoint(_ id: String, on network: HostLabel, _ record: EndpointRecord) {
            if sources.networks[network] == nil { sources.networks[network] = Network(subnets: []) }
            sources.networks[network]!.endpoints[id] = record
            dirty.insert(network)
        }

        public mutating func removeEndpoint(_ id: String, from network: HostLabel) {
            guard sources.networks[network]?.endpoints.removeValue(forKey: id) != nil else { return }
            dirty.insert(network)
        }

        /// Replaces every endpoint of `network` at once.
        public mutating func replaceEndpoints(on network: HostLabel, with endpoints: [String: EndpointRecord]) {
            if sources.networks[network] == nil { sources.networks[network] = Network(subnets: []) }
            sources.networks[network]!.endpoints = endpoints
            dirty.insert(network)
        }

        /// Which networks' names `sandbox` can resolve, in order of preference.
        public mutating func attach(_ sandbox: SandboxID, to networks: [HostLabel]) {
            sources.attachments[sandbox] = networks
        }

        public mutating func detach(_ sandbox: SandboxID) {
            sources.attachments[sandbox] = nil
        }
    }

    /// Applies `body`'s changes and publishes the new table.
    public func update(_ body: (inout Changes) -> Void) {
        sources.withLock { current in
            // Move the sources out so the dictionaries stay uniquely referenced and change in place.
            var changes = Changes(sources: current)
            current = Sources()
            body(&changes)
            for name in changes.dirty {
                guard var network = changes.sources.networks[name] else { continue }
                network.zone = NetworkZone(name: name, subnets: network.subnets, endpoints: network.endpoints.values)
                changes.sources.networks[name] = network
            }
            current = changes.sources
            let zones = current.networks.keys.sorted().compactMap { current.networks[$0]?.zone }
            let table = RecordTable(zones: zones, attachments: current.attachments)
            published.withLock { $0 = table }
        }
    }
}
