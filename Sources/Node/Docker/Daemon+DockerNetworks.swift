import Addressing
import ClusterState
import Foundation
import Netns
import OverlayNet
import Resolver

/// What dnsd adds to an overlay network on a host once Docker's containers use it: a resolver at
/// the network's gateway address and a way out behind that gateway. Both live in the network's
/// hidden namespace (where the gateway address is on br0), once per network, and go with it.
extension Daemon {
    /// dnsd's resolver at the overlay network's gateway address, answering with that network's
    /// names: what a Docker container asks through Docker's own resolver when started with
    /// `--dns GATEWAY`. A failure is logged (Docker's same-host answers still work).
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

    /// The way out for Docker's containers on an overlay network, as Docker's overlay gives one
    /// (docker_gwbridge) and as dnsd's own sandboxes have (a leg on the gateway bridge): their
    /// default route is the network's gateway, on br0 in the network's namespace; that namespace
    /// gets a leg `eg0` on this host's gateway bridge with the default route, forwards, and
    /// masquerades the overlay's subnet leaving through it (the host then NATs the gateway
    /// bridge's subnet as for any sandbox). Docker's `Join` can hand a container only one
    /// interface, so the second leg sits behind the gateway instead of in the container. Once per
    /// network; a leg left by an earlier run is taken back. A failure is logged (names work).
    func provideEgress(_ network: NetworkRecord) {
        guard let label = try? network.label, let subnet = try? network.parsedSubnet, docker.claimEgress(network.name) else { return }
        let spec = LocalBridgeDriver.BridgeSpec.gatewayBridge
        var allocated: IPv4Address?
        var leg: AttachedEndpoint?
        do {
            let namespace = overlay.namespaces.path(overlay.overlayNamespaceName(label))
            let gateway = try factory.adopt(path: namespace, name: overlay.overlayNamespaceName(label))
            if let existing = try gateway.interfaces(.v4).first(where: { $0.name == Self.gatewayEgressInterface }), let address = existing.address.v4 {
                // Left by an earlier run (its address was reserved at start): made whole again.
                try? localAddresses.reserve(address, on: spec)
                try configureEgress(in: gateway, path: namespace, subnet: subnet)
                docker.egressMade(network.name, address: address)
                return
            }
            try bridges.createBridge(spec)
            let address = try localAddresses.allocate(on: spec)
            allocated = address
            leg = try bridges.attach(gateway, to: spec.name, address: address, interface: Self.gatewayEgressInterface, defaultRoute: true)
            try configureEgress(in: gateway, path: namespace, subnet: subnet)
            docker.egressMade(network.name, address: address)
            logger.info("egress for docker containers", metadata: ["network": "\(network.name)", "leg": "\(address)"])
        } catch {
            // Half made: undone, so the next Join makes it whole rather than taking it back.
            if let leg { attempt("removing the half-made egress leg") { try bridges.detach(leg) } }
            if let allocated { localAddresses.release(allocated, on: spec) }
            _ = docker.dropEgress(network.name)
            logger.warning("no egress for docker containers on the network", metadata: ["network": "\(network.name)", "error": "\(error)"])
        }
    }

    /// Forwarding in the network's namespace, and its nftables table (replaced whole, so doing it
    /// again is harmless): the overlay's subnet masqueraded out of `eg0`; from `eg0` in, only
    /// what answers a connection from the overlay, so nothing on the gateway bridge (another
    /// sandbox) can route into a Docker network through it. The chain judges only what comes in
    /// through `eg0`: with br_netfilter loaded (Docker loads it), frames bridged between br0's
    /// ports pass this hook too and must go on untouched.
    private func configureEgress(in gateway: Sandbox, path: String, subnet: IPv4Subnet) throws {
        try thread.run(in: gateway.namespace) { try NetworkSysctl.set("ipv4/ip_forward", "1") }
        let leg = Self.gatewayEgressInterface
        try NamespaceCommand.run(["nft", "-f", "-"], in: path, input: """
            add table ip dnsd_egress
            delete table ip dnsd_egress
            table ip dnsd_egress {
                chain forward {
                    type filter hook forward priority 0; policy accept;
                    iifname "\(leg)" ct state established,related accept
                    iifname "\(leg)" drop
                }
                chain postrouting {
                    type nat hook postrouting priority 100; policy accept;
                    ip saddr \(subnet) oifname "\(leg)" masquerade
                }
            }

            """)
    }

    /// At start: the egress legs of overlay networks an earlier run left (Docker's containers
    /// still use them) keep their addresses on the gateway bridge: reserved before any sandbox
    /// or container takes one.
    func reserveEgressLegs() {
        for network in overlay.namespaceNetworks() {
            guard let label = try? HostLabel(network, what: "network") else { continue }
            let path = overlay.namespaces.path(overlay.overlayNamespaceName(label))
            guard let gateway = try? factory.adopt(path: path, name: overlay.overlayNamespaceName(label)),
                  let leg = try? gateway.interfaces(.v4).first(where: { $0.name == Self.gatewayEgressInterface }),
                  let address = leg.address.v4 else { continue }
            attempt("reserving the egress leg \(address) of \(network)") { try localAddresses.reserve(address, on: .gatewayBridge) }
        }
    }

    /// The egress leg's name in an overlay network's namespace.
    static let gatewayEgressInterface = "eg0"

    /// Its network's devices are going: the resolver at its gateway stops, the egress leg's
    /// address returns to the pool (the leg goes with the namespace); a re-created network of
    /// that name gets both again.
    func networkDevicesGoing(_ network: String) {
        if let id = docker.dropGatewayResolver(network) {
            dns?.stopServing(id)
            records.update { $0.detach(id) }
            logger.info("resolver at the network's gateway stopped", metadata: ["network": "\(network)"])
        }
        if let address = docker.dropEgress(network) { localAddresses.release(address, on: .gatewayBridge) }
    }
}

extension Daemon {
    /// `NetworkDriver.CreateNetwork`, as far as it can be judged before Docker stores the network:
    /// Docker never tells a driver the network's name, so this checks everything else at once, as
    /// `dnsd network create` would (a store that answers, a subnet dnsd can use, that overlaps no
    /// other network nor the host's routes); a subnet equal to a dnsd overlay network's is that
    /// network, being made usable from this host's Docker.
    public func dockerCheckNetwork(subnet: IPv4Subnet, gateway: IPv4Address?, subnet6: IPSubnet? = nil, gateway6: IPAddress? = nil) throws {
        let networks = try registry.networks()
        if let same = networks.first(where: { (try? $0.parsedSubnet) == subnet }) {
            guard same.driver == .overlay else { throw NodeError.invalid("subnet \(subnet) is dnsd bridge network '\(same.name)'s; Docker uses overlay networks") }
            if let gateway, gateway != same.gatewayAddress {
                throw NodeError.invalid("dnsd network '\(same.name)' has gateway \(same.gateway), not \(gateway)")
            }
            let family6 = try same.family6
            guard family6?.subnet == subnet6 else {
                throw NodeError.invalid("dnsd network '\(same.name)' has IPv6 subnet \(same.subnet6 ?? "none"), not \(subnet6?.description ?? "none")")
            }
            if let gateway6, gateway6 != family6?.gateway {
                throw NodeError.invalid("dnsd network '\(same.name)' has IPv6 gateway \(same.gateway6 ?? "none"), not \(gateway6)")
            }
            return
        }
        if let subnet6 {
            do { try ClusterRegistry.checkPrefix6(subnet6) } catch { throw NodeError.from(error) }
            if let gateway6, !subnet6.contains(gateway6) || subnet6.hostRange?.contains(gateway6.value) != true {
                throw NodeError.invalid("gateway \(gateway6) is not a host address of \(subnet6)")
            }
            if let other = networks.first(where: { (try? $0.family6)??.subnet.overlaps(subnet6) == true }) {
                throw NodeError.conflict("subnet \(subnet6) overlaps dnsd network '\(other.name)' (\(other.subnet6 ?? ""))")
            }
        }
        guard subnet.prefixLength <= 30 else { throw NodeError.invalid("subnet \(subnet) has no room for containers (at most /30)") }
        if let gateway, !subnet.contains(gateway) || gateway == subnet.network {
            throw NodeError.invalid("gateway \(gateway) is not a host address of \(subnet)")
        }
        if let other = networks.first(where: { (try? $0.parsedSubnet)?.overlaps(subnet) == true }) {
            throw NodeError.conflict("subnet \(subnet) overlaps dnsd network '\(other.name)' (\(other.subnet))")
        }
        var reserved = LocalBridgeDriver.BridgeSpec.reservedSubnets.map { (subnet: $0, what: "the built-in bridge pool") }
        reserved += try bridges.hostRoutes().map { (subnet: $0, what: "a route of host \(configuration.hostID)") }
        if let clash = reserved.first(where: { $0.subnet.overlaps(subnet) }) {
            throw NodeError.conflict("subnet \(subnet) overlaps \(clash.what) (\(clash.subnet))")
        }
    }
}
