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
    func attachContainer(_ request: ContainerAttach) throws -> ContainerAttachment {
        let id = try Self.containerID(request.containerID)
        let network = try label(request.network, "network")
        guard Self.isInterfaceName(request.interface) else {
            throw APIError.badRequest("invalid interface name '\(request.interface)': 1-15 characters, no '/', ':' or spaces")
        }
        let requested = try requestedAddress(request.ip)
        let name = try sandboxes.container(id)?.name ?? label(request.name ?? id, "name")
        return try order.run(name.text) {
            let local: LocalSandbox
            if let existing = sandboxes.container(id) {
                guard try existing.sandbox.namespace.inode() == (try NamespaceIdentity.inode(atPath: request.netns)) else {
                    throw APIError.conflict("container \(id) is already attached here with another namespace (\(existing.sandbox.namespace.path))")
                }
                local = try connect(existing, to: network.text, requested: requested, aliases: request.aliases, interface: request.interface)
            } else {
                local = try adopt(name: name, path: request.netns, network: network.text, interface: request.interface, requested: requested,
                                  aliases: request.aliases, hostsFile: request.hostsFile, containerID: id,
                                  egressInterface: Self.egressInterface)
            }
            guard let attachment = try containerAttachment(local, network: network.text) else {
                throw APIError(status: 500, message: "container \(id) attached but its attachment to \(network) is not recorded")
            }
            return attachment
        }
    }

    /// Detaches the container from `network`; the last network withdraws the sandbox (names
    /// everywhere, interfaces here). Already gone is fine.
    func detachContainer(_ containerID: String, network networkName: String) throws {
        let id = try Self.containerID(containerID)
        let network = try label(networkName, "network")
        guard let local = sandboxes.container(id) else { return }
        let published = local.attachments.filter { $0.published != nil }
        guard published.contains(where: { $0.network.name == network.text }) else { return }
        if published.count == 1 {
            _ = try stop(local.name.text, missingIsFine: true)
        } else {
            _ = try disconnect(local.name.text, from: network.text)
        }
    }

    /// The container's attachment to `network` read back from the kernel: refused when the
    /// interface or its address is gone. A read: it waits for no command and no store.
    func checkContainer(_ containerID: String, network networkName: String) throws -> ContainerAttachment {
        let id = try Self.containerID(containerID)
        let network = try label(networkName, "network")
        guard let local = sandboxes.container(id), let attachment = try containerAttachment(local, network: network.text) else {
            throw APIError.notFound("container \(id) is not attached to '\(network)' on this host")
        }
        let interfaces = try local.sandbox.interfaces()
        guard interfaces.contains(where: { $0.name == attachment.interface && "\($0.address)" == attachment.address.split(separator: "/").first.map(String.init) })
        else {
            throw APIError.conflict("container \(id): interface \(attachment.interface) no longer has \(attachment.address)")
        }
        return attachment
    }

    /// The container's leg on the gateway bridge (its default route out), beside the runtime's
    /// interfaces; named apart from their `ethN`, which a runtime may still ask for.
    static let egressInterface = "dnsgw0"

    private func containerAttachment(_ local: LocalSandbox, network: String) throws -> ContainerAttachment? {
        guard let attachment = local.attachments.first(where: { $0.network.name == network && $0.published != nil }) else { return nil }
        let subnet = try attachment.network.parsedSubnet
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
                                   address: "\(attachment.endpoint.address)/\(subnet.prefixLength)",
                                   gateway: attachment.network.gatewayAddress?.description ?? "",
                                   nameservers: resolver.nameservers, search: resolver.search, egress: egress)
    }

    /// A runtime's container id: what CNI and containerd allow (letters, digits, `_.-`), 1-128.
    static func containerID(_ text: String) throws -> String {
        let allowed = text.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a)
                || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "-")
        }
        guard (1...128).contains(text.utf8.count), allowed else {
            throw APIError.badRequest("invalid container id '\(text.prefix(140))': 1-128 letters, digits, '_', '.' or '-'")
        }
        return text
    }

    /// A Linux interface name (IFNAMSIZ 16 with its NUL; no '/', ':' or whitespace; not "." or "..").
    static func isInterfaceName(_ name: String) -> Bool {
        (1...15).contains(name.utf8.count) && name != "." && name != ".."
            && !name.utf8.contains { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: ":") || $0 <= 0x20 || $0 >= 0x7f }
    }
}
