import Addressing
import ClusterState
import Foundation
import HostsWriter
import OverlayNet
import Resolver
import Store

/// The control API's commands. Each validates first, writes the store first, and undoes its
/// own half-done steps when a later one fails, so a refusal changes nothing.
extension Daemon: NetworkTeardown {
    /// Carries out `command` under the command lock. Refusals are thrown as `APIError`s: the
    /// HTTP status and the one line the CLI prints.
    public func perform(_ command: Command) throws -> CommandResult {
        do {
            return try lock.withLock {
                if stopping { throw APIError.unavailable("the daemon is stopping") }
                if !connected, command.changes {
                    throw APIError.unavailable("store unavailable: this daemon started without it and is still trying to reach it")
                }
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
                case .listSandboxes: return .sandboxes(sandboxes.values.sorted { $0.name < $1.name }.map(info))
                case .inspectSandbox(let name): return .sandbox(info(try local(name)))
                case .dnsView(let name): return .dnsView(dnsView(try local(name)))
                case .attachContainer(let spec): return .containerAttachment(try attachContainer(spec))
                case .detachContainer(let id, let network):
                    try detachContainer(id, network: network)
                    return .removed(Removed(name: id))
                case .checkContainer(let id, let network): return .containerAttachment(try checkContainer(id, network: network))
                }
            }
        } catch {
            throw Self.apiError(error)
        }
    }

    /// The HTTP status of a refusal.
    public static func apiError(_ error: Error) -> APIError {
        switch error {
        case let error as APIError: return error
        case let error as ClusterError:
            switch error {
            case .noSuchNetwork: return .notFound(error.description)
            case .networkExists, .networkInUse, .addressesInUse, .nameTaken, .addressTaken, .networkChanged:
                return .conflict(error.description)
            default: return .badRequest(error.description)
            }
        case is StoreError, is ContendedKey: return .unavailable("\(error)")
        case is HostLabel.Invalid, is IPv4Subnet.ParseError: return .badRequest("\(error)")
        default: return APIError(status: 500, message: "\(error)")
        }
    }

    func local(_ text: String) throws -> LocalSandbox {
        let name = try label(text, "name")
        guard let local = sandboxes[name.text] else { throw APIError.notFound("no sandbox '\(name)' on this host") }
        return local
    }

    /// What the API says of a local sandbox.
    func info(_ local: LocalSandbox) -> SandboxInfo {
        SandboxInfo(name: local.name.text, hostname: local.hostname.text, aliases: local.aliases.map(\.text),
                    netns: local.sandbox.namespace.path, hostsFile: local.files.hosts, resolvConf: local.files.resolvConf,
                    adopted: local.adopted, attachments: local.attachments.map { attachment in
                        SandboxInfo.Attachment(network: attachment.network.name, driver: attachment.network.driver.rawValue,
                                               interface: attachment.endpoint.interface, address: attachment.endpoint.address.description,
                                               mac: attachment.endpoint.mac.description, named: attachment.published != nil)
                    })
    }

    /// The names `local`'s resolver offers, network by network.
    private func dnsView(_ local: LocalSandbox) -> DNSView {
        let endpoints = reconciler.known().endpoints
        let networks = local.namedNetworks.map { label -> DNSView.Network in
            let record = reconciler.network(named: label.text)
            let names = endpoints.filter { $0.network == label.text }.sorted { $0.name < $1.name }.map {
                DNSView.Name(name: $0.name, aliases: $0.aliases, address: $0.ipv4, host: $0.host)
            }
            return DNSView.Network(name: label.text, subnet: record?.subnet ?? "", names: names)
        }
        return DNSView(sandbox: local.name.text, resolver: dns == nil ? "hosts file only (hosts mode)" : "127.0.0.11:53", networks: networks)
    }

    func label(_ text: String?, _ what: String) throws -> HostLabel {
        guard let text else { throw APIError.badRequest("missing \(what)") }
        return try HostLabel(text, what: what)
    }

    /// `--ip`, if given.
    func requestedAddress(_ ip: String?) throws -> IPv4Address? {
        try ip.map { text in
            guard let address = IPv4Address(text) else { throw APIError.badRequest("invalid --ip '\(text)'") }
            return address
        }
    }

    // MARK: networks

    private func networkCreate(_ request: NetworkCreation) throws -> NetworkRecord {
        let name = try label(request.name, "network")
        guard name.text != "bridge", name.text != "gwbridge" else { throw APIError.badRequest("network name '\(name)' is reserved") }
        let subnet = try IPv4Subnet(parsing: request.subnet)
        var gateway: IPv4Address?
        if let text = request.gateway {
            guard let parsed = IPv4Address(text) else { throw APIError.badRequest("invalid --gateway '\(text)': expected an IPv4 address") }
            gateway = parsed
        }
        let driver = NetworkRecord.Driver(rawValue: request.driver ?? "overlay")
        guard let driver else { throw APIError.badRequest("invalid --driver '\(request.driver ?? "")': expected overlay or bridge") }
        var reserved = LocalBridgeDriver.BridgeSpec.reservedSubnets.map { (subnet: $0, what: "the built-in bridge pool") }
        reserved += try bridges.hostRoutes().map { (subnet: $0, what: "a route of host \(configuration.hostID)") }
        let record = try registry.createNetwork(name: name, driver: driver, subnet: subnet, gateway: gateway,
                                                host: configuration.hostID, reserved: reserved)
        return record
    }

    private func networkInspect(_ name: String) throws -> NetworkDetail {
        let record = try registry.network(try label(name, "network"))
        let endpoints = try registry.endpoints().endpoints.filter { $0.network == record.name }.sorted { $0.id < $1.id }
        return NetworkDetail(network: record, endpoints: endpoints)
    }

    /// Removes the network from the store (every host then removes its devices, from the
    /// watch); this host's go before the command returns.
    private func networkRemove(_ text: String) throws -> String {
        let name = try label(text, "network")
        let record = try registry.network(name)
        try registry.deleteNetwork(name)
        try removeDevices(of: record)
        return name.text
    }

    // MARK: sandboxes

    private func run(_ request: SandboxCreation) throws -> LocalSandbox {
        let name = try label(request.name, "name")
        let hostname = try request.hostname.map { try HostLabel($0, what: "hostname") } ?? name
        let aliases = try (request.aliases ?? []).map { try HostLabel($0, what: "alias") }
        let network = try request.network.map { try registry.network(try label($0, "network")) }
        let requested = try requestedAddress(request.ip)
        // The cluster first (names are unique there), then this host's namespaces.
        try registry.claimName(name, host: configuration.hostID, lease: lease)
        let undo = Rollback(logger: logger)
        undo.add("claim of name \(name)") { [self] in try registry.releaseName(name, heldBy: configuration.hostID) }
        return try undo.perform {
            guard sandboxes[name.text] == nil, !factory.namespaces.exists(name.text) else {
                throw APIError.conflict("a network namespace named '\(name)' already exists on this host")
            }
            let sandbox = try factory.create(name.text)
            undo.add("namespace \(name)") { [self] in try factory.delete(sandbox) }
            var local = LocalSandbox(name: name, hostname: hostname, aliases: aliases, sandbox: sandbox, id: nextSandboxID(), adopted: false)
            try hosts.addSandbox(name.text, files: .namedNamespace(name.text), hostname: hostname)
            undo.add("hosts file of \(name)") { [self] in hosts.removeSandbox(name.text, deleteFiles: true) }
            if let network {
                // run --net=NET: eth0 on NET, eth1 on the gateway bridge with the default route.
                try attach(&local, to: network, requested: requested, defaultRoute: network.driver == .bridge, undo: undo)
                if network.driver == .overlay { try attachGatewayBridge(&local, undo: undo) }
            } else {
                try attachDefaultBridge(&local, undo: undo)
            }
            try startDNS(local)
            remember(local)
            return local
        }
    }

    /// `dnsd attach`: a namespace made by a container runtime joins a network.
    private func adopt(_ request: SandboxAdoption) throws -> LocalSandbox {
        try adopt(name: try label(request.name, "name"), path: request.netns, network: request.network, interface: nil,
                  requested: nil, aliases: request.aliases, hostsFile: request.hostsFile, containerID: nil, egressInterface: nil)
    }

    /// Adopts a namespace a runtime made: dnsd adds the interface (`interface`, or the next
    /// `ethN`) and the names, serves DNS at 127.0.0.11 if the address is free there, keeps the
    /// runtime's hosts file (or /etc/netns/NAME/hosts), and never deletes the namespace. With
    /// `egressInterface`, an overlay attachment also gets a leg on the gateway bridge under that
    /// name, with the default route (as `run --net` gives eth1): the way out of the overlay.
    func adopt(name: HostLabel, path: String, network networkName: String, interface: String?, requested: IPv4Address?,
               aliases: [String]?, hostsFile: String?, containerID: String?, egressInterface: String?) throws -> LocalSandbox {
        guard FileManager.default.fileExists(atPath: path) else { throw APIError.notFound("no network namespace at \(path)") }
        let network = try registry.network(try label(networkName, "network"))
        let aliases = try (aliases ?? []).map { try HostLabel($0, what: "alias") }
        guard sandboxes[name.text] == nil else { throw APIError.conflict("'\(name)' is already managed on this host") }
        let sandbox = try factory.adopt(path: path, name: name.text)
        let inode = try sandbox.namespace.inode()
        if let other = sandboxes.values.first(where: { $0.namespaceInode == inode }) {
            throw APIError.conflict("the namespace at \(path) is already managed on this host as '\(other.name)'")
        }
        if let interface, try sandbox.hasInterface(named: interface) {
            throw APIError.conflict("an interface named \(interface) already exists in \(path)")
        }
        try registry.claimName(name, host: configuration.hostID, lease: lease)
        let undo = Rollback(logger: logger)
        undo.add("claim of name \(name)") { [self] in try registry.releaseName(name, heldBy: configuration.hostID) }
        return try undo.perform {
            var local = LocalSandbox(name: name, hostname: name, aliases: aliases, sandbox: sandbox, id: nextSandboxID(), adopted: true,
                                     hostsFile: hostsFile, containerID: containerID, namespaceInode: inode)
            try hosts.addSandbox(name.text, files: local.files, hostname: name)
            let ownsFiles = local.ownsFiles
            undo.add("hosts file of \(name)") { [self] in hosts.removeSandbox(name.text, deleteFiles: ownsFiles) }
            try attach(&local, to: network, requested: requested, interface: interface, defaultRoute: false, undo: undo)
            if let egressInterface, network.driver == .overlay {
                if try sandbox.hasInterface(named: egressInterface) {
                    throw APIError.conflict("an interface named \(egressInterface) already exists in \(path)")
                }
                try attachGatewayBridge(&local, interface: egressInterface, undo: undo)
            }
            do { try startDNS(local) } catch {
                // A runtime may hold 127.0.0.11:53 itself (Docker's own resolver): names still
                // resolve through the hosts file.
                logger.warning("no DNS responder in \(path): \(error)")
            }
            remember(local)
            return local
        }
    }

    private func connect(_ sandbox: String, _ request: NetworkConnection) throws -> LocalSandbox {
        try connect(try local(sandbox), to: request.network, requested: try requestedAddress(request.ip), aliases: request.aliases,
                    interface: nil)
    }

    /// Connects a local sandbox to one more network, as `interface` or the next `ethN`.
    func connect(_ local: LocalSandbox, to networkName: String, requested: IPv4Address?, aliases: [String]?,
                 interface: String?) throws -> LocalSandbox {
        var local = local
        let name = local.name
        let network = try registry.network(try label(networkName, "network"))
        guard !local.attachments.contains(where: { $0.network.name == network.name }) else {
            throw APIError.conflict("'\(name)' is already connected to '\(network.name)'")
        }
        if let interface, try local.sandbox.hasInterface(named: interface) {
            throw APIError.conflict("an interface named \(interface) already exists in \(local.sandbox.namespace.path)")
        }
        if let aliases, !aliases.isEmpty { local.aliases = try aliases.map { try HostLabel($0, what: "alias") } }
        let undo = Rollback(logger: logger)
        return try undo.perform {
            try attach(&local, to: network, requested: requested, interface: interface, defaultRoute: false, undo: undo)
            records.update { $0.attach(local.id, to: local.namedNetworks) }
            remember(local)
            return local
        }
    }

    func disconnect(_ sandbox: String, from network: String) throws -> LocalSandbox {
        var local = try local(sandbox)
        let name = local.name
        let networkName = try label(network, "network")
        guard let index = local.attachments.firstIndex(where: { $0.network.name == networkName.text }) else {
            throw APIError.notFound("'\(name)' is not connected to '\(networkName)'")
        }
        let attachment = local.attachments.remove(at: index)
        try release(attachment, of: local)
        records.update { $0.attach(local.id, to: local.namedNetworks) }
        remember(local)
        return local
    }

    /// `stop` and `rm` (for which a sandbox already gone is fine).
    func stop(_ text: String, missingIsFine: Bool) throws -> String {
        let name = try label(text, "name")
        guard let local = sandboxes[name.text] else {
            if missingIsFine { return name.text }
            throw APIError.notFound("no sandbox '\(name)' on this host")
        }
        // The store first: every host drops the names, then the local pieces go. A store that
        // cannot be reached refuses the stop before anything changed here (a retry finishes it).
        for attachment in local.attachments where attachment.published != nil { try release(attachment, of: local, deleteLink: false) }
        try registry.releaseName(name, heldBy: configuration.hostID)
        for attachment in local.attachments where attachment.published == nil {
            attempt("releasing \(attachment.endpoint.address) of \(name)") { try release(attachment, of: local, deleteLink: false) }
        }
        forget(name.text)
        dns?.stopServing(local.id)
        records.update { $0.detach(local.id) }
        hosts.removeSandbox(name.text, deleteFiles: local.ownsFiles)
        if local.adopted {
            // The runtime's namespace stays; only dnsd's interfaces leave it.
            for attachment in local.attachments {
                attempt("removing \(attachment.endpoint.interface) from \(name)") { try detachInterface(attachment) }
            }
        } else {
            try factory.delete(local.sandbox)
        }
        return name.text
    }

    // MARK: attachments

    /// Attaches to a cluster network: address from the store, interface here, endpoint
    /// published (under the lease), own hosts line, DNS scope.
    private func attach(_ local: inout LocalSandbox, to network: NetworkRecord, requested: IPv4Address?,
                        interface: String? = nil, defaultRoute: Bool, undo: Rollback) throws {
        let label = try network.label
        if network.driver == .bridge, network.host != configuration.hostID {
            throw APIError.badRequest("network '\(network.name)' is a bridge network of host \(network.host ?? "?")")
        }
        let address = try registry.allocateAddress(on: network, requested: requested, host: configuration.hostID, lease: lease)
        undo.add("claim of \(address) on \(label)") { [self] in try registry.releaseAddress(address, on: label, heldBy: configuration.hostID) }
        try ensureNetwork(network)
        let endpoint: AttachedEndpoint
        switch network.driver {
        case .overlay:
            endpoint = try overlay.attach(local.sandbox, to: label, address: address, interface: interface, defaultRoute: defaultRoute)
        case .bridge:
            endpoint = try bridges.attach(local.sandbox, to: label, address: address, interface: interface, defaultRoute: defaultRoute)
        }
        let attached = LocalAttachment(network: network, endpoint: endpoint, published: nil)
        undo.add("interface \(endpoint.interface) on \(label)") { [self] in try detachInterface(attached) }
        let state = EndpointState(id: "\(configuration.hostID)-\(local.name.text)", network: network.name, name: local.name.text,
                                  aliases: local.aliases.map(\.text), ipv4: address.description, mac: endpoint.mac.description,
                                  host: configuration.hostID, vtep: configuration.advertise.description)
        try registry.publish(state, lease: lease)
        undo.add("endpoint \(state.id)") { [self] in try registry.withdraw(endpoint: state.id, network: label) }
        hosts.attach(local.name.text, to: label, ownAddresses: [address])
        local.attachments.append(LocalAttachment(network: network, endpoint: endpoint, published: state))
    }

    /// Makes `network` exist on this host: an overlay's hidden namespace (with the peers already
    /// known on other hosts), or a bridge network's bridge. Adopts what is already there; an
    /// overlay left from an earlier network of the same name (removed and re-created with
    /// another subnet or VNI) is replaced when no sandbox here uses it.
    func ensureNetwork(_ network: NetworkRecord) throws {
        let label = try network.label
        switch network.driver {
        case .overlay:
            let spec = try overlaySpec(network)
            if let existing = overlay.spec(of: label) {
                if existing == spec { return }
                guard !isInUse(network.name) else {
                    throw APIError.badRequest("network '\(network.name)' changed in the store while sandboxes here still use its old form")
                }
                try overlay.deleteNetwork(label)
            }
            try overlay.createNetwork(spec)
            reconciler.replayPeers(on: label)
        case .bridge:
            try bridges.createBridge(bridgeSpec(network))
        }
    }

    func overlaySpec(_ network: NetworkRecord) throws -> OverlaySpec {
        OverlaySpec(name: try network.label, subnet: try network.parsedSubnet,
                    gateway: network.gatewayAddress ?? IPv4Address(0), vni: network.vni)
    }

    /// Whether a local sandbox is attached to the network named `name`.
    func isInUse(_ name: String) -> Bool {
        sandboxes.values.contains { $0.attachments.contains { $0.network.name == name } }
    }

    /// Under `lock`: removes this host's devices of `network` (an overlay's namespace, a bridge
    /// network's bridge and NAT rule) unless a local sandbox still uses them.
    func removeDevices(of network: NetworkRecord) throws {
        let label = try network.label
        guard !isInUse(network.name) else {
            logger.warning("network left the store but a sandbox here still uses it; its devices stay", metadata: ["network": "\(network.name)"])
            return
        }
        switch network.driver {
        case .overlay:
            if overlay.hasNetwork(label) || overlay.hasNamespace(label) { try overlay.deleteNetwork(label) }
        case .bridge:
            if network.host == configuration.hostID { try bridges.deleteBridge(bridgeSpec(network)) }
        }
    }

    /// A network that left the store (or was re-created differently): its devices here go,
    /// unless the store now has an identical network of that name.
    public func networkLeft(_ network: NetworkRecord) {
        lock.withLock {
            if let current = reconciler.network(named: network.name), current == network { return }
            do { try removeDevices(of: network) } catch {
                logger.warning("removing a network's devices failed", metadata: ["network": "\(network.name)", "error": "\(error)"])
            }
        }
    }

    /// Removes an attachment's veth, with whichever driver made it.
    func detachInterface(_ attachment: LocalAttachment) throws {
        if attachment.network.driver == .overlay { try overlay.detach(attachment.endpoint) } else {
            try bridges.detach(attachment.endpoint)
        }
    }

    /// The record standing for one of the host's nameless bridges (never stored).
    func localRecord(_ spec: LocalBridgeDriver.BridgeSpec) -> NetworkRecord {
        NetworkRecord(name: spec.name.text, driver: .bridge, subnet: spec.subnet.description,
                      gateway: spec.gateway.description, vni: 0, host: configuration.hostID)
    }

    func bridgeSpec(_ network: NetworkRecord) -> LocalBridgeDriver.BridgeSpec {
        LocalBridgeDriver.BridgeSpec(name: (try? network.label) ?? LocalBridgeDriver.BridgeSpec.defaultBridge.name,
                                     device: network.vni != 0 ? LocalBridgeDriver.BridgeSpec.device(forNetworkNumber: network.vni)
                                         : LocalBridgeDriver.BridgeSpec.device(forUnnumberedNetwork: network.name),
                                     subnet: (try? network.parsedSubnet) ?? LocalBridgeDriver.BridgeSpec.defaultBridge.subnet,
                                     gateway: network.gatewayAddress ?? IPv4Address(0))
    }

    /// The built-in default bridge: nameless, as docker0 is (no records, no published endpoint).
    private func attachDefaultBridge(_ local: inout LocalSandbox, undo: Rollback) throws {
        try attachLocal(&local, spec: .defaultBridge, pool: \.defaultPool, defaultRoute: true, undo: undo)
    }

    private func attachGatewayBridge(_ local: inout LocalSandbox, interface: String? = nil, undo: Rollback) throws {
        try attachLocal(&local, spec: .gatewayBridge, pool: \.gatewayPool, interface: interface, defaultRoute: true, undo: undo)
    }

    private func attachLocal(_ local: inout LocalSandbox, spec: LocalBridgeDriver.BridgeSpec,
                             pool: ReferenceWritableKeyPath<Daemon, AddressPool>, interface: String? = nil, defaultRoute: Bool,
                             undo: Rollback) throws {
        try bridges.createBridge(spec)
        let address = try self[keyPath: pool].allocate()
        undo.add("local address \(address)") { [self] in self[keyPath: pool].release(address) }
        let endpoint = try bridges.attach(local.sandbox, to: spec.name, address: address, interface: interface, defaultRoute: defaultRoute)
        let attached = LocalAttachment(network: localRecord(spec), endpoint: endpoint, published: nil)
        undo.add("interface \(endpoint.interface) on \(spec.name)") { [self] in try detachInterface(attached) }
        local.attachments.append(LocalAttachment(network: localRecord(spec), endpoint: endpoint, published: nil))
    }

    private func startDNS(_ local: LocalSandbox) throws {
        records.update { $0.attach(local.id, to: local.namedNetworks) }
        guard let dns else { return }
        try dns.serve(local.id, in: local.sandbox.namespace)
    }

    /// Withdraws an attachment: store first, then the interface (unless the whole namespace is
    /// about to go, which takes its interfaces with it), then the address.
    private func release(_ attachment: LocalAttachment, of local: LocalSandbox, deleteLink: Bool = true) throws {
        let label = try attachment.network.label
        if let published = attachment.published {
            try registry.withdraw(endpoint: published.id, network: label)
            try registry.releaseAddress(attachment.endpoint.address, on: label, heldBy: configuration.hostID)
            hosts.detach(local.name.text, from: label)
        } else if attachment.network.name == LocalBridgeDriver.BridgeSpec.defaultBridge.name.text {
            defaultPool.release(attachment.endpoint.address)
        } else {
            gatewayPool.release(attachment.endpoint.address)
        }
        if deleteLink { try detachInterface(attachment) }
    }
}
