import Addressing
import ClusterState
import Foundation
import Netns
import OverlayNet
import Resolver
import Store

/// Docker's remote network driver calls on endpoints, as the core carries them out. Networks are
/// dnsd overlay networks, matched by subnet (dnsd networks never overlap). Calls on one endpoint
/// are ordered, and so is everything on one name (a container on two networks publishes its name
/// from two endpoints); no lock is held across the store.
extension Daemon {
    /// `NetworkDriver.CreateEndpoint`: Docker gives the address it took from the IPAM; the reply
    /// gives the MAC every host's FDB will point at.
    func dockerCreateEndpoint(_ endpointID: DockerEndpointID, address: IPv4Address, address6: IPAddress?) throws -> String {
        let id = endpointID.text
        return try order.run(Self.dockerKey(id)) {
            guard let record = try registry.networks().first(where: { (try? $0.parsedSubnet)?.contains(address) == true && $0.driver == .overlay }) else {
                throw NodeError.notFound("no dnsd overlay network holds \(address)")
            }
            if let address6, (try record.family6)?.subnet.contains(address6) != true {
                throw NodeError.invalid("\(address6) is not in an IPv6 subnet of dnsd network '\(record.name)'")
            }
            let mac = MACAddress(derivedFrom: address)
            // Watched from here on: the table's entry keeps it so (`Reconciler.using`).
            try reconciler.using(record.name) { docker[id] = DockerEndpoint(network: record, address: address, address6: address6, mac: mac) }
            return mac.description
        }
    }

    /// `NetworkDriver.Join`: the veth Docker moves into the container (its name in the host's
    /// namespace), the overlay network's gateway, and the way out behind that gateway.
    /// `sandboxKey` is where Docker will make the container's namespace.
    func dockerJoin(_ endpointID: DockerEndpointID, sandboxKey: String?) throws -> (interface: String, gateway: String) {
        let id = endpointID.text
        return try order.run(Self.dockerKey(id)) {
            guard var endpoint = docker[id] else { throw NodeError.notFound("no endpoint \(id) on this host") }
            let hostName = "dnsd" + String(id.prefix(11))
            let port = OverlayDriver.hostVethPortName(forEndpoint: id)
            let label = try endpoint.network.label
            try devices.withNetwork(endpoint.network) {
                try overlay.createHostVeth(on: label, port: port, mac: endpoint.mac, hostName: hostName)
            }
            endpoint.bridgePort = port
            endpoint.sandboxKey = sandboxKey
            endpoint.namespaceInode = nil
            docker[id] = endpoint
            serveGatewayResolver(endpoint.network)
            provideEgress(endpoint.network)
            return (hostName, endpoint.network.gatewayAddress?.description ?? "")
        }
    }

    /// `NetworkDriver.Leave` / `DeleteEndpoint`: its names go from the cluster; with `delete`, its
    /// veth and the record here too. What is here goes whatever the store says: a withdrawal the
    /// store does not take now is queued and retried (the names stop answering here at once), so
    /// no stale endpoint stays behind to be mistaken later for a new one with its address.
    func dockerLeave(_ endpointID: DockerEndpointID, delete: Bool) throws {
        let id = endpointID.text
        // Not in the table (dnsd restarted and had not taken it back yet): its record from before
        // goes by its id, and with DeleteEndpoint its veth by its name.
        let stale = docker[id] == nil ? reconciler.known().endpoints.first { $0.id == dockerRecordID(id) && $0.host == configuration.hostID } : nil
        inDockerOrder(id, also: stale?.name) {
            guard var endpoint = docker[id] else {
                if let stale { withdrawStaleDockerRecord(stale) }
                if delete { attempt("deleting a veth left by endpoint \(id.prefix(12))") { try overlay.deleteBridgePortEverywhere(OverlayDriver.hostVethPortName(forEndpoint: id)) } }
                return
            }
            withdrawDocker(id, &endpoint)
            if delete {
                if let port = endpoint.bridgePort {
                    attempt("deleting \(port)") { try overlay.deleteBridgePort(port, on: try endpoint.network.label) }
                }
                docker[id] = nil
                releaseDevicesIfGone(endpoint.network)
            } else {
                docker[id] = endpoint
            }
        }
    }

    /// In the order of `record`'s name: a record of this host's Docker endpoint that no table entry
    /// has (from before a restart of dnsd) is withdrawn, and its name released unless an
    /// endpoint or a sandbox here holds it now. Its address is left to Docker's IPAM.
    func withdrawStaleDockerRecord(_ record: EndpointState) {
        guard !docker.all().values.contains(where: { $0.published?.id == record.id }) else { return }
        logger.info("withdrawing a docker endpoint whose container is gone", metadata: ["endpoint": "\(record.id)", "name": "\(record.name)"])
        guard let network = try? HostLabel(record.network, what: "network") else { return }
        attempt("withdrawing endpoint \(record.id)") { try registry.withdraw(endpoint: record.id, network: network) }
        if let name = try? HostLabel(record.name), sandboxes.sandbox(record.name) == nil,
           !docker.all().values.contains(where: { $0.published?.name == record.name }) {
            attempt("releasing the name \(name)") { try registry.releaseName(name, heldBy: configuration.hostID) }
        }
    }

    /// After an endpoint left `network`: its devices here go if the store no longer has it and
    /// nothing here uses it (the network was removed while the endpoint was on it).
    func releaseDevicesIfGone(_ network: NetworkRecord) {
        guard reconciler.network(named: network.name) == nil else { return }
        devices.networkLeft(network)
    }

    /// Names a Docker endpoint (from Docker's events: `name`, `--network-alias`): published under
    /// this host's lease, as a `dnsd run` sandbox's would be. A name another host holds is refused;
    /// one this host holds for the container's endpoint on another network is shared.
    public func dockerPublish(_ id: String, name text: String, aliases: [String]) throws {
        // Docker's generated names (youthful_noether) answer as youthful-noether.
        guard let name = HostLabel.sanitized(text) else { throw NodeError.invalid("container name '\(text)' has no DNS form") }
        try inDockerOrder(id, also: name.text) {
            let lease = try currentLease()
            guard var endpoint = docker[id] else { throw NodeError.notFound("no endpoint \(id) on this host") }
            let state = dockerState(id, network: endpoint.network, addresses: endpoint.addresses, name: name, aliases: aliases)
            if let published = endpoint.published, published.name == name.text {
                // Named at Join already; the start event adds the aliases Docker knows by then.
                guard published.aliases != state.aliases else { return }
                try registry.publish(state, lease: lease)
            } else {
                withdrawDocker(id, &endpoint)
                docker[id] = endpoint
                // A withdrawal of this name still queued (a container of this name gone a moment
                // ago) goes first, or it would take the new claim with it.
                try withdrawals.finish(name.text)
                // Shared only between Docker endpoints (one container's on several networks: a
                // dockerd has one container of a name); a sandbox of that name here is refused
                // by the claim, as another host's would be.
                let shared = docker.holdsName(name.text, besides: id)
                if !shared { try registry.claimName(name, host: configuration.hostID, lease: lease) }
                do { try registry.publish(state, lease: lease) } catch {
                    if !shared {
                        attempt("releasing the name \(name) after a failed publish") { try registry.releaseName(name, heldBy: configuration.hostID) }
                    }
                    throw error
                }
            }
            endpoint.published = state
            endpoint.lease = lease
            docker[id] = endpoint
        }
    }

    /// After a restart of dnsd (or of dockerd): an endpoint of a running Docker container, as
    /// dockerd describes it, taken back with its address, MAC and veth, its name and address held
    /// again under this daemon's lease and published.
    public func dockerAdopt(_ id: String, network networkName: String, address text: String, address6 text6: String? = nil,
                            name text2: String, aliases: [String], sandboxKey: String?) throws {
        guard let name = HostLabel.sanitized(text2) else { throw NodeError.invalid("container name '\(text2)' has no DNS form") }
        try inDockerOrder(id, also: name.text) {
            let lease = try currentLease()
            guard docker[id]?.published == nil else { return }
            guard let address = IPv4Address(text) else { throw NodeError.invalid("endpoint \(id): no IPv4 address") }
            guard let record = try registry.networks().first(where: { $0.name == networkName && $0.driver == .overlay }) else {
                throw NodeError.notFound("no dnsd overlay network '\(networkName)'")
            }
            // The network may have been made again meanwhile (another subnet, no IPv4 at all).
            guard (try? record.parsedSubnet)?.contains(address) == true else {
                throw NodeError.conflict("endpoint \(id.prefix(12)): \(address) is not in dnsd network '\(networkName)' any more")
            }
            // Docker's IPv6 address counts only inside the network's IPv6 prefix (the network may
            // have been made again without one while the container ran): else IPv4 alone.
            var address6 = text6.flatMap { $0.isEmpty ? nil : IPAddress($0) }
            if let given = address6, (try record.family6)?.subnet.contains(given) != true {
                logger.warning("a docker endpoint's IPv6 address is outside its network's IPv6 subnet: taken back with IPv4 only",
                               metadata: ["endpoint": "\(id.prefix(12))", "address": "\(given)", "network": "\(record.name)"])
                address6 = nil
            }
            try reconciler.using(record.name) { try takeBackDocker(id, record: record, address: address, address6: address6, name: name,
                                                                   aliases: aliases, sandboxKey: sandboxKey, lease: lease) }
        }
    }

    /// `dockerAdopt`'s work, with the network watched.
    private func takeBackDocker(_ id: String, record: NetworkRecord, address: IPv4Address, address6: IPAddress?, name: HostLabel,
                                aliases: [String], sandboxKey: String?, lease: LeaseID) throws {
        try devices.withNetwork(record) {}
        var endpoint = DockerEndpoint(network: record, address: address, address6: address6, mac: MACAddress(derivedFrom: address))
        let state = dockerState(id, network: record, addresses: endpoint.addresses, name: name, aliases: aliases)
        let refused = try registry.republish([Republication(name: name, endpoints: [state])], host: configuration.hostID, lease: lease)
        if let error = refused[name] { throw error }
        // Its veth, by the endpoint's name (or by the address, as earlier versions named it).
        let label = try record.label
        let port = [OverlayDriver.hostVethPortName(forEndpoint: id), AttachedEndpoint.bridgePortName("vd", for: address)]
            .first { (try? overlay.hasBridgePort($0, on: label)) == true }
        endpoint.bridgePort = port
        endpoint.sandboxKey = sandboxKey
        endpoint.published = state
        endpoint.lease = lease
        docker[id] = endpoint
        serveGatewayResolver(record)
        provideEgress(record)
    }

    /// The key that orders the calls on one Docker endpoint.
    static func dockerKey(_ id: String) -> String { "docker/" + id }

    /// Runs `body` in endpoint `id`'s order and in that of the name it publishes (and of `also`),
    /// so a name's claim and release never interleave with another endpoint's, a sandbox's or a
    /// queued withdrawal's of the same name.
    func inDockerOrder<T>(_ id: String, also extra: String? = nil, _ body: () throws -> T) rethrows -> T {
        while true {
            let name = docker[id]?.published?.name
            var result: T?
            try order.run(keys: [Self.dockerKey(id)] + [name, extra].compactMap { $0 }) {
                // Published under another name meanwhile: take that name's order instead.
                guard docker[id]?.published?.name == name else { return }
                result = try body()
            }
            if let result { return result }
        }
    }

    /// `inDockerOrder` for background work: nothing (false) if a command holds either key now.
    func tryInDockerOrder(_ id: String, _ body: () -> Void) -> Bool {
        let name = docker[id]?.published?.name
        return order.tryRun(keys: [Self.dockerKey(id)] + [name].compactMap { $0 }) {
            guard docker[id]?.published?.name == name else { return }
            body()
        }
    }

    /// What a Docker endpoint publishes: its names (aliases as DNS labels, without the name),
    /// addresses, dnsd's MAC for it, this host and its VTEP.
    private func dockerState(_ id: String, network: NetworkRecord, addresses: [IPAddress], name: HostLabel, aliases: [String]) -> EndpointState {
        var state = endpointState(name, aliases: aliases.compactMap { HostLabel.sanitized($0) }.filter { $0 != name }, on: network,
                                  addresses: addresses)
        state.id = dockerRecordID(id)
        state.runtime = "docker"
        return state
    }

    /// The record id of Docker endpoint `id` on this host.
    func dockerRecordID(_ id: String) -> String { "\(configuration.hostID)-d\(id.prefix(12))" }

    /// The Docker endpoints of this host (for the events watcher's resynchronisation).
    public func dockerEndpointIDs() -> [String] { docker.ids() }

    /// Those of `ids` (running containers' endpoints on dnsd networks) that dnsd has not taken
    /// back or not named: an adoption or publish to do again.
    public func dockerEndpointsWithoutName(among ids: Set<String>) -> Set<String> {
        let table = docker.all()
        return ids.filter { table[$0]?.published == nil }
    }

    /// Withdraws endpoint `id`'s published record (in its order and its name's): here at once (DNS
    /// and hosts files stop answering), from the store now or, if it does not answer, by the
    /// pending withdrawals. Its name goes only when no other endpoint or sandbox here holds it;
    /// its address stays (Docker releases it through the IPAM).
    func withdrawDocker(_ id: String, _ endpoint: inout DockerEndpoint) {
        guard let published = endpoint.published, let name = try? HostLabel(published.name) else {
            endpoint.published = nil
            return
        }
        endpoint.published = nil
        let releasingName = !docker.holdsName(name.text, besides: id) && sandboxes.sandbox(name.text) == nil
        do {
            try registry.release(name: releasingName ? name : nil, endpoints: [published], keepingAddressesOf: [published.id],
                                 host: configuration.hostID, lease: endpoint.lease)
        } catch {
            logger.warning("withdrawing a docker endpoint from the store failed; retrying", metadata: ["endpoint": "\(id.prefix(12))", "error": "\(error)"])
            reconciler.suppress([published])
            withdrawals.add(name, endpoints: [published], releasingName: releasingName, keepingAddresses: true)
        }
    }
}
