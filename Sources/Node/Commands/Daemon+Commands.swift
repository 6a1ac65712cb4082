import Addressing
import ClusterState
import Foundation
import HostsWriter
import OverlayNet
import Resolver
import Store

/// The control API's commands. Each validates first, writes the store first (one transaction
/// for an attach, one for a stop), and undoes its own half-done steps when a later one fails, so
/// a refusal changes nothing. Commands on one sandbox are ordered by its name; nothing else waits.
extension Daemon {
    /// Carries out `command`. Refusals and failures are thrown as `NodeError`s, each with the one
    /// line a user reads.
    public func perform(_ command: Command) throws -> CommandResult {
        do {
            return try commands.run {
                // Without a lease every change would only wait for the store to refuse it.
                if command.changes { _ = try currentLease() }
                switch command {
                case .createNetwork(let spec): return .network(try networkCreate(spec))
                case .listNetworks: return .networks(try registry.networks().sorted { $0.name < $1.name })
                case .inspectNetwork(let name): return .networkDetail(try networkInspect(name))
                case .removeNetwork(let name): return .removed(Removed(name: try networkRemove(name)))
                case .run(let spec): return .sandbox(info(try run(spec)))
                case .attach(let spec): return .sandbox(info(try adopt(spec)))
                case .connect(let name, let spec): return .sandbox(info(try connect(name, spec)))
                case .disconnect(let name, let network): return .sandbox(info(try disconnect(name, from: network)))
                case .stop(let name): return .removed(Removed(name: try stop(name, missingIsFine: false)))
                case .remove(let name): return .removed(Removed(name: try stop(name, missingIsFine: true)))
                case .listSandboxes: return .sandboxes(sandboxes.all().sorted { $0.name < $1.name }.map(info))
                case .inspectSandbox(let name): return .sandbox(info(try local(name)))
                case .dnsView(let name): return .dnsView(dnsView(try local(name)))
                case .attachContainer(let spec): return .containerAttachment(try attachContainer(spec))
                case .detachContainer(let id, let network):
                    try detachContainer(id, network: network)
                    return .removed(Removed(name: id.text))
                case .checkContainer(let id, let network): return .containerAttachment(try checkContainer(id, network: network))
                case .dockerRequestAddress(let pool, let requested, let gateway):
                    return .dockerAddress(try dockerRequestAddress(pool: pool, requested: requested, gateway: gateway))
                case .dockerReleaseAddress(let pool, let address):
                    try dockerReleaseAddress(pool: pool, address: address)
                    return .done
                case .dockerCreateEndpoint(let id, let address, let address6):
                    return .dockerEndpoint(mac: try dockerCreateEndpoint(id, address: address, address6: address6))
                case .dockerJoin(let id, let sandboxKey):
                    let joined = try dockerJoin(id, sandboxKey: sandboxKey)
                    return .dockerJoined(interface: joined.interface, gateway: joined.gateway)
                case .dockerLeave(let id, let delete):
                    try dockerLeave(id, delete: delete)
                    return .done
                }
            }
        } catch {
            throw NodeError.from(error)
        }
    }

    func local(_ name: HostLabel) throws -> LocalSandbox {
        guard let local = sandboxes.sandbox(name.text) else { throw NodeError.notFound("no sandbox '\(name)' on this host") }
        return local
    }

    /// What the API says of a local sandbox.
    func info(_ local: LocalSandbox) -> SandboxInfo {
        SandboxInfo(name: local.name.text, hostname: local.hostname.text, aliases: local.aliases.map(\.text),
                    netns: local.sandbox.namespace.path, hostsFile: local.files.hosts, resolvConf: local.files.resolvConf,
                    adopted: local.adopted, attachments: local.attachments.map { attachment in
                        SandboxInfo.Attachment(network: attachment.network.name, driver: attachment.network.driver.rawValue,
                                               interface: attachment.endpoint.interface, address: attachment.endpoint.address.description,
                                               address6: attachment.endpoint.address6?.description,
                                               mac: attachment.endpoint.mac.description, named: attachment.published != nil)
                    })
    }

    /// The names `local`'s resolver offers, network by network.
    private func dnsView(_ local: LocalSandbox) -> DNSView {
        let endpoints = reconciler.known().endpoints
        let networks = local.namedNetworks.map { label -> DNSView.Network in
            let record = reconciler.network(named: label.text)
            let names = endpoints.filter { $0.network == label.text }.sorted { $0.name < $1.name }.map {
                DNSView.Name(name: $0.name, aliases: $0.aliases, address: $0.ipv4, address6: $0.ipv6, host: $0.host)
            }
            return DNSView.Network(name: label.text, subnet: record?.subnet ?? "", subnet6: record?.subnet6, names: names)
        }
        return DNSView(sandbox: local.name.text, resolver: dns == nil ? "hosts file only (hosts mode)" : "127.0.0.11:53", networks: networks)
    }

    // MARK: networks

    private func networkCreate(_ spec: NetworkSpec) throws -> NetworkRecord {
        if spec.subnet6 != nil || spec.subnet == nil, spec.driver == .bridge {
            // A bridge network's bridge and NAT live in the host's namespace: IPv4 only for now.
            throw NodeError.invalid("bridge networks are IPv4 only: an IPv6 subnet needs --driver overlay")
        }
        var reserved = LocalBridgeDriver.BridgeSpec.reservedSubnets.map { (subnet: $0, what: "the built-in bridge pool") }
        reserved += try bridges.hostRoutes().map { (subnet: $0, what: "a route of host \(configuration.hostID)") }
        return try registry.createNetwork(name: spec.name, driver: spec.driver, subnet: spec.subnet, gateway: spec.gateway,
                                          subnet6: spec.subnet6, gateway6: spec.gateway6, host: configuration.hostID, reserved: reserved)
    }

    private func networkInspect(_ name: HostLabel) throws -> NetworkDetail {
        let record = try registry.network(name)
        let endpoints = try registry.endpoints(on: record.name).endpoints.sorted { $0.id < $1.id }
        return NetworkDetail(network: record, endpoints: endpoints)
    }

    /// Removes the network from the store (every host then removes its devices, from the
    /// watch); this host's go before the command returns.
    private func networkRemove(_ name: HostLabel) throws -> String {
        let record = try registry.network(name)
        try registry.deleteNetwork(name)
        try devices.remove(record)
        return name.text
    }

    // MARK: sandboxes

    private func run(_ spec: RunSpec) throws -> LocalSandbox {
        let name = spec.name, hostname = spec.hostname, aliases = spec.aliases, requested = spec.addresses
        let network = try spec.network.map { try self.network($0) }
        if let network { try checkAttachable(network) }
        return try order.run(name.text) {
            let (lease, undo) = try startMaking(name)
            // The network's endpoints and claims watched here first (`Reconciler.using`).
            return try watching(network?.name) { try undo.perform {
                // The cluster first (names are unique there), in one transaction with the
                // address and the endpoint; then this host's namespace and interfaces.
                var claimed: EndpointState?
                if let network {
                    claimed = try claim(name: name, as: name, aliases: aliases, on: network, requested: requested, lease: lease, undo: undo)
                } else {
                    try registry.claimName(name, host: configuration.hostID, lease: lease)
                    undo.add("claim of name \(name)") { [self] in try registry.releaseName(name, heldBy: configuration.hostID) }
                }
                guard !factory.namespaces.exists(name.text) else {
                    throw NodeError.conflict("a network namespace named '\(name)' already exists on this host")
                }
                let sandbox = try factory.create(name.text)
                undo.add("namespace \(name)") { [self] in try factory.delete(sandbox) }
                var local = LocalSandbox(name: name, hostname: hostname, aliases: aliases, sandbox: sandbox, id: sandboxes.nextSandboxID(),
                                         adopted: false, lease: lease)
                try hosts.addSandbox(name.text, files: .namedNamespace(name.text), hostname: hostname)
                undo.add("hosts file of \(name)") { [self] in hosts.removeSandbox(name.text, deleteFiles: true) }
                if let network, let claimed {
                    // run --net=NET: eth0 on NET, eth1 on the gateway bridge with the default route.
                    try plug(&local, into: network, as: claimed, defaultRoute: network.driver == .bridge, undo: undo)
                    if network.driver == .overlay { try attachLocal(&local, spec: .gatewayBridge, defaultRoute: true, undo: undo) }
                } else {
                    try attachLocal(&local, spec: .defaultBridge, defaultRoute: true, undo: undo)
                }
                try startDNS(local)
                sandboxes.save(local)
                return local
            } }
        }
    }

    /// In `name`'s order, how every command that makes a sandbox starts: the lease, an earlier
    /// sandbox of the name's withdrawal settled, the name reserved here (its rollback ends the
    /// reservation).
    private func startMaking(_ name: HostLabel) throws -> (lease: LeaseID, undo: Rollback) {
        let lease = try currentLease()
        try withdrawals.finish(name.text)
        try sandboxes.reserve(name, host: configuration.hostID)
        let undo = Rollback(logger: logger)
        undo.add("reservation of \(name)") { [self] in sandboxes.unreserve(name) }
        return (lease, undo)
    }

    /// Runs `body` with `network` (if any) watched here: its endpoints and claims listed first.
    private func watching<T>(_ network: String?, _ body: () throws -> T) throws -> T {
        guard let network else { return try body() }
        return try reconciler.using(network, body)
    }

    /// `dnsd attach`: a namespace made by a container runtime joins a network.
    private func adopt(_ spec: AdoptionSpec) throws -> LocalSandbox {
        try order.run(spec.name.text) {
            try adopt(name: spec.name, path: spec.netns, network: spec.network, interface: nil, requested: [],
                      aliases: spec.aliases, hostsFile: spec.hostsFile, containerID: nil, egressInterface: nil)
        }
    }

    /// In `name`'s order: adopts a namespace a runtime made: dnsd adds the interface
    /// (`interface`, or the next `ethN`) and the names, serves DNS at 127.0.0.11 if the address is
    /// free there, keeps the runtime's hosts file (or /etc/netns/NAME/hosts), and never deletes
    /// the namespace. With `egressInterface`, an overlay attachment also gets a leg on the
    /// gateway bridge under that name, with the default route (as `run --net` gives eth1): the
    /// way out of the overlay.
    func adopt(name: HostLabel, path: String, network networkName: HostLabel, interface: String?, requested: [IPAddress],
               aliases: [HostLabel], hostsFile: String?, containerID: ContainerID?, egressInterface: String?) throws -> LocalSandbox {
        guard FileManager.default.fileExists(atPath: path) else { throw NodeError.notFound("no network namespace at \(path)") }
        let network = try self.network(networkName)
        try checkAttachable(network)
        let (lease, undo) = try startMaking(name)
        return try reconciler.using(network.name) { try undo.perform {
            let sandbox = try factory.adopt(path: path, name: name.text)
            let inode = try sandbox.namespace.inode()
            if let other = sandboxes.sandbox(inode: inode) {
                throw NodeError.conflict("the namespace at \(path) is already managed on this host as '\(other.name)'")
            }
            for wanted in [interface, network.driver == .overlay ? egressInterface : nil].compactMap({ $0 }) where try sandbox.hasInterface(named: wanted) {
                throw NodeError.conflict("an interface named \(wanted) already exists in \(path)")
            }
            let claimed = try claim(name: name, as: name, aliases: aliases, on: network, requested: requested, lease: lease, undo: undo)
            var local = LocalSandbox(name: name, hostname: name, aliases: aliases, sandbox: sandbox, id: sandboxes.nextSandboxID(), adopted: true,
                                     hostsFile: hostsFile, containerID: containerID?.text, namespaceInode: inode, lease: lease)
            try hosts.addSandbox(name.text, files: local.files, hostname: name)
            let ownsFiles = local.ownsFiles
            undo.add("hosts file of \(name)") { [self] in hosts.removeSandbox(name.text, deleteFiles: ownsFiles) }
            // A runtime's container gets a way out: on an overlay its egress leg, on a bridge
            // network (whose bridge NATs) the default route through the network's gateway.
            try plug(&local, into: network, as: claimed, interface: interface, defaultRoute: containerID != nil && network.driver == .bridge,
                     undo: undo)
            if let egressInterface, network.driver == .overlay {
                try attachLocal(&local, spec: .gatewayBridge, interface: egressInterface, defaultRoute: true, undo: undo)
            }
            do { try startDNS(local) } catch {
                // A runtime may hold 127.0.0.11:53 itself (Docker's own resolver): names still
                // resolve through the hosts file.
                logger.warning("no DNS responder in \(path): \(error)")
            }
            sandboxes.save(local)
            return local
        } }
    }

    private func connect(_ name: HostLabel, _ spec: ConnectionSpec) throws -> LocalSandbox {
        try order.run(name.text) {
            try connect(try local(name), to: spec.network, requested: spec.addresses, aliases: spec.aliases, interface: nil)
        }
    }

    /// In the sandbox's order: connects a local sandbox to one more network, as `interface` or
    /// the next `ethN`; `aliases`, when given, replace the sandbox's.
    func connect(_ local: LocalSandbox, to networkName: HostLabel, requested: [IPAddress], aliases: [HostLabel]?,
                 interface: String?) throws -> LocalSandbox {
        var local = local
        let name = local.name
        let network = try self.network(networkName)
        guard !local.attachments.contains(where: { $0.network.name == network.name }) else {
            throw NodeError.conflict("'\(name)' is already connected to '\(network.name)'")
        }
        if let interface, try local.sandbox.hasInterface(named: interface) {
            throw NodeError.conflict("an interface named \(interface) already exists in \(local.sandbox.namespace.path)")
        }
        if let aliases, !aliases.isEmpty { local.aliases = aliases }
        try checkAttachable(network)
        let lease = try currentLease()
        // An earlier attach of this sandbox whose outcome is unknown is settled first.
        try withdrawals.finish(name.text)
        let undo = Rollback(logger: logger)
        return try reconciler.using(network.name) { try undo.perform {
            let claimed = try claim(name: nil, as: name, aliases: local.aliases, on: network, requested: requested, lease: lease, undo: undo)
            try plug(&local, into: network, as: claimed, interface: interface, defaultRoute: false, undo: undo)
            records.update { $0.attach(local.id, to: local.namedNetworks) }
            sandboxes.save(local)
            return local
        } }
    }

    func disconnect(_ name: HostLabel, from networkName: HostLabel) throws -> LocalSandbox {
        try order.run(name.text) { try disconnectInOrder(name, from: networkName) }
    }

    /// `disconnect`, in the sandbox's order.
    func disconnectInOrder(_ name: HostLabel, from networkName: HostLabel) throws -> LocalSandbox {
        do {
            var local = try local(name)
            guard let index = local.attachments.firstIndex(where: { $0.network.name == networkName.text }) else {
                throw NodeError.notFound("'\(name)' is not connected to '\(networkName)'")
            }
            let attachment = local.attachments[index]
            if let published = attachment.published {
                try registry.release(name: nil, endpoints: [published], host: configuration.hostID, lease: membership.lease)
                hosts.detach(local.name.text, from: try attachment.network.label)
            } else {
                releaseLocal(attachment)
            }
            local.attachments.remove(at: index)
            try devices.detachInterface(attachment)
            records.update { $0.attach(local.id, to: local.namedNetworks) }
            sandboxes.save(local)
            return local
        }
    }

    /// `stop` and `rm` (for which a sandbox already gone is fine).
    func stop(_ name: HostLabel, missingIsFine: Bool) throws -> String {
        try order.run(name.text) { try stopInOrder(name, missingIsFine: missingIsFine) }
    }

    /// `stop`, in the sandbox's order.
    func stopInOrder(_ name: HostLabel, missingIsFine: Bool) throws -> String {
        do {
            guard let local = sandboxes.sandbox(name.text) else {
                if missingIsFine { return name.text }
                throw NodeError.notFound("no sandbox '\(name)' on this host")
            }
            // The store first, in one transaction: every host drops the names, then the local
            // pieces go. A store that cannot be reached refuses the stop before anything
            // changed here (a retry finishes it).
            _ = try currentLease()
            try registry.release(name: name, endpoints: local.attachments.compactMap(\.published), host: configuration.hostID,
                                 lease: membership.lease)
            removeLocally(local)
            return name.text
        }
    }

    /// In the sandbox's order, unless a command on it is under way: a sandbox whose namespace or
    /// container went away, withdrawn here
    /// at once (DNS, hosts files, interfaces) and from the store when it answers. Nothing if the
    /// sandbox of that name is not the one found gone (stopped and made again meanwhile).
    func withdrawVanished(_ subject: NamespaceLiveness.Subject, reason: String) {
        guard let name = try? HostLabel(subject.name) else { return }
        // A command on this sandbox under way (perhaps waiting on the store): the next round.
        _ = order.tryRun(name.text) {
            guard let local = sandboxes.sandbox(name.text), local.namespaceInode == subject.inode else { return }
            logger.info("withdrawing a sandbox whose container is gone", metadata: ["sandbox": "\(name)", "reason": "\(reason)"])
            let published = local.attachments.compactMap(\.published)
            reconciler.suppress(published)
            withdrawals.add(name, endpoints: published)
            removeLocally(local)
        }
    }

    /// Everything this host has of `local` goes: its table entry and journal, its responder and
    /// DNS scope, its hosts file, its interfaces (or its namespace, if dnsd made it).
    private func removeLocally(_ local: LocalSandbox) {
        let name = local.name
        sandboxes.forget(name.text)
        dns?.stopServing(local.id)
        records.update { $0.detach(local.id) }
        for attachment in local.attachments {
            if attachment.published == nil {
                releaseLocal(attachment)
            } else if let label = try? attachment.network.label {
                hosts.detach(name.text, from: label)
            }
        }
        hosts.removeSandbox(name.text, deleteFiles: local.ownsFiles)
        if local.adopted {
            // The runtime's namespace stays; only dnsd's interfaces leave it.
            for attachment in local.attachments {
                attempt("removing \(attachment.endpoint.interface) from \(name)") { try devices.detachInterface(attachment) }
            }
        } else {
            attempt("deleting the namespace of \(name)") { try factory.delete(local.sandbox) }
        }
    }

    // MARK: attachments

    /// Makes the interface of a claimed attachment (`state`'s address) in the sandbox, with
    /// whichever driver the network has, adds the sandbox's own hosts line, and records it.
    private func plug(_ local: inout LocalSandbox, into network: NetworkRecord, as state: EndpointState, interface: String? = nil,
                      defaultRoute: Bool, undo: Rollback) throws {
        let label = try network.label
        guard let address = state.primaryAddress else { throw NodeError.failed("claimed endpoint without an address") }
        let sandbox = local.sandbox
        let endpoint = try devices.withNetwork(network) { () throws -> AttachedEndpoint in
            switch network.driver {
            case .overlay:
                return try overlay.attach(sandbox, to: label, address: address,
                                          address6: address.family == .v4 ? state.ipv6.flatMap { IPAddress($0) } : nil,
                                          interface: interface, defaultRoute: defaultRoute)
            case .bridge:
                guard let v4 = address.v4 else { throw NodeError.failed("a bridge network's endpoint without an IPv4 address") }
                return try bridges.attach(sandbox, to: label, address: v4, interface: interface, defaultRoute: defaultRoute)
            }
        }
        let attached = LocalAttachment(network: network, endpoint: endpoint, published: state)
        undo.add("interface \(endpoint.interface) on \(label)") { [self] in try devices.detachInterface(attached) }
        hosts.attach(local.name.text, to: label, ownAddresses: state.addresses)
        local.attachments.append(attached)
    }

    /// The record standing for one of the host's nameless bridges (never stored).
    func localRecord(_ spec: LocalBridgeDriver.BridgeSpec) -> NetworkRecord {
        NetworkRecord(name: spec.name.text, driver: .bridge, subnet: spec.subnet.description,
                      gateway: spec.gateway.description, vni: 0, host: configuration.hostID)
    }

    /// A leg on one of the host's nameless bridges (the default bridge, docker0's peer, or the
    /// gateway bridge, the way out of an overlay): an address from this host's pool, no store.
    private func attachLocal(_ local: inout LocalSandbox, spec: LocalBridgeDriver.BridgeSpec, interface: String? = nil, defaultRoute: Bool,
                             undo: Rollback) throws {
        try bridges.createBridge(spec)
        let address = try localAddresses.allocate(on: spec)
        undo.add("local address \(address)") { [self] in localAddresses.release(address, on: spec) }
        let endpoint = try bridges.attach(local.sandbox, to: spec.name, address: address, interface: interface, defaultRoute: defaultRoute)
        let attached = LocalAttachment(network: localRecord(spec), endpoint: endpoint, published: nil)
        undo.add("interface \(endpoint.interface) on \(spec.name)") { [self] in try devices.detachInterface(attached) }
        local.attachments.append(attached)
    }

    /// Returns a nameless bridge leg's address to its pool.
    private func releaseLocal(_ attachment: LocalAttachment) {
        for spec in [LocalBridgeDriver.BridgeSpec.defaultBridge, .gatewayBridge] where attachment.network.name == spec.name.text {
            if let address = attachment.endpoint.address.v4 { localAddresses.release(address, on: spec) }
        }
    }

    private func startDNS(_ local: LocalSandbox) throws {
        records.update { $0.attach(local.id, to: local.namedNetworks) }
        guard let dns else { return }
        try dns.serve(local.id, in: local.sandbox.namespace)
    }
}
