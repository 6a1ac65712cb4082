import Foundation
import Addressing
import Logging
import Netns

/// One overlay network as it exists on one host.
public struct OverlaySpec: Sendable, Equatable {
    public var name: HostLabel
    /// The IPv4 subnet and gateway (nil on an IPv6-only network).
    public var subnet: IPv4Subnet?
    public var gateway: IPv4Address?
    /// The IPv6 prefix of a dual-stack or IPv6-only network (nil: IPv4 only), and its gateway
    /// (never an endpoint's: an IPv6-only network's bridge takes its MAC from it).
    public var subnet6: IPSubnet?
    public var gateway6: IPAddress?
    public var vni: UInt32

    public init(name: HostLabel, subnet: IPv4Subnet?, gateway: IPv4Address?, subnet6: IPSubnet? = nil, gateway6: IPAddress? = nil, vni: UInt32) {
        self.gateway6 = gateway6
        self.name = name
        self.subnet = subnet
        self.gateway = gateway
        self.subnet6 = subnet6
        self.vni = vni
    }
}

public enum OverlayError: Error, CustomStringConvertible, Equatable {
    case unknownNetwork(HostLabel)
    case outside(IPAddress, HostLabel)

    public var description: String {
        switch self {
        case .unknownNetwork(let name): "no overlay network '\(name)' on this host"
        case .outside(let address, let name): "address \(address) is not in a subnet of network '\(name)'"
        }
    }
}

/// A sandbox's attachment to a network, as the driver made it.
public struct AttachedEndpoint: Sendable, Equatable {
    public var network: HostLabel
    public var sandbox: String
    public var interface: String
    /// Its primary address: IPv4 on a network with IPv4, else IPv6 (its MAC and its port's name
    /// come from it).
    public var address: IPAddress
    /// Its IPv6 address on a dual-stack network (on an IPv6-only one that is `address`).
    public var address6: IPAddress?
    public var mac: MACAddress
    /// The bridge-side end of the veth, in the network's overlay namespace.
    public var bridgePort: String

    /// The bridge-side veth name of the endpoint with primary `address`: `prefix` + its low 32
    /// bits in 8 hex digits (an IPv4 address whole; unique per network, as an IPv6-only network
    /// hands out no two addresses with the same low 32 bits; at most 10 characters, stable across
    /// restarts).
    public static func bridgePortName(_ prefix: String, for address: IPAddress) -> String {
        let hex = String(UInt32(truncatingIfNeeded: address.value), radix: 16)
        return prefix + String(repeating: "0", count: 8 - hex.count) + hex
    }

    public static func bridgePortName(_ prefix: String, for address: IPv4Address) -> String {
        bridgePortName(prefix, for: IPAddress(address))
    }

    public init(network: HostLabel, sandbox: String, interface: String, address: IPAddress, address6: IPAddress? = nil, mac: MACAddress,
                bridgePort: String) {
        self.address6 = address6
        self.network = network
        self.sandbox = sandbox
        self.interface = interface
        self.address = address
        self.mac = mac
        self.bridgePort = bridgePort
    }
}

/// The overlay driver of one host (libnetwork's model). Per network: a hidden namespace holding
/// `br0` with the gateway address and `vxlan0` (created from the host namespace, so its UDP
/// socket stays there), MTU 1450, learning off, ARP proxy on. Per local endpoint: a veth whose
/// sandbox end is `ethN` with the endpoint's addresses and a MAC derived from its IPv4 one. Per
/// remote endpoint: exactly one permanent neighbour per address (IPv4 for ARP, IPv6 for Neighbor
/// Solicitations: the proxy answers both) and one FDB entry on `vxlan0`. IPv6 is one more
/// address of the same endpoint, never a second code path. Every operation undoes its own
/// half-done steps when one fails.
public final class OverlayDriver: @unchecked Sendable {
    public struct Host: Sendable {
        /// Short identifier, used in the names of this host's hidden namespaces.
        public var id: String
        /// The underlay address other hosts reach this host's VTEP at.
        public var advertise: IPv4Address
        /// The host namespace (where vxlan sockets live); nil = the caller's own.
        public var namespace: NamespaceHandle?

        public init(id: String, advertise: IPv4Address, namespace: NamespaceHandle? = nil) {
            self.id = id
            self.advertise = advertise
            self.namespace = namespace
        }
    }

    /// MTU of every overlay interface: 1500 minus the 50 bytes of VXLAN encapsulation, so a
    /// full frame never needs fragmenting on a 1500-byte underlay (no PMTU black hole).
    public static let mtu: UInt32 = 1450

    private final class Network {
        let spec: OverlaySpec
        let namespaceName: String
        let netlink: NetlinkSocket
        let bridge: Int32
        let vxlan: Int32
        init(spec: OverlaySpec, namespaceName: String, netlink: NetlinkSocket, bridge: Int32, vxlan: Int32) {
            self.spec = spec
            self.namespaceName = namespaceName
            self.netlink = netlink
            self.bridge = bridge
            self.vxlan = vxlan
        }
    }

    public let host: Host
    public let namespaces: NamedNamespaces
    let thread: NamespaceThread
    private let hostNetlink: NetlinkSocket
    private let logger: Logger
    private let lock = NSLock()
    private var networks: [HostLabel: Network] = [:]
    /// Each network's remote endpoints by primary address: what its kernel tables must hold.
    private var desiredPeers: [HostLabel: [IPAddress: Peer]] = [:]

    /// A remote endpoint: its VTEP and its other address (IPv6 on a dual-stack network).
    struct Peer: Equatable {
        var vtep: IPv4Address
        var secondary: IPAddress?
    }
    private var replayFailureCount = 0

    public init(host: Host, namespaces: NamedNamespaces = NamedNamespaces(), thread: NamespaceThread, logger: Logger) throws {
        self.host = host
        self.namespaces = namespaces
        self.thread = thread
        self.logger = logger
        hostNetlink = try NetlinkSocket.open(in: host.namespace, using: thread)
    }

    /// Whether `network` exists on this host (created or adopted by this driver).
    public func hasNetwork(_ name: HostLabel) -> Bool { lock.withLock { networks[name] != nil } }

    /// The spec `network` was created or adopted with on this host.
    public func spec(of name: HostLabel) -> OverlaySpec? { lock.withLock { networks[name]?.spec } }

    /// Whether the hidden namespace of `network` exists (made by this run or an earlier one).
    public func hasNamespace(_ name: HostLabel) -> Bool { namespaces.exists(overlayNamespaceName(name)) }

    /// The hidden namespace of `network` on this host.
    public func overlayNamespaceName(_ network: HostLabel) -> String { "\(host.id)-ov-\(network.text)" }

    /// The networks whose hidden namespace exists on this host (made by this run or an earlier).
    public func namespaceNetworks() -> [String] {
        let prefix = "\(host.id)-ov-"
        return namespaces.list().filter { $0.hasPrefix(prefix) }.map { String($0.dropFirst(prefix.count)) }
    }

    /// Creates the network's namespace, bridge and vxlan device. A namespace that exists already
    /// (an earlier run's, or one left half-made by a daemon killed mid-way) is adopted only once
    /// it is what `spec` says: whatever is missing or different is made again (see `adopt`).
    public func createNetwork(_ spec: OverlaySpec) throws {
        try lock.withLock {
            if networks[spec.name] != nil { return }
            let name = overlayNamespaceName(spec.name)
            if namespaces.exists(name) {
                let network = try adopt(spec, namespaceName: name)
                networks[spec.name] = network
                replayPeers(into: network)
                return
            }
            let (handle, netlink) = try namespaces.create(name, on: thread, also: NetlinkSocket.inNewNamespace)
            do {
                let bridge = try ensureBridge(spec, in: netlink)
                let vxlan = try ensureVXLAN(spec, in: netlink, namespaceFD: handle.fd, bridge: bridge)
                try enableIPv6(spec, in: handle)
                let network = Network(spec: spec, namespaceName: name, netlink: netlink, bridge: bridge, vxlan: vxlan)
                networks[spec.name] = network
                replayPeers(into: network)
                logger.info("overlay network created", metadata: ["network": "\(spec.name)", "vni": "\(spec.vni)", "netns": "\(name)"])
            } catch {
                // The vxlan device goes first and synchronously: a namespace is torn down
                // asynchronously by the kernel, and until then the VNI stays taken in the host
                // namespace (a retry would fail with EEXIST).
                if let netlink = try? NetlinkSocket.open(in: handle, using: thread) {
                    try? netlink.deleteLink(named: "vxlan0")
                }
                try? namespaces.delete(name)
                throw error
            }
        }
    }

    /// `br0` as `spec` wants it: a bridge (created if missing: its own MAC from the gateway
    /// address, multicast snooping off) with the gateway address, MTU 1450, up. A bridge that is
    /// there is corrected in place, so the sandboxes' ports on it stay. Returns its index.
    private func ensureBridge(_ spec: OverlaySpec, in netlink: NetlinkSocket) throws -> Int32 {
        if let link = try netlink.link(named: "br0"), link.kind != "bridge" {
            logger.warning("overlay namespace: br0 is not a bridge; replacing it", metadata: ["network": "\(spec.name)"])
            try netlink.deleteLink(named: "br0")
        }
        let bridge: Int32
        if let link = try netlink.link(named: "br0") {
            bridge = link.index
            if link.mtu != Self.mtu { try netlink.setLink(bridge, mtu: Self.mtu) }
            if !link.isUp { try netlink.setLink(bridge, up: true) }
        } else {
            // Its own MAC (from the gateway address): a bridge without one takes its lowest
            // port's and recomputes its identity whenever a port with a lower MAC arrives.
            try netlink.createLink(LinkSpec(name: "br0", kind: .bridge(BridgeOptions(multicastSnooping: false)), mtu: Self.mtu,
                                            mac: Self.bridgeMAC(spec), up: true))
            bridge = try netlink.linkIndex("br0")
            // Setting the MTU again, as a change, marks it user-set: the bridge then stops
            // re-deriving its MTU from every port on each port added (O(ports) per attach).
            try netlink.setLink(bridge, mtu: Self.mtu)
        }
        if let gateway = spec.gateway, let subnet = spec.subnet {
            try netlink.setOnlyAddress(gateway, prefixLength: subnet.prefixLength, on: bridge)
        } else {
            // An IPv6-only network's bridge is layer 2 only: an IPv4 address left there goes.
            for stale in try netlink.addresses(.v4) where stale.index == bridge {
                try netlink.deleteAddress(stale.address, prefixLength: stale.prefixLength, from: bridge)
            }
        }
        return bridge
    }

    /// The bridge's own MAC, from the network's IPv4 gateway (its IPv6 one on an IPv6-only
    /// network): a gateway is never an endpoint's address, so no endpoint ever has the bridge's
    /// MAC (the bridge would take that endpoint's frames for its own).
    static func bridgeMAC(_ spec: OverlaySpec) -> MACAddress {
        if let gateway = spec.gateway { return MACAddress(derivedFrom: gateway) }
        return MACAddress(derivedFrom: spec.gateway6 ?? spec.subnet6.map { $0.address(at: 1) } ?? IPAddress(IPv4Address(0)))
    }

    /// `vxlan0` as `spec` wants it: its VNI, port 4789, learning off, ARP proxy on, MTU 1450,
    /// enslaved to `bridge`, up. Created from the host namespace into the overlay namespace (so
    /// its UDP socket stays in the host's) when missing; replaced when its identity differs
    /// (VNI, port, learning and proxy are fixed at creation). Returns its index.
    private func ensureVXLAN(_ spec: OverlaySpec, in netlink: NetlinkSocket, namespaceFD: Int32, bridge: Int32) throws -> Int32 {
        let wanted = VXLANAttributes(vni: spec.vni, port: 4789, learning: false, proxy: true)
        if let link = try netlink.link(named: "vxlan0") {
            if link.kind == "vxlan", link.vxlan == wanted {
                if link.mtu != Self.mtu { try netlink.setLink(link.index, mtu: Self.mtu) }
                if link.master != bridge || !link.isUp { try netlink.setLink(link.index, up: true, master: bridge) }
                return link.index
            }
            logger.warning("overlay namespace: vxlan0 is not what the network says; replacing it",
                           metadata: ["network": "\(spec.name)", "found": "\(String(describing: link.vxlan))", "vni": "\(spec.vni)"])
            try netlink.deleteLink(named: "vxlan0")
        }
        try hostNetlink.createLink(LinkSpec(
            name: "vxlan0", kind: .vxlan(VXLANOptions(vni: spec.vni, learning: false, proxy: true, local: host.advertise)),
            mtu: Self.mtu, namespaceFD: namespaceFD))
        let vxlan = try netlink.linkIndex("vxlan0")
        try netlink.setLink(vxlan, up: true, master: bridge)
        return vxlan
    }

    /// On a dual-stack network, IPv6 on `vxlan0` without addresses of its own (address generation
    /// off): the kernel refuses IPv6 neighbour entries on a device with IPv6 disabled, and its
    /// proxy answers Neighbor Solicitations from them. The bridge stays layer 2 only.
    private func enableIPv6(_ spec: OverlaySpec, in namespace: NamespaceHandle) throws {
        guard spec.subnet6 != nil else { return }
        try thread.run(in: namespace) {
            try NetworkSysctl.set("ipv6/conf/vxlan0/addr_gen_mode", "1")
            try NetworkSysctl.set("ipv6/conf/vxlan0/disable_ipv6", "0")
        }
    }

    /// Takes over an existing overlay namespace once it is what `spec` says, repairing what is
    /// missing or different (a daemon killed between making the namespace and its devices, a
    /// device deleted or changed by hand). Its peers are programmed again from the table.
    private func adopt(_ spec: OverlaySpec, namespaceName: String) throws -> Network {
        let handle = try NamespaceHandle(path: namespaces.path(namespaceName))
        let netlink = try NetlinkSocket.open(in: handle, using: thread)
        let bridge = try ensureBridge(spec, in: netlink)
        let vxlan = try ensureVXLAN(spec, in: netlink, namespaceFD: handle.fd, bridge: bridge)
        try enableIPv6(spec, in: handle)
        return Network(spec: spec, namespaceName: namespaceName, netlink: netlink, bridge: bridge, vxlan: vxlan)
    }

    /// Removes the network's namespace and with it every device and entry in it (also one an
    /// earlier run made, whatever state it is in).
    public func deleteNetwork(_ name: HostLabel) throws {
        try lock.withLock {
            let namespaceName = networks.removeValue(forKey: name)?.namespaceName ?? overlayNamespaceName(name)
            guard namespaces.exists(namespaceName) else { return }
            let netlink = try NetlinkSocket.open(in: try NamespaceHandle(path: namespaces.path(namespaceName)), using: thread)
            // Devices first, synchronously (see createNetwork), then the namespace.
            for device in ["vxlan0", "br0"] where try netlink.link(named: device) != nil { try netlink.deleteLink(named: device) }
            try namespaces.delete(namespaceName)
        }
    }

    /// Connects `sandbox` to `network` with `address`: a veth whose sandbox end is the next
    /// `ethN` (or `interface`), addressed and up, the other end on the network's bridge.
    /// `address6` is its IPv6 address on a dual-stack network: added after the driver's lock is
    /// let go (it needs a hop to the namespace thread for the interface's IPv6 switch, which no
    /// other network's attach should queue behind). On an IPv6-only network `address` is the
    /// IPv6 address and `address6` nil: the interface is made without an address, then gets it
    /// the same way.
    /// `defaultRoute` points the sandbox's default route at the network's gateway.
    public func attach(_ sandbox: Sandbox, to networkName: HostLabel, address: IPAddress, address6: IPAddress? = nil,
                       interface: String? = nil, defaultRoute: Bool = false) throws -> AttachedEndpoint {
        let ipv6 = address.family == .v6 ? address : address6
        var (endpoint, prefixLength6): (AttachedEndpoint, Int?) = try lock.withLock {
            guard let network = networks[networkName] else { throw OverlayError.unknownNetwork(networkName) }
            var address4: (IPv4Address, Int)?
            if let v4 = address.v4 {
                guard let subnet = network.spec.subnet, subnet.contains(v4) else {
                    throw OverlayError.outside(address, networkName)
                }
                address4 = (v4, subnet.prefixLength)
            }
            var prefixLength6: Int?
            if let ipv6 {
                guard let subnet6 = network.spec.subnet6, subnet6.contains(ipv6) else { throw OverlayError.outside(ipv6, networkName) }
                prefixLength6 = subnet6.prefixLength
            }
            let endpoint = try sandbox.plug(into: networkName, from: network.netlink, master: network.bridge, portPrefix: "ve",
                                            address: address, address4: address4, mtu: Self.mtu, interface: interface,
                                            gateway: defaultRoute ? network.spec.gateway : nil)
            return (endpoint, prefixLength6)
        }
        if let ipv6, let prefixLength6 {
            do { try sandbox.addIPv6(ipv6, prefixLength: prefixLength6, on: endpoint.interface, thread: thread) } catch {
                try? detach(endpoint)
                throw error
            }
            if address6 != nil { endpoint.address6 = address6 }
        }
        return endpoint
    }

    /// A sandbox's IPv6 address on `network` as it should be, put back if it went (a daemon
    /// restarting finds the interface with its IPv4 address and takes it over). `addIPv6` is
    /// idempotent: no dump of the sandbox's addresses first.
    public func ensureIPv6(_ address6: IPAddress, on interface: String, in sandbox: Sandbox, network networkName: HostLabel) throws {
        let prefixLength: Int = try lock.withLock {
            guard let subnet6 = networks[networkName]?.spec.subnet6, subnet6.contains(address6) else {
                throw OverlayError.outside(address6, networkName)
            }
            return subnet6.prefixLength
        }
        try sandbox.addIPv6(address6, prefixLength: prefixLength, on: interface, thread: thread)
    }

    /// A veth for a container whose runtime moves the interface into its namespace itself
    /// (Docker's remote driver `Join`): the bridge end `port` on the network's bridge, the other
    /// end `hostName` in the host's namespace with `mac` and the overlay MTU; the runtime moves it,
    /// renames it and sets its address. Both names are the endpoint's own (`hostVethPortName`),
    /// never an address's: a leftover of that name can only be this endpoint's earlier try.
    public func createHostVeth(on networkName: HostLabel, port: String, mac: MACAddress, hostName: String) throws {
        try lock.withLock {
            guard let network = networks[networkName] else { throw OverlayError.unknownNetwork(networkName) }
            if try network.netlink.link(named: port) != nil { try network.netlink.deleteLink(named: port) }
            if try hostNetlink.link(named: hostName) != nil { try hostNetlink.deleteLink(named: hostName) }
            let hostNamespace = try host.namespace ?? NamespaceHandle(path: "/proc/self/ns/net")
            try network.netlink.createLink(LinkSpec(
                name: port, kind: .veth(peer: VethPeer(name: hostName, namespaceFD: hostNamespace.fd, mtu: Self.mtu, mac: mac)),
                mtu: Self.mtu, master: network.bridge, up: true))
        }
    }

    /// The bridge end's name of `createHostVeth`'s veth for the runtime's endpoint `id`: `vd` and
    /// the id's first 13 characters (Docker's ids are 64 hex digits).
    public static func hostVethPortName(forEndpoint id: String) -> String { "vd" + String(id.prefix(13)) }

    /// Whether the network's bridge has a port named `port` (nil: the network is not here). A
    /// veth end goes when its peer's namespace does: a container's whose namespace is gone.
    public func hasBridgePort(_ port: String, on networkName: HostLabel) throws -> Bool? {
        try lock.withLock {
            guard let network = networks[networkName] else { return nil }
            return try network.netlink.link(named: port) != nil
        }
    }

    /// The names of the network's bridge ports (nil: the network is not here): one listing.
    public func bridgePortNames(on networkName: HostLabel) throws -> Set<String>? {
        try lock.withLock {
            guard let network = networks[networkName] else { return nil }
            return Set(try network.netlink.links().map(\.name))
        }
    }

    /// Deletes a bridge port made by `createHostVeth` from whichever network here has it.
    public func deleteBridgePortEverywhere(_ port: String) throws {
        try lock.withLock {
            for network in networks.values where try network.netlink.link(named: port) != nil {
                try network.netlink.deleteLink(named: port)
            }
        }
    }

    /// Deletes a bridge port made by `createHostVeth` (its peer goes with it, wherever it is).
    public func deleteBridgePort(_ port: String, on networkName: HostLabel) throws {
        try lock.withLock {
            guard let network = networks[networkName], try network.netlink.link(named: port) != nil else { return }
            try network.netlink.deleteLink(named: port)
        }
    }

    /// Removes the endpoint's veth (both ends).
    public func detach(_ endpoint: AttachedEndpoint) throws {
        try lock.withLock {
            guard let network = networks[endpoint.network] else { return }
            try network.netlink.deleteLink(named: endpoint.bridgePort)
        }
    }

    /// A remote endpoint with `addresses` (its primary address first: IPv4 where it has one):
    /// one permanent neighbour per address (its IP -> its MAC, for the proxy's ARP and Neighbor
    /// Solicitation answers) and one FDB entry (its MAC, derived from the primary address -> the
    /// remote VTEP). The driver keeps each network's peer table whether or not the network exists
    /// here yet (libnetwork's peerdb): a network made later gets every peer the table has when it
    /// is created (`createNetwork`), so whoever feeds peers never needs to know when that
    /// happens. Idempotent; a peer whose other address changed loses the old entry.
    public func addPeer(_ addresses: [IPAddress], vtep: IPv4Address, on networkName: HostLabel) throws {
        guard let primary = addresses.first else { return }
        let peer = Peer(vtep: vtep, secondary: addresses.dropFirst().first)
        try lock.withLock {
            let previous = desiredPeers[networkName]?[primary]
            desiredPeers[networkName, default: [:]][primary] = peer
            guard let network = networks[networkName] else { return }
            if let old = previous?.secondary, old != peer.secondary, Self.family(of: old, on: network) {
                try network.netlink.deleteNeighbour(old, on: network.vxlan)
            }
            try program(primary, peer, on: network)
        }
    }

    /// Removes a remote endpoint from the network's peer table and its neighbours and FDB entry
    /// from the kernel. Idempotent.
    public func removePeer(_ addresses: [IPAddress], vtep: IPv4Address, on networkName: HostLabel) throws {
        guard let primary = addresses.first else { return }
        try lock.withLock {
            if desiredPeers[networkName]?[primary]?.vtep == vtep {
                desiredPeers[networkName]?[primary] = nil
                if desiredPeers[networkName]?.isEmpty == true { desiredPeers[networkName] = nil }
            }
            guard let network = networks[networkName] else { return }
            try network.netlink.deleteForwardingEntry(MACAddress(derivedFrom: primary), remote: vtep, on: network.vxlan)
            // (No neighbour of a family the network lacks here exists.)
            for neighbour in addresses where Self.family(of: neighbour, on: network) {
                try network.netlink.deleteNeighbour(neighbour, on: network.vxlan)
            }
        }
    }

    /// Peers the kernel refused while a network was being made (counted for metrics; each is
    /// logged). A refusal of `addPeer` itself is thrown to its caller instead.
    public var replayFailures: Int { lock.withLock { replayFailureCount } }

    /// Whether `address` is inside one of the network's prefixes here.
    private static func family(of address: IPAddress, on network: Network) -> Bool {
        address.family == .v4 ? (address.v4.map { network.spec.subnet?.contains($0) } ?? false) == true
            : network.spec.subnet6?.contains(address) == true
    }

    /// Under `lock`: one peer's neighbours, then its FDB entry (the neighbours undone if a later
    /// step fails). An address outside the network's prefixes here (a record from before the
    /// network was made again without that family) gets no neighbour: the kernel would refuse an
    /// IPv6 one on a vxlan without IPv6, and the peer's other neighbour would be undone with it.
    private func program(_ primary: IPAddress, _ peer: Peer, on network: Network) throws {
        let mac = MACAddress(derivedFrom: primary)
        var added: [IPAddress] = []
        do {
            for neighbour in [primary, peer.secondary].compactMap({ $0 }) where Self.family(of: neighbour, on: network) {
                try network.netlink.addNeighbour(neighbour, mac: mac, on: network.vxlan)
                added.append(neighbour)
            }
            try network.netlink.addForwardingEntry(mac, remote: peer.vtep, on: network.vxlan)
        } catch {
            for neighbour in added { try? network.netlink.deleteNeighbour(neighbour, on: network.vxlan) }
            throw error
        }
    }

    /// Under `lock`: every peer of the table into a network just made or adopted here.
    private func replayPeers(into network: Network) {
        for (address, peer) in desiredPeers[network.spec.name] ?? [:] {
            do { try program(address, peer, on: network) } catch {
                replayFailureCount += 1
                logger.warning("peer add failed", metadata: ["network": "\(network.spec.name)", "peer": "\(address)", "error": "\(error)"])
            }
        }
    }

    /// The peers the kernel has for `network`: IPv4 address -> VTEP, read back from the
    /// neighbour and FDB tables.
    public func peers(on networkName: HostLabel) throws -> [IPv4Address: IPv4Address] {
        var result: [IPv4Address: IPv4Address] = [:]
        for (address, vtep) in try peers(on: networkName, family: .v4) { if let v4 = address.v4 { result[v4] = vtep } }
        return result
    }

    /// The peers the kernel has for `network` by their addresses of `family`.
    public func peers(on networkName: HostLabel, family: IPFamily) throws -> [IPAddress: IPv4Address] {
        try lock.withLock {
            guard let network = networks[networkName] else { return [:] }
            let fdb = try network.netlink.neighbours(on: network.vxlan, forwardingDatabase: true)
            var vtepByMAC: [MACAddress: IPv4Address] = [:]
            for entry in fdb { if let mac = entry.mac, let vtep = entry.address?.v4 { vtepByMAC[mac] = vtep } }
            var result: [IPAddress: IPv4Address] = [:]
            for entry in try network.netlink.neighbours(on: network.vxlan, family: family) {
                if let address = entry.address, let mac = entry.mac, let vtep = vtepByMAC[mac] { result[address] = vtep }
            }
            return result
        }
    }
}
