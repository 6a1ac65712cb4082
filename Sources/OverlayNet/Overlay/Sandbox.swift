import Foundation
import Addressing
import Netns

/// A container's network namespace as the driver sees it: the namespace, a netlink socket
/// inside it, and the interfaces dnsd gave it.
public final class Sandbox: @unchecked Sendable {
    public let name: String
    public let namespace: NamespaceHandle
    let netlink: NetlinkSocket
    /// Whether dnsd made the namespace (and so deletes it).
    let owned: Bool
    /// Interfaces dnsd has added to an owned sandbox: the next one is `eth<count>`.
    private var interfacesAdded = 0
    private let lock = NSLock()

    init(name: String, namespace: NamespaceHandle, netlink: NetlinkSocket, owned: Bool, interfacesAdded: Int = 0) {
        self.name = name
        self.namespace = namespace
        self.netlink = netlink
        self.owned = owned
        self.interfacesAdded = interfacesAdded
    }


    /// The sandbox's interfaces and their addresses of `family` (IPv6 link-local ones left out).
    public func interfaces(_ family: IPFamily) throws -> [(name: String, address: IPAddress, mac: MACAddress?)] {
        let links = Dictionary(uniqueKeysWithValues: try netlink.links().map { ($0.index, $0) })
        return try netlink.addresses(family).compactMap { entry in
            guard let link = links[entry.index], link.name != "lo", !entry.address.isLinkLocal else { return nil }
            return (link.name, entry.address, link.mac)
        }
    }

    /// Whether the sandbox has an interface named `name` (a runtime's CNI_IFNAME must be new).
    public func hasInterface(named name: String) throws -> Bool {
        try netlink.link(named: name) != nil
    }

    /// The next `ethN` name in the sandbox (Docker's order: eth0 first, then eth1...), and in
    /// a sandbox dnsd made, the interface index to ask for (its namespace has only `lo`, index
    /// 1, besides what dnsd added), which saves looking the new link up. In an adopted sandbox
    /// it looks at the links and lets the kernel choose the index.
    func nextInterface() throws -> (name: String, index: Int32?) {
        if owned {
            return lock.withLock {
                defer { interfacesAdded += 1 }
                return ("eth\(interfacesAdded)", Int32(2 + interfacesAdded))
            }
        }
        let names = Set(try netlink.links().map(\.name))
        var n = 0
        while names.contains("eth\(n)") { n += 1 }
        return ("eth\(n)", nil)
    }
}

extension Sandbox {
    /// Plugs the sandbox into a bridge: a veth created from `netlink` (the bridge's namespace)
    /// with its bridge end `PORTPREFIX<address in hex>` enslaved to `master` and up, and its other
    /// end created straight in this sandbox as the next `ethN` (or `interface`), with a MAC
    /// derived from `address` (the endpoint's primary address); then its IPv4 address (`address4`,
    /// with its prefix length; none on an IPv6-only network: the caller adds the IPv6 one), up,
    /// and a default route via `gateway` if given. A failure after the veth exists deletes it
    /// again.
    func plug(into network: HostLabel, from netlink: NetlinkSocket, master: Int32, portPrefix: String,
              address: IPAddress, address4: (IPv4Address, Int)?, mtu: UInt32?, interface: String?,
              gateway: IPv4Address?) throws -> AttachedEndpoint {
        let next: (name: String, index: Int32?) = try interface.map { ($0, nil) } ?? nextInterface()
        let mac = MACAddress(derivedFrom: address)
        let port = AttachedEndpoint.bridgePortName(portPrefix, for: address)
        let spec = LinkSpec(
            name: port, kind: .veth(peer: VethPeer(name: next.name, namespaceFD: namespace.fd, mtu: mtu, mac: mac, index: next.index)),
            mtu: mtu, master: master, up: true)
        do { try netlink.createLink(spec) } catch let error as NetlinkError where error.errno == EEXIST {
            // The port is named after the address, which the caller now holds: a link by that
            // name is the previous holder's, whose namespace the kernel is still tearing down
            // in the background (or a leftover). It goes, then the new one is made.
            try netlink.deleteLink(named: port)
            try netlink.createLink(spec)
        }
        do {
            let index = try next.index ?? self.netlink.linkIndex(next.name)
            if let (v4, prefixLength) = address4 { try self.netlink.addAddress(v4, prefixLength: prefixLength, to: index) }
            try self.netlink.setLink(index, up: true)
            if let gateway { try self.netlink.setDefaultRoute(via: gateway, device: index) }
        } catch {
            try? netlink.deleteLink(named: port)
            throw error
        }
        return AttachedEndpoint(network: network, sandbox: name, interface: next.name, address: address, mac: mac, bridgePort: port)
    }

    /// IPv6 on `interface` (which new interfaces of a sandbox dnsd made do not have: see
    /// `NetworkSysctl.disableIPv6OnNewInterfaces`), and `address` on it, usable at once (no
    /// duplicate address detection: the cluster IPAM made it unique). Idempotent.
    public func addIPv6(_ address: IPAddress, prefixLength: Int, on interface: String, thread: NamespaceThread) throws {
        let index = try netlink.linkIndex(interface)
        try thread.run(in: namespace) { try NetworkSysctl.set("ipv6/conf/\(interface)/disable_ipv6", "0") }
        try netlink.addAddress(address, prefixLength: prefixLength, to: index)
    }
}
