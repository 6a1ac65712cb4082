import Addressing
import ClusterState
import Foundation
import Netns
import OverlayNet
import Resolver
import Store

/// One endpoint Docker made on a dnsd network through the remote driver: Docker owns the
/// container's namespace (it is not there yet at `Join`) and moves the interface in itself; dnsd
/// gives the veth, the address (cluster IPAM) and, once Docker's events name the container, the
/// published endpoint.
struct DockerEndpoint {
    var network: NetworkRecord
    var address: IPv4Address
    var mac: MACAddress
    /// The veth's end on the overlay bridge, once joined.
    var bridgePort: String?
    var published: EndpointState?
    /// When dnsd learnt of it: one younger than the sweep's grace may be starting still (joined,
    /// not yet running).
    var learnt = Date()
    /// The lease its claims were last written under.
    var lease: LeaseID? = nil

    /// Its name and endpoint to hold again under a new lease, if it is published.
    var republication: Republication? {
        guard let published, let name = try? HostLabel(published.name) else { return nil }
        return Republication(name: name, endpoints: [published])
    }
}

/// The owner of this host's Docker endpoints (by Docker's endpoint id) and of the resolvers dnsd
/// serves at overlay gateways for them. One short lock, never held across a store request or a
/// call to dockerd.
final class DockerEndpointTable: @unchecked Sendable {
    private let lock = NSLock()
    private var endpoints: [String: DockerEndpoint] = [:]
    /// Per overlay network: the resolver dnsd serves at its gateway address (for Docker's
    /// containers, whose 127.0.0.11 is Docker's own: `docker run --dns GATEWAY`).
    private var gatewayResolvers: [String: SandboxID] = [:]

    subscript(id: String) -> DockerEndpoint? {
        get { lock.withLock { endpoints[id] } }
        set { lock.withLock { endpoints[id] = newValue } }
    }

    func ids() -> [String] { lock.withLock { Array(endpoints.keys) } }

    func all() -> [String: DockerEndpoint] { lock.withLock { endpoints } }

    func uses(network: String) -> Bool { lock.withLock { endpoints.values.contains { $0.network.name == network } } }

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
}

/// Docker's remote network and IPAM driver calls, as the core carries them out. Networks are
/// dnsd overlay networks, matched by subnet (dnsd networks never overlap); addresses come from
/// the cluster IPAM, so no two hosts hand out one. Calls on one endpoint are ordered; no lock is
/// held across the store.
extension Daemon {
    /// The dnsd network whose subnet is `pool` (an IPAM pool, "192.168.0.0/24").
    private func network(pool subnet: IPv4Subnet) throws -> NetworkRecord {
        let pool = subnet.description
        guard let record = try registry.networks().first(where: { (try? $0.parsedSubnet) == subnet }) else {
            throw NodeError.notFound("no dnsd network has subnet \(pool): create it first (docker network create -d dnsd --ipam-driver dnsd --subnet \(pool) NAME, or dnsd network create)")
        }
        guard record.driver == .overlay else { throw NodeError.invalid("dnsd network '\(record.name)' is a bridge network; Docker uses overlay networks") }
        return record
    }

    /// `IpamDriver.RequestAddress`: the gateway (the network's, or the pool's first address while
    /// the network is being made), or an address claimed in the cluster IPAM for this host.
    func dockerRequestAddress(pool subnet: IPv4Subnet, requested: IPv4Address?, gateway: Bool) throws -> String {
        do {
            if gateway {
                // While Docker makes the network, dnsd's may not exist yet: the pool's first
                // address. A store that does not answer is an error, not "no network".
                let existing = try registry.networks().first { (try? $0.parsedSubnet) == subnet }
                let address = existing?.gatewayAddress ?? requested ?? IPv4Address(subnet.network.value + 1)
                return "\(address)/\(subnet.prefixLength)"
            }
            let record = try network(pool: subnet)
            let address = try registry.allocateAddress(on: record, requested: requested, host: configuration.hostID,
                                                       lease: try currentLease())
            return "\(address)/\(subnet.prefixLength)"
        }
    }

    /// `IpamDriver.ReleaseAddress`: this host's claim goes (the gateway is no claim).
    func dockerReleaseAddress(pool: IPv4Subnet, address: IPv4Address) throws {
        do {
            // A network that is gone has no claims left to release; a store error is reported to
            // Docker (it retries), never taken for success: a leaked claim blocks `network rm`.
            let record: NetworkRecord
            do { record = try network(pool: pool) } catch NodeError.notFound { return }
            guard address != record.gatewayAddress else { return }
            try registry.releaseAddress(address, on: try record.label, heldBy: configuration.hostID)
        }
    }

    /// `NetworkDriver.CreateEndpoint`: Docker gives the address it took from the IPAM; the reply
    /// gives the MAC every host's FDB will point at.
    func dockerCreateEndpoint(_ endpointID: DockerEndpointID, address: IPv4Address) throws -> String {
        let id = endpointID.text
        return try order.run(Self.dockerKey(id)) {
            guard let record = try registry.networks().first(where: { (try? $0.parsedSubnet)?.contains(address) == true && $0.driver == .overlay }) else {
                throw NodeError.notFound("no dnsd overlay network holds \(address)")
            }
            let mac = MACAddress(derivedFrom: address)
            docker[id] = DockerEndpoint(network: record, address: address, mac: mac)
            return mac.description
        }
    }

    /// `NetworkDriver.Join`: the veth Docker moves into the container (its name in the host's
    /// namespace) and the overlay network's gateway.
    func dockerJoin(_ endpointID: DockerEndpointID) throws -> (interface: String, gateway: String) {
        let id = endpointID.text
        return try order.run(Self.dockerKey(id)) {
            guard var endpoint = docker[id] else { throw NodeError.notFound("no endpoint \(id) on this host") }
            let hostName = "dnsd" + String(id.prefix(11))
            let label = try endpoint.network.label
            endpoint.bridgePort = try devices.withNetwork(endpoint.network) {
                try overlay.createHostVeth(on: label, address: endpoint.address, mac: endpoint.mac, hostName: hostName)
            }
            docker[id] = endpoint
            serveGatewayResolver(endpoint.network)
            return (hostName, endpoint.network.gatewayAddress?.description ?? "")
        }
    }

    /// `NetworkDriver.Leave` / `DeleteEndpoint`: its names go from the cluster; with `delete`, its
    /// veth and the record here too.
    func dockerLeave(_ endpointID: DockerEndpointID, delete: Bool) throws {
        let id = endpointID.text
        try order.run(Self.dockerKey(id)) {
            guard var endpoint = docker[id] else { return }
            try withdrawDocker(&endpoint)
            if delete {
                if let port = endpoint.bridgePort { try overlay.deleteBridgePort(port, on: try endpoint.network.label) }
                docker[id] = nil
            } else {
                docker[id] = endpoint
            }
        }
    }

    /// Names a Docker endpoint (from Docker's events: `name`, `--network-alias`): published under
    /// this host's lease, as a `dnsd run` sandbox's would be. A name another host holds is refused.
    public func dockerPublish(_ id: String, name text: String, aliases: [String]) throws {
        try order.run(Self.dockerKey(id)) {
            let lease = try currentLease()
            guard var endpoint = docker[id] else { throw NodeError.notFound("no endpoint \(id) on this host") }
            // Docker's generated names (youthful_noether) answer as youthful-noether.
            guard let name = HostLabel.sanitized(text) else { throw NodeError.invalid("container name '\(text)' has no DNS form") }
            let state = dockerState(id, network: endpoint.network, address: endpoint.address, name: name, aliases: aliases)
            if let published = endpoint.published, published.name == name.text {
                // Named at Join already; the start event adds the aliases Docker knows by then.
                guard published.aliases != state.aliases else { return }
                try registry.publish(state, lease: lease)
            } else {
                try withdrawDocker(&endpoint)
                try registry.claimName(name, host: configuration.hostID, lease: lease)
                do { try registry.publish(state, lease: lease) } catch {
                    attempt("releasing the name \(name) after a failed publish") { try registry.releaseName(name, heldBy: configuration.hostID) }
                    throw error
                }
            }
            endpoint.published = state
            endpoint.lease = lease
            docker[id] = endpoint
        }
    }

    /// dnsd's resolver at the overlay network's gateway address, in its hidden namespace (where the
    /// gateway lives on br0), answering with that network's names: what a Docker container asks
    /// through Docker's own resolver when started with `--dns GATEWAY`. Once per network; a
    /// failure is logged (Docker's same-host answers still work).
    func serveGatewayResolver(_ network: NetworkRecord) {
        guard let dns, let label = try? network.label, let gateway = network.gatewayAddress else { return }
        let id = sandboxes.nextSandboxID()
        guard docker.claimGatewayResolver(network.name, id: id) else { return }
        do {
            let namespace = try NamespaceHandle(path: overlay.namespaces.path(overlay.overlayNamespaceName(label)))
            records.update { $0.attach(id, to: [label]) }
            _ = try dns.serve(id, in: namespace, at: SocketAddress(gateway, port: 53))
            logger.info("resolver at the network's gateway", metadata: ["network": "\(network.name)", "address": "\(gateway):53"])
        } catch {
            records.update { $0.detach(id) }
            docker.dropGatewayResolver(network.name)
            logger.warning("no resolver at the network's gateway", metadata: ["network": "\(network.name)", "error": "\(error)"])
        }
    }

    /// Stops the resolver at `network`'s gateway, if one is served (its network's devices are
    /// going: a re-created network of that name gets a resolver of its own).
    func stopGatewayResolver(_ network: String) {
        guard let id = docker.dropGatewayResolver(network) else { return }
        dns?.stopServing(id)
        records.update { $0.detach(id) }
        logger.info("resolver at the network's gateway stopped", metadata: ["network": "\(network)"])
    }

    /// After a restart of dnsd (or of dockerd): an endpoint of a running Docker container, as
    /// dockerd describes it, taken back with its address, MAC and veth, its name and address held
    /// again under this daemon's lease and published.
    public func dockerAdopt(_ id: String, network networkName: String, address text: String, name text2: String, aliases: [String]) throws {
        try order.run(Self.dockerKey(id)) {
            let lease = try currentLease()
            guard docker[id]?.published == nil else { return }
            guard let address = IPv4Address(text) else { throw NodeError.invalid("endpoint \(id): no IPv4 address") }
            guard let record = try registry.networks().first(where: { $0.name == networkName && $0.driver == .overlay }) else {
                throw NodeError.notFound("no dnsd overlay network '\(networkName)'")
            }
            guard let name = HostLabel.sanitized(text2) else { throw NodeError.invalid("container name '\(text2)' has no DNS form") }
            try devices.withNetwork(record) {}
            let state = dockerState(id, network: record, address: address, name: name, aliases: aliases)
            let refused = try registry.republish([Republication(name: name, endpoints: [state])], host: configuration.hostID, lease: lease)
            if let error = refused[name] { throw error }
            docker[id] = DockerEndpoint(network: record, address: address, mac: MACAddress(derivedFrom: address),
                                        bridgePort: OverlayDriver.hostVethPortName(for: address), published: state, lease: lease)
            serveGatewayResolver(record)
        }
    }

    /// After a resynchronisation with dockerd: this host's Docker endpoints that no running
    /// container has any more (stopped while dnsd or dockerd was away, dockerd restarted) are
    /// withdrawn, with their names and addresses, and their veths deleted; one dnsd learnt of
    /// less than `grace` ago is left alone (its container may be between Join and running).
    public func dockerSweep(running: Set<String>, grace: TimeInterval = 10) {
        let now = Date()
        for (id, _) in docker.all() where !running.contains(id) {
            order.run(Self.dockerKey(id)) {
                guard var endpoint = docker[id], now.timeIntervalSince(endpoint.learnt) >= grace else { return }
                attempt("withdrawing docker endpoint \(id.prefix(12))") { try withdrawDocker(&endpoint) }
                attempt("releasing \(endpoint.address)") {
                    try registry.releaseAddress(endpoint.address, on: try endpoint.network.label, heldBy: configuration.hostID)
                }
                if let port = endpoint.bridgePort { attempt("deleting \(port)") { try overlay.deleteBridgePort(port, on: try endpoint.network.label) } }
                docker[id] = nil
            }
        }
        // The store's view first, then this host's: an endpoint published between the two reads
        // is in the second, never taken for stale.
        let known = reconciler.known().endpoints
        let kept = Set(docker.all().values.compactMap { $0.published?.id })
        let stale = known.filter { $0.host == configuration.hostID && $0.runtime == "docker" && !kept.contains($0.id) }
        for endpoint in stale {
            logger.info("withdrawing a docker endpoint whose container is gone", metadata: ["endpoint": "\(endpoint.id)", "name": "\(endpoint.name)"])
            withdrawEndpoint(endpoint)
            if let name = try? HostLabel(endpoint.name), sandboxes.sandbox(endpoint.name) == nil {
                attempt("releasing the name \(name)") { try registry.releaseName(name, heldBy: configuration.hostID) }
            }
        }
    }

    /// The key that orders the calls on one Docker endpoint.
    static func dockerKey(_ id: String) -> String { "docker/" + id }

    /// What a Docker endpoint publishes: its names (aliases as DNS labels, without the name),
    /// address, dnsd's MAC for it, this host and its VTEP.
    private func dockerState(_ id: String, network: NetworkRecord, address: IPv4Address, name: HostLabel, aliases: [String]) -> EndpointState {
        EndpointState(id: "\(configuration.hostID)-d\(id.prefix(12))", network: network.name, name: name.text,
                      aliases: aliases.compactMap { HostLabel.sanitized($0)?.text }.filter { $0 != name.text },
                      ipv4: address.description, mac: MACAddress(derivedFrom: address).description,
                      host: configuration.hostID, vtep: configuration.advertise.description, runtime: "docker")
    }

    /// The Docker endpoints of this host (for the events watcher's resynchronisation).
    public func dockerEndpointIDs() -> [String] { docker.ids() }

    private func withdrawDocker(_ endpoint: inout DockerEndpoint) throws {
        guard let published = endpoint.published else { return }
        try registry.withdraw(endpoint: published.id, network: try endpoint.network.label)
        if let name = try? HostLabel(published.name), sandboxes.sandbox(published.name) == nil {
            try registry.releaseName(name, heldBy: configuration.hostID)
        }
        endpoint.published = nil
    }
}
