import Addressing
import ClusterState
import Foundation
import HostsWriter
import OverlayNet
import Resolver

/// Start-up recovery: the store says which endpoints this host had; the kernel says which of
/// their sandboxes still exist. Survivors are adopted with their interfaces and addresses
/// unchanged and republished under the new lease; endpoints whose sandbox is gone are
/// withdrawn (with their addresses and names), so nothing stale stays in the cluster.
extension Daemon {
    func recover() {
        guard let (endpoints, _) = try? registry.endpoints() else { return }
        let mine = Dictionary(grouping: endpoints.filter { $0.host == configuration.hostID }, by: \.name)
        for (name, published) in mine.sorted(by: { $0.key < $1.key }) {
            guard let label = try? HostLabel(name), factory.namespaces.exists(name) else {
                withdrawOrphans(published)
                continue
            }
            do {
                try adoptSurvivor(label, published: published)
                logger.info("recovered sandbox", metadata: ["sandbox": "\(name)", "networks": "\(published.map(\.network))"])
            } catch {
                logger.warning("could not recover sandbox, withdrawing it", metadata: ["sandbox": "\(name)", "error": "\(error)"])
                withdrawOrphans(published)
            }
        }
    }

    private func withdrawOrphans(_ published: [EndpointState]) {
        // The files dnsd kept for a sandbox it made (/etc/netns/NAME) go with it.
        if let name = published.first?.name, (try? HostLabel(name)) != nil {
            let files = HostsWriter.Files.namedNamespace(name)
            try? FileManager.default.removeItem(atPath: files.hosts)
            try? FileManager.default.removeItem(atPath: files.resolvConf)
            rmdir((files.hosts as NSString).deletingLastPathComponent)
        }
        for endpoint in published {
            guard let network = try? HostLabel(endpoint.network, what: "network") else { continue }
            try? registry.withdraw(endpoint: endpoint.id, network: network)
            if let address = IPv4Address(endpoint.ipv4) { try? registry.releaseAddress(address, on: network) }
            if let name = try? HostLabel(endpoint.name) { try? registry.releaseName(name) }
        }
    }

    private func adoptSurvivor(_ name: HostLabel, published: [EndpointState]) throws {
        let sandbox = try factory.reopen(name.text)
        let interfaces = try sandbox.interfaces()
        let aliases = (published.first?.aliases ?? []).compactMap { try? HostLabel($0) }
        var local = LocalSandbox(name: name, hostname: name, aliases: aliases, sandbox: sandbox, id: nextSandboxID(), adopted: false)
        // The name and addresses are kept under the new lease (the old one may still hold them).
        try registry.holdName(name, host: configuration.hostID, lease: lease)
        try hosts.addSandbox(name.text, files: .namedNamespace(name.text), hostname: name)
        for endpoint in published {
            let network = try registry.network(try HostLabel(endpoint.network, what: "network"))
            let label = try network.label
            guard let address = IPv4Address(endpoint.ipv4), let interface = interfaces.first(where: { $0.address == address }) else {
                try? registry.withdraw(endpoint: endpoint.id, network: label)
                if let address = IPv4Address(endpoint.ipv4) { try? registry.releaseAddress(address, on: label) }
                continue
            }
            try ensureNetwork(network)
            try registry.holdAddress(address, on: label, host: configuration.hostID, lease: lease)
            try registry.publish(endpoint, lease: lease)
            hosts.attach(name.text, to: label, ownAddresses: [address])
            local.attachments.append(LocalAttachment(
                network: network, endpoint: Self.endpoint(label, name, interface, portPrefix: network.driver == .overlay ? "ve" : "vb"),
                published: endpoint))
        }
        // The nameless local bridges: their addresses are taken again in the local pools.
        for interface in interfaces {
            for (spec, pool) in [(LocalBridgeDriver.BridgeSpec.defaultBridge, \Daemon.defaultPool), (.gatewayBridge, \Daemon.gatewayPool)]
                where spec.subnet.contains(interface.address) {
                try bridges.createBridge(spec)
                try? self[keyPath: pool].reserve(interface.address)
                local.attachments.append(LocalAttachment(
                    network: localRecord(spec), endpoint: Self.endpoint(spec.name, name, interface, portPrefix: "vb"), published: nil))
            }
        }
        records.update { $0.attach(local.id, to: local.namedNetworks) }
        if let dns { try dns.serve(local.id, in: sandbox.namespace) }
        sandboxes[name.text] = local
    }

    /// The attachment as the drivers made it, read back from an interface of the sandbox.
    private static func endpoint(_ network: HostLabel, _ sandbox: HostLabel,
                                 _ interface: (name: String, address: IPv4Address, mac: MACAddress?), portPrefix: String) -> AttachedEndpoint {
        AttachedEndpoint(network: network, sandbox: sandbox.text, interface: interface.name, address: interface.address,
                         mac: interface.mac ?? MACAddress(derivedFrom: interface.address),
                         bridgePort: AttachedEndpoint.bridgePortName(portPrefix, for: interface.address))
    }
}
