import Addressing
import ClusterState
import Foundation
import HostsWriter
import OverlayNet
import Resolver
import Store

/// Start-up recovery. The journal (and, for sandboxes it lacks, the store) says which sandboxes
/// this host had; the kernel says which still exist. Survivors are adopted with their
/// interfaces and addresses unchanged, first locally (DNS answers again at once), then their
/// names and addresses are held again under the new lease and republished, also when the old
/// lease lapsed while the daemon was down. Sandboxes that are gone are withdrawn, so nothing
/// stale stays in the cluster.
extension Daemon {
    /// Phase one: the kernel and the local projections, one store listing of each kind (or,
    /// when the store is unreachable, the cached view `known`).
    func recoverLocally(known: StoreCache.Snapshot?) -> [Republication] {
        let me = configuration.hostID
        let journal = sandboxes.journal.load()
        var listed: (endpoints: [EndpointState], networks: [NetworkRecord]) = ([], [])
        if known == nil {
            // Only to find sandboxes the journal lacks: without the listing, the journal alone.
            attempt("listing the store for recovery") { listed = (try storedOwnEndpoints(journal: journal), try registry.networks()) }
        }
        let allEndpoints = known?.endpoints ?? listed.endpoints
        let allNetworks = known?.networks ?? listed.networks
        // Docker's records from before: their networks stay watched until the sweep judged them.
        docker.rememberRecordNetworks(Set(allEndpoints.filter { $0.host == me && $0.runtime == "docker" }.map(\.network)), for: 120)
        // Docker's endpoints are re-adopted from dockerd (`dockerAdopt`), not from here.
        let stored = Dictionary(grouping: allEndpoints.filter { $0.host == me && $0.runtime == nil }, by: \.name)
        let networks = Dictionary(allNetworks.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        var entries = Dictionary(journal.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        for (name, published) in stored where entries[name] == nil {
            // Published by a daemon that kept no journal entry for it: a sandbox `run` made.
            entries[name] = SandboxJournal.Entry(name: name, hostname: name, aliases: published.first?.aliases ?? [],
                                                 netnsPath: factory.namespaces.path(name), hostsFile: nil, adopted: false,
                                                 endpoints: published)
        }
        var recovered: [Republication] = []
        for entry in entries.values.sorted(by: { $0.name < $1.name }) {
            let alsoStored = stored[entry.name] ?? []
            guard let name = try? HostLabel(entry.name), FileManager.default.fileExists(atPath: entry.netnsPath) else {
                logger.info("sandbox gone while the daemon was down; withdrawing it", metadata: ["sandbox": "\(entry.name)"])
                withdraw(entry, alsoStored: alsoStored)
                continue
            }
            do {
                recovered.append(try adoptSurvivor(name, entry, networks: networks, alsoStored: alsoStored))
            } catch {
                logger.warning("could not recover sandbox, withdrawing it", metadata: ["sandbox": "\(entry.name)", "error": "\(error)"])
                withdraw(entry, alsoStored: alsoStored)
            }
        }
        // Every survivor's DNS scope in one table update, then its responder.
        let survivors = recovered.compactMap { sandboxes.sandbox($0.name.text) }
        records.update { table in
            for local in survivors { table.attach(local.id, to: local.namedNetworks) }
        }
        if let dns {
            for local in survivors {
                do { try dns.serve(local.id, in: local.sandbox.namespace) } catch {
                    // A runtime may hold 127.0.0.11:53 itself; names still resolve through the hosts file.
                    logger.warning("no DNS responder", metadata: ["sandbox": "\(local.name)", "error": "\(error)"])
                }
            }
        }
        return recovered
    }

    /// Phase two, and what a new lease needs too: each sandbox's name and addresses held under
    /// `lease`, its endpoints published again: all of this host's (`everything`: after a restart
    /// or a new lease), or those last written under another lease (made while the lease was being
    /// renewed). It runs in the order of every sandbox and Docker endpoint it republishes, each
    /// read again there: one stopped meanwhile is not brought back. One whose name or address
    /// another host claimed meanwhile loses its cluster interfaces (two hosts must never answer
    /// for one name or address) and keeps running without them. A store error is thrown: the
    /// keep-alive tries again. True when done.
    func publishAgain(under lease: LeaseID, everything: Bool) throws -> Bool {
        let names = sandboxes.all().filter { everything || $0.lease != lease }.map(\.name.text)
        let dockerIDs = docker.all().filter { everything || ($0.value.published != nil && $0.value.lease != lease) }.map(\.key)
        guard !names.isEmpty || !dockerIDs.isEmpty else { return true }
        // Docker endpoints in their names' order too (their publishes and withdrawals take it).
        let dockerNames = dockerIDs.compactMap { docker[$0]?.published?.name }
        return try order.run(keys: names + dockerIDs.map(Self.dockerKey) + dockerNames) {
            let locals = names.compactMap { sandboxes.sandbox($0) }.filter { everything || $0.lease != lease }
            let dockerEndpoints = dockerIDs.compactMap { id in docker[id].flatMap { $0.republication.map { (id, $0) } } }
            let republications = locals.map { Republication(name: $0.name, endpoints: $0.attachments.compactMap(\.published)) }
                + dockerEndpoints.map(\.1)
            guard !republications.isEmpty else { return true }
            let refused = try registry.republish(republications, host: configuration.hostID, lease: lease)
            logger.info("sandboxes published", metadata: ["count": "\(republications.count - refused.count)", "refused": "\(refused.count)"])
            for local in locals where refused[local.name] == nil { sandboxes.setLease(lease, of: local.name.text) }
            for (id, republication) in dockerEndpoints where refused[republication.name] == nil { docker[id]?.lease = lease }
            for (name, error) in refused {
                logger.error("a sandbox lost its name or address while this host was away; detaching it from its cluster networks",
                             metadata: ["sandbox": "\(name)", "error": "\(error)"])
                guard var local = sandboxes.sandbox(name.text) else { continue }
                for attachment in local.attachments where attachment.published != nil {
                    if let published = attachment.published { withdrawEndpoint(published) }
                    attempt("removing \(attachment.endpoint.interface) from \(name)") { try devices.detachInterface(attachment) }
                    if let label = try? attachment.network.label { hosts.detach(local.name.text, from: label) }
                }
                attempt("releasing the name \(name)") { try registry.releaseName(name, heldBy: configuration.hostID) }
                local.attachments.removeAll { $0.published != nil }
                local.lease = lease
                records.update { $0.attach(local.id, to: local.namedNetworks) }
                sandboxes.save(local)
            }
            return true
        }
    }

    /// This host's records in the store, listed from the networks it had something on (the
    /// journal's, and the cached view's own endpoints'): a restart costs what this host's networks
    /// hold, not the cluster. Without a cached view (a first start), one listing of every network.
    private func storedOwnEndpoints(journal: [SandboxJournal.Entry]) throws -> [EndpointState] {
        let me = configuration.hostID
        guard let cached = cache.load() else { return try registry.endpoints().endpoints.filter { $0.host == me } }
        let networks = Set(journal.flatMap { $0.endpoints.map(\.network) }).union(cached.endpoints.filter { $0.host == me }.map(\.network))
        return try networks.sorted().flatMap { try registry.endpoints(on: $0).endpoints }.filter { $0.host == me }
    }

    private func withdraw(_ entry: SandboxJournal.Entry, alsoStored: [EndpointState]) {
        // The files dnsd kept for a sandbox it made or a container's (/etc/netns/NAME) go with it.
        if LocalSandbox.ownsFiles(adopted: entry.adopted, containerID: entry.containerID, hostsFile: entry.hostsFile),
           (try? HostLabel(entry.name)) != nil {
            let files = HostsWriter.Files.namedNamespace(entry.name)
            for path in [files.hosts, files.resolvConf] where unlink(path) != 0 && errno != ENOENT {
                logger.warning("could not remove a vanished sandbox's file", metadata: ["file": "\(path)", "errno": "\(errno)"])
            }
            rmdir((files.hosts as NSString).deletingLastPathComponent)
        }
        for endpoint in entry.endpoints + alsoStored { withdrawEndpoint(endpoint) }
        if let name = try? HostLabel(entry.name) {
            attempt("releasing the name \(name)") { try registry.releaseName(name, heldBy: configuration.hostID) }
        }
        sandboxes.journal.remove(entry.name)
    }

    /// Withdraws `endpoint` from the store and releases its address claim (best effort, logged).
    func withdrawEndpoint(_ endpoint: EndpointState) {
        guard let network = try? HostLabel(endpoint.network, what: "network") else { return }
        attempt("withdrawing endpoint \(endpoint.id)") { try registry.withdraw(endpoint: endpoint.id, network: network) }
        for address in endpoint.addresses {
            attempt("releasing \(address) on \(network)") { try registry.releaseAddress(address, on: network, heldBy: configuration.hostID) }
        }
    }

    private func adoptSurvivor(_ name: HostLabel, _ entry: SandboxJournal.Entry, networks: [String: NetworkRecord],
                               alsoStored: [EndpointState]) throws -> Republication {
        let sandbox = entry.adopted ? try factory.adopt(path: entry.netnsPath, name: name.text) : try factory.reopen(name.text)
        var inode: UInt64?
        if entry.adopted {
            // A container's /proc/PID/ns/net may now be another process's namespace.
            inode = try sandbox.namespace.inode()
            if let recorded = entry.namespaceInode, recorded != inode {
                throw NodeError.notFound("\(entry.netnsPath) names another namespace now")
            }
        }
        let interfaces4 = try sandbox.interfaces(.v4)
        // An interface is found by the endpoint's primary address: IPv4, or IPv6 on an IPv6-only
        // network (the IPv6 dump only for a sandbox with such an endpoint).
        let interfaces = interfaces4 + (entry.endpoints.contains { $0.ipv4.isEmpty } ? try sandbox.interfaces(.v6) : [])
        let hostname = (try? HostLabel(entry.hostname)) ?? name
        var local = LocalSandbox(name: name, hostname: hostname, aliases: entry.aliases.compactMap { try? HostLabel($0) },
                                 sandbox: sandbox, id: sandboxes.nextSandboxID(), adopted: entry.adopted, hostsFile: entry.hostsFile,
                                 containerID: entry.containerID, namespaceInode: inode)
        try hosts.addSandbox(name.text, files: local.files, hostname: hostname, resuming: true)
        var kept: [EndpointState] = []
        for endpoint in entry.endpoints {
            guard let network = networks[endpoint.network], let label = try? network.label, let address = endpoint.primaryAddress,
                  let interface = interfaces.first(where: { $0.address == address }),
                  // Addresses the network (made again meanwhile?) still has.
                  (try? endpoint.addresses.forEach { try ClusterRegistry.validate($0, on: network) }) != nil
            else {
                // Its network was removed, or its interface went, while the daemon was down.
                withdrawEndpoint(endpoint)
                continue
            }
            try devices.withNetwork(network) {}
            hosts.attach(name.text, to: label, ownAddresses: endpoint.addresses)
            var attached = Self.endpoint(label, name, interface, portPrefix: network.driver == .overlay ? "ve" : "vb")
            if let address6 = endpoint.ipv6.flatMap({ IPAddress($0) }), address6 != address, network.driver == .overlay {
                // Its IPv6 address on the same interface, put back if it went meanwhile.
                attempt("keeping \(address6) on \(interface.name) of \(name)") {
                    try overlay.ensureIPv6(address6, on: interface.name, in: sandbox, network: label)
                }
                attached.address6 = address6
            }
            local.attachments.append(LocalAttachment(network: network, endpoint: attached, published: endpoint))
            kept.append(endpoint)
        }
        for stale in alsoStored where !kept.contains(where: { $0.id == stale.id }) { withdrawEndpoint(stale) }
        // The nameless local bridges: their addresses are taken again in the local pools.
        for interface in interfaces4 {
            guard let address = interface.address.v4 else { continue }
            for spec in [LocalBridgeDriver.BridgeSpec.defaultBridge, .gatewayBridge] where spec.subnet.contains(address) {
                try bridges.createBridge(spec)
                attempt("taking \(address) of \(name) again on \(spec.name)") {
                    try localAddresses.reserve(address, on: spec)
                }
                local.attachments.append(LocalAttachment(
                    network: localRecord(spec), endpoint: Self.endpoint(spec.name, name, interface, portPrefix: "vb"), published: nil))
            }
        }
        sandboxes.save(local)
        return Republication(name: name, endpoints: kept)
    }

    /// The attachment as the drivers made it, read back from an interface of the sandbox.
    private static func endpoint(_ network: HostLabel, _ sandbox: HostLabel,
                                 _ interface: (name: String, address: IPAddress, mac: MACAddress?), portPrefix: String) -> AttachedEndpoint {
        AttachedEndpoint(network: network, sandbox: sandbox.text, interface: interface.name, address: interface.address,
                         mac: interface.mac ?? MACAddress(derivedFrom: interface.address),
                         bridgePort: AttachedEndpoint.bridgePortName(portPrefix, for: interface.address))
    }
}
