import Addressing
import ClusterState
import Foundation
import HostsWriter
import Netns
import OverlayNet

/// Containers that a runtime made (CNI): named by the runtime's container id, attached one
/// network at a time. The first attachment adopts the container's namespace as a sandbox, later
/// ones connect it; detaching the last one withdraws the sandbox. Detaching what is already gone
/// succeeds, as CNI's `DEL` must.
extension Daemon {
    func attachContainer(_ spec: ContainerSpec) throws -> ContainerAttachment {
        let id = spec.id, network = spec.network
        let name = sandboxes.container(id.text)?.name ?? spec.name
        return try order.run(name.text) {
            let local: LocalSandbox
            if let existing = sandboxes.container(id.text) {
                guard try existing.sandbox.namespace.inode() == (try NamespaceIdentity.inode(atPath: spec.netns)) else {
                    throw NodeError.conflict("container \(id) is already attached here with another namespace (\(existing.sandbox.namespace.path))")
                }
                local = try connect(existing, to: network, requested: spec.addresses, aliases: spec.aliases, interface: spec.interface)
            } else {
                local = try adopt(name: name, path: spec.netns, network: network, interface: spec.interface, requested: spec.addresses,
                                  aliases: spec.aliases ?? [], hostsFile: spec.hostsFile, containerID: id,
                                  egressInterface: Self.egressInterface)
            }
            guard let attachment = try containerAttachment(local, network: network.text) else {
                throw NodeError.failed("container \(id) attached but its attachment to \(network) is not recorded")
            }
            return attachment
        }
    }

    /// Detaches the container from `network`; the last network withdraws the sandbox (names
    /// everywhere, interfaces here). Already gone is fine.
    func detachContainer(_ id: ContainerID, network: HostLabel) throws {
        guard let name = sandboxes.container(id.text)?.name else { return }
        try order.run(name.text) {
            // Read again in the order: two DELs at once must not both take it for a disconnect.
            guard let local = sandboxes.container(id.text) else { return }
            let published = local.attachments.filter { $0.published != nil }
            guard published.contains(where: { $0.network.name == network.text }) else { return }
            if published.count == 1 {
                _ = try stopInOrder(local.name, missingIsFine: true)
            } else {
                _ = try disconnectInOrder(local.name, from: network)
            }
        }
    }

    /// The container's attachment to `network` read back from the kernel: refused when the
    /// interface or its address is gone. A read: it waits for no command and no store.
    func checkContainer(_ id: ContainerID, network: HostLabel) throws -> ContainerAttachment {
        guard let local = sandboxes.container(id.text), let attachment = try containerAttachment(local, network: network.text) else {
            throw NodeError.notFound("container \(id) is not attached to '\(network)' on this host")
        }
        let interfaces = try local.sandbox.interfaces(.v4) + (attachment.address6 != nil ? try local.sandbox.interfaces(.v6) : [])
        for address in [attachment.address, attachment.address6].compactMap({ $0 }) where !address.isEmpty {
            guard interfaces.contains(where: { $0.name == attachment.interface && "\($0.address)" == address.split(separator: "/").first.map(String.init) })
            else {
                throw NodeError.conflict("container \(id): interface \(attachment.interface) no longer has \(address)")
            }
        }
        return attachment
    }

    /// The container's leg on the gateway bridge (its default route out), beside the runtime's
    /// interfaces; named apart from their `ethN`, which a runtime may still ask for.
    static let egressInterface = "dnsgw0"

    private func containerAttachment(_ local: LocalSandbox, network: String) throws -> ContainerAttachment? {
        guard let attachment = local.attachments.first(where: { $0.network.name == network && $0.published != nil }) else { return nil }
        // Each address with its prefix length: IPv4 (none on an IPv6-only network) and IPv6.
        var withPrefix: [IPFamily: String] = [:]
        for family in try attachment.network.families {
            let address = [attachment.endpoint.address, attachment.endpoint.address6].compactMap { $0 }.first { $0.family == family.subnet.family }
            if let address { withPrefix[family.subnet.family] = "\(address)/\(family.subnet.prefixLength)" }
        }
        let resolver: (nameservers: [String], search: [String]) = dns != nil
            ? (["127.0.0.11"], local.namedNetworks.map(\.text))
            : (configuration.hostResolvConf.nameservers.filter { !$0.hasPrefix("127.") }, configuration.hostResolvConf.search)
        // The egress leg belongs to the container's first network's result (one default route).
        let isFirst = local.attachments.first { $0.published != nil }?.network.name == network
        let leg = isFirst ? local.attachments.first { $0.published == nil && $0.endpoint.interface == Self.egressInterface } : nil
        let egress = leg.map { leg in
            let spec = LocalBridgeDriver.BridgeSpec.gatewayBridge
            return ContainerAttachment.Egress(interface: leg.endpoint.interface, mac: leg.endpoint.mac.description,
                                              address: "\(leg.endpoint.address)/\(spec.subnet.prefixLength)", gateway: spec.gateway.description)
        }
        return ContainerAttachment(containerID: local.containerID ?? "", name: local.name.text, network: network,
                                   netns: local.sandbox.namespace.path, interface: attachment.endpoint.interface,
                                   mac: attachment.endpoint.mac.description,
                                   address: withPrefix[.v4] ?? "", address6: withPrefix[.v6],
                                   gateway: attachment.network.gatewayAddress?.description ?? "",
                                   nameservers: resolver.nameservers, search: resolver.search, egress: egress,
                                   defaultRoute: isFirst && attachment.network.driver == .bridge)
    }
}
