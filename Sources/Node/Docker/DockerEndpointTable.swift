import Addressing
import ClusterState
import Foundation
import OverlayNet
import Resolver
import Store

/// One endpoint Docker made on a dnsd network through the remote driver: Docker owns the
/// container's namespace (it is not there yet at `Join`) and moves the interface in itself; dnsd
/// gives the veth, the address (cluster IPAM) and, once Docker's events name the container, the
/// published endpoint. Known by Docker's endpoint id, never by its address: an address goes back
/// to the IPAM and to another container while dnsd may still hold a stale endpoint of it.
struct DockerEndpoint {
    var network: NetworkRecord
    var address: IPv4Address
    /// Its IPv6 address on a dual-stack network (Docker's `--ipv6`).
    var address6: IPAddress? = nil
    var mac: MACAddress
    /// The veth's end on the overlay bridge, once joined: named after the endpoint id.
    var bridgePort: String?
    /// Docker's path of the container's namespace (`Join`'s SandboxKey; made just after it), and
    /// that namespace's identity once the liveness check has seen it.
    var sandboxKey: String?
    var namespaceInode: UInt64?
    var published: EndpointState?
    /// When dnsd learnt of it: one younger than the sweep's grace may be starting still (joined,
    /// not yet running).
    var learnt = Date()
    /// The lease its claims were last written under.
    var lease: LeaseID? = nil

    /// Its addresses, IPv4 first.
    var addresses: [IPAddress] { [IPAddress(address)] + (address6.map { [$0] } ?? []) }

    /// Its name and endpoint to hold again under a new lease, if it is published.
    var republication: Republication? {
        guard let published, let name = try? HostLabel(published.name) else { return nil }
        return Republication(name: name, endpoints: [published])
    }
}

/// An address claim the IPAM could not release when Docker asked (the store did not answer): tried
/// again until the store takes it, unless the address is this host's again meanwhile.
struct UnreleasedAddress: Hashable {
    var network: HostLabel
    var address: IPAddress
}

/// The owner of this host's Docker endpoints (by Docker's endpoint id), of the addresses the IPAM
/// handed out here, of the resolvers and egress legs dnsd gives Docker's networks. One short
/// lock, never held across a store request, a call to dockerd or netlink.
final class DockerEndpointTable: @unchecked Sendable {
    private let lock = NSLock()
    private var endpoints: [String: DockerEndpoint] = [:]
    /// Per overlay network: the resolver dnsd serves at its gateway address (for Docker's
    /// containers, whose 127.0.0.11 is Docker's own: `docker run --dns GATEWAY`).
    private var gatewayResolvers: [String: SandboxID] = [:]
    /// Per overlay network: the address of its egress leg on the gateway bridge (nil while made).
    private var egress: [String: IPv4Address?] = [:]
    /// "network/address" -> when the IPAM last handed it out here.
    private var handedOut: [String: Date] = [:]
    private var unreleased: [UnreleasedAddress: Date] = [:]
    /// Networks holding this host's Docker records from before a restart, watched until the
    /// sweep has judged them (or `until`, when no dockerd ever sweeps): the sweep sees only what
    /// this host watches.
    private var recordNetworks: (names: Set<String>, until: Date) = ([], .distantPast)

    subscript(id: String) -> DockerEndpoint? {
        get { lock.withLock { endpoints[id] } }
        set { lock.withLock { endpoints[id] = newValue } }
    }

    func ids() -> [String] { lock.withLock { Array(endpoints.keys) } }

    func all() -> [String: DockerEndpoint] { lock.withLock { endpoints } }

    /// The networks Docker endpoints here are on, and those holding its records from before a
    /// restart that the sweep has not judged yet.
    func networksInUse() -> Set<String> {
        lock.withLock {
            let endpointNetworks = Set(endpoints.values.map(\.network.name))
            return Date() < recordNetworks.until ? endpointNetworks.union(recordNetworks.names) : endpointNetworks
        }
    }

    /// Notes the networks of this host's Docker records found at start (see `recordNetworks`).
    func rememberRecordNetworks(_ names: Set<String>, for seconds: TimeInterval) {
        lock.withLock { recordNetworks = (names, Date().addingTimeInterval(seconds)) }
    }

    /// The sweep has judged the records from before the restart.
    func recordNetworksJudged() { lock.withLock { recordNetworks = ([], .distantPast) } }

    func uses(network: String) -> Bool { lock.withLock { endpoints.values.contains { $0.network.name == network } } }

    /// The other endpoints here that publish `name` (one container on several dnsd networks has
    /// one name on each): the name's claim is this host's while any of them holds it.
    func holdsName(_ name: String, besides id: String) -> Bool {
        lock.withLock { endpoints.contains { $0.key != id && $0.value.published?.name == name } }
    }

    /// Records the namespace identity of endpoint `id`, found at `path`: only if it still joins
    /// there and none is noted yet (a new Join meanwhile starts afresh).
    func noteNamespace(_ id: String, path: String, inode: UInt64) {
        lock.withLock {
            guard endpoints[id]?.sandboxKey == path, endpoints[id]?.namespaceInode == nil else { return }
            endpoints[id]?.namespaceInode = inode
        }
    }

    // MARK: addresses

    private static func key(_ network: String, _ address: IPAddress) -> String { "\(network)/\(address)" }

    /// Notes that the IPAM handed `address` out here (to an endpoint Docker is about to create).
    func handedOut(_ address: IPAddress, on network: HostLabel) {
        lock.withLock {
            // Only the gap between the IPAM and `CreateEndpoint` needs it: ten minutes is plenty.
            let now = Date()
            handedOut = handedOut.filter { now.timeIntervalSince($0.value) < 600 }
            handedOut[Self.key(network.text, address)] = now
            unreleased[UnreleasedAddress(network: network, address: address)] = nil
        }
    }

    /// Whether `address` on `network` is this host's for something other than endpoint `id`
    /// learnt at `since`: another endpoint has it, or the IPAM handed it out again since.
    func heldElsewhere(_ address: IPAddress, on network: String, besides id: String?, since: Date) -> Bool {
        lock.withLock {
            if endpoints.contains(where: { $0.key != id && $0.value.network.name == network && $0.value.addresses.contains(address) }) {
                return true
            }
            return (handedOut[Self.key(network, address)] ?? .distantPast) > since
        }
    }

    /// Queues the release of a claim the store did not take.
    func queueRelease(_ release: UnreleasedAddress) { lock.withLock { unreleased[release] = unreleased[release] ?? Date() } }

    /// The queued releases, with when each was queued.
    func queuedReleases() -> [(release: UnreleasedAddress, since: Date)] { lock.withLock { unreleased.map { ($0.key, $0.value) } } }

    func releaseDone(_ release: UnreleasedAddress) { lock.withLock { unreleased[release] = nil } }

    // MARK: per network

    /// Reserves the gateway resolver slot of `network`; false when it has one already.
    func claimGatewayResolver(_ network: String, id: SandboxID) -> Bool {
        lock.withLock {
            guard gatewayResolvers[network] == nil else { return false }
            gatewayResolvers[network] = id
            return true
        }
    }

    /// Forgets the resolver of `network`, returning its id (to stop serving it).
    @discardableResult
    func dropGatewayResolver(_ network: String) -> SandboxID? { lock.withLock { gatewayResolvers.removeValue(forKey: network) } }

    /// Reserves the egress slot of `network`; false when it has a leg (or one is being made).
    func claimEgress(_ network: String) -> Bool {
        lock.withLock {
            guard egress[network] == nil else { return false }
            egress[network] = .some(nil)
            return true
        }
    }

    func egressMade(_ network: String, address: IPv4Address) { lock.withLock { egress[network] = .some(address) } }

    /// Forgets the egress leg of `network`, returning its address (back to the gateway bridge's pool).
    func dropEgress(_ network: String) -> IPv4Address? { lock.withLock { egress.removeValue(forKey: network) ?? nil } }
}
