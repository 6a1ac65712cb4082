import Addressing
import CMnl
#if canImport(Glibc)
import Glibc
#endif

/// What a new link is.
public struct LinkSpec: Sendable {
    public enum Kind: Sendable {
        case bridge(BridgeOptions = BridgeOptions())
        case vxlan(VXLANOptions)
        case veth(peer: VethPeer)

        var name: String {
            switch self {
            case .bridge: "bridge"
            case .vxlan: "vxlan"
            case .veth: "veth"
            }
        }
    }

    public var name: String
    public var kind: Kind
    public var mtu: UInt32?
    public var mac: MACAddress?
    /// Index of the bridge to enslave it to (in the namespace the link ends up in).
    public var master: Int32?
    public var up: Bool
    /// Create the link directly in this namespace (an open netns fd) instead of the socket's.
    public var namespaceFD: Int32?

    public init(name: String, kind: Kind, mtu: UInt32? = nil, mac: MACAddress? = nil, master: Int32? = nil,
                up: Bool = false, namespaceFD: Int32? = nil) {
        self.name = name
        self.kind = kind
        self.mtu = mtu
        self.mac = mac
        self.master = master
        self.up = up
        self.namespaceFD = namespaceFD
    }
}

/// The other end of a veth pair, created in the same request (so it lands straight in the
/// sandbox's namespace, already named, with its MAC and MTU).
///
/// It cannot be created up: the kernel configures the peer before the first end exists, and
/// opening a veth without its peer fails with ENOTCONN. Set it up afterwards, from a socket
/// in its namespace.
public struct VethPeer: Sendable {
    public var name: String
    public var namespaceFD: Int32?
    public var mtu: UInt32?
    public var mac: MACAddress?
    /// Ask for this interface index (free in the peer's namespace), so no lookup is needed
    /// afterwards; nil lets the kernel choose.
    public var index: Int32?

    public init(name: String, namespaceFD: Int32? = nil, mtu: UInt32? = nil, mac: MACAddress? = nil, index: Int32? = nil) {
        self.name = name
        self.namespaceFD = namespaceFD
        self.mtu = mtu
        self.mac = mac
        self.index = index
    }
}

/// Options of a new bridge.
public struct BridgeOptions: Sendable {
    /// IGMP/MLD snooping. With it on, every port added walks every port of the bridge to (re)arm
    /// its multicast timers: O(ports) per port, the largest part of attaching the 200th sandbox.
    /// Off, multicast is flooded like broadcast, which an overlay of a few hundred ports carries
    /// easily (and dnsd's IPv4-only sandboxes send next to none).
    public var multicastSnooping: Bool

    public init(multicastSnooping: Bool = true) { self.multicastSnooping = multicastSnooping }
}

public struct VXLANOptions: Sendable {
    public var vni: UInt32
    public var port: UInt16 = 4789
    public var learning = false
    public var proxy = true
    public var l2miss = false
    public var l3miss = false
    public var local: IPv4Address?

    public init(vni: UInt32, port: UInt16 = 4789, learning: Bool = false, proxy: Bool = true,
                l2miss: Bool = false, l3miss: Bool = false, local: IPv4Address? = nil) {
        self.vni = vni
        self.port = port
        self.learning = learning
        self.proxy = proxy
        self.l2miss = l2miss
        self.l3miss = l3miss
        self.local = local
    }
}

/// A link as a dump reports it.
public struct LinkInfo: Sendable, Equatable {
    public var index: Int32
    public var name: String
    public var kind: String?
    public var master: Int32?
    public var mtu: UInt32
    public var mac: MACAddress?
    public var isUp: Bool
    /// For a vxlan link: what it was made with (read back from IFLA_INFO_DATA).
    public var vxlan: VXLANAttributes? = nil
}

/// A vxlan link's parameters as the kernel reports them.
public struct VXLANAttributes: Sendable, Equatable {
    public var vni: UInt32
    public var port: UInt16
    public var learning: Bool
    public var proxy: Bool
}

extension NetlinkSocket {
    /// Creates a link (bridge, vxlan, veth pair). Fails with EEXIST if the name is taken.
    public func createLink(_ spec: LinkSpec) throws {
        let message = NetlinkMessage(type: UInt16(RTM_NEWLINK), flags: NLM_F_CREATE | NLM_F_EXCL)
        let info = message.familyHeader(ifinfomsg.self)
        info.pointee.ifi_family = UInt8(AF_UNSPEC)
        if spec.up {
            info.pointee.ifi_flags = UInt32(IFF_UP)
            info.pointee.ifi_change = UInt32(IFF_UP)
        }
        message.put(IFLA_IFNAME, string: spec.name)
        if let mtu = spec.mtu { message.put(IFLA_MTU, u32: mtu) }
        if let mac = spec.mac { message.put(IFLA_ADDRESS, bytes: mac.bytes) }
        if let master = spec.master { message.put(IFLA_MASTER, u32: UInt32(master)) }
        if let fd = spec.namespaceFD { message.put(IFLA_NET_NS_FD, u32: UInt32(fd)) }
        message.nest(IFLA_LINKINFO) {
            message.put(IFLA_INFO_KIND, string: spec.kind.name)
            switch spec.kind {
            case .vxlan(let options):
                message.nest(IFLA_INFO_DATA) {
                    message.put(IFLA_VXLAN_ID, u32: options.vni)
                    message.put(IFLA_VXLAN_PORT, u16: options.port.bigEndian)
                    message.put(IFLA_VXLAN_LEARNING, u8: options.learning ? 1 : 0)
                    message.put(IFLA_VXLAN_PROXY, u8: options.proxy ? 1 : 0)
                    message.put(IFLA_VXLAN_L2MISS, u8: options.l2miss ? 1 : 0)
                    message.put(IFLA_VXLAN_L3MISS, u8: options.l3miss ? 1 : 0)
                    if let local = options.local { message.put(IFLA_VXLAN_LOCAL, u32: local.value.bigEndian) }
                }
            case .veth(let peer):
                message.nest(IFLA_INFO_DATA) {
                    message.nest(VETH_INFO_PEER) {
                        // The peer's attributes follow its own ifinfomsg inside the nest.
                        let peerInfo = message.familyHeader(ifinfomsg.self)
                        peerInfo.pointee.ifi_family = UInt8(AF_UNSPEC)
                        peerInfo.pointee.ifi_index = peer.index ?? 0
                        message.put(IFLA_IFNAME, string: peer.name)
                        if let mtu = peer.mtu { message.put(IFLA_MTU, u32: mtu) }
                        if let mac = peer.mac { message.put(IFLA_ADDRESS, bytes: mac.bytes) }
                        if let fd = peer.namespaceFD { message.put(IFLA_NET_NS_FD, u32: UInt32(fd)) }
                    }
                }
            case .bridge(let options):
                message.nest(IFLA_INFO_DATA) {
                    message.put(IFLA_BR_MCAST_SNOOPING, u8: options.multicastSnooping ? 1 : 0)
                }
            }
        }
        try perform(message, "create \(spec.kind.name) link", spec.name)
    }

    /// Changes a link: up or down, MTU, MAC, master (0 = none), name.
    public func setLink(_ index: Int32, up: Bool? = nil, mtu: UInt32? = nil, mac: MACAddress? = nil,
                        master: Int32? = nil, name: String? = nil) throws {
        let message = NetlinkMessage(type: UInt16(RTM_NEWLINK), flags: 0)
        let info = message.familyHeader(ifinfomsg.self)
        info.pointee.ifi_family = UInt8(AF_UNSPEC)
        info.pointee.ifi_index = index
        if let up {
            info.pointee.ifi_flags = up ? UInt32(IFF_UP) : 0
            info.pointee.ifi_change = UInt32(IFF_UP)
        }
        if let mtu { message.put(IFLA_MTU, u32: mtu) }
        if let mac { message.put(IFLA_ADDRESS, bytes: mac.bytes) }
        if let master { message.put(IFLA_MASTER, u32: UInt32(master)) }
        if let name { message.put(IFLA_IFNAME, string: name) }
        try perform(message, "set link", "#\(index)")
    }

    /// Deletes a link by name; deleting one end of a veth deletes both. Absent is not an error.
    public func deleteLink(named name: String) throws {
        let message = NetlinkMessage(type: UInt16(RTM_DELLINK), flags: 0)
        message.familyHeader(ifinfomsg.self).pointee.ifi_family = UInt8(AF_UNSPEC)
        message.put(IFLA_IFNAME, string: name)
        do { try perform(message, "delete link", name) } catch let error as NetlinkError where error.errno == ENODEV {
            return
        }
    }

    /// The link called `name`, or nil.
    public func link(named name: String) throws -> LinkInfo? {
        let message = NetlinkMessage(type: UInt16(RTM_GETLINK), flags: 0)
        message.familyHeader(ifinfomsg.self).pointee.ifi_family = UInt8(AF_UNSPEC)
        message.put(IFLA_IFNAME, string: name)
        var found: LinkInfo?
        do {
            try perform(message, "get link", name) { header in found = Self.linkInfo(header) }
        } catch let error as NetlinkError where error.errno == ENODEV {
            return nil
        }
        return found
    }

    /// The index of link `name`; throws ENODEV if there is none.
    public func linkIndex(_ name: String) throws -> Int32 {
        guard let link = try link(named: name) else { throw NetlinkError("find link", name, errno: ENODEV) }
        return link.index
    }

    /// Every link in the socket's namespace.
    public func links() throws -> [LinkInfo] {
        let message = NetlinkMessage(type: UInt16(RTM_GETLINK), flags: 0)
        message.familyHeader(ifinfomsg.self).pointee.ifi_family = UInt8(AF_UNSPEC)
        var result: [LinkInfo] = []
        try dump(message, "dump links") { header in
            if let link = Self.linkInfo(header) { result.append(link) }
        }
        return result
    }

    static func linkInfo(_ header: UnsafePointer<nlmsghdr>) -> LinkInfo? {
        guard header.pointee.nlmsg_type == UInt16(RTM_NEWLINK) else { return nil }
        let info = UnsafeRawPointer(mnl_nlmsg_get_payload(header)).load(as: ifinfomsg.self)
        let attributes = NetlinkAttributes(header, familyHeaderSize: MemoryLayout<ifinfomsg>.size)
        var kind: String?
        var vxlan: VXLANAttributes?
        if let linkInfo = attributes[IFLA_LINKINFO] {
            let nested = NetlinkAttributes(nested: linkInfo)
            kind = nested.string(IFLA_INFO_KIND)
            if kind == "vxlan", let data = nested[IFLA_INFO_DATA] {
                let options = NetlinkAttributes(nested: data)
                vxlan = VXLANAttributes(
                    vni: options.u32(IFLA_VXLAN_ID) ?? 0,
                    // The port is in network byte order.
                    port: options[IFLA_VXLAN_PORT].flatMap { $0.count >= 2 ? UInt16(bigEndian: $0.loadUnaligned(as: UInt16.self)) : nil } ?? 0,
                    learning: options[IFLA_VXLAN_LEARNING].map { $0.first ?? 0 != 0 } ?? false,
                    proxy: options[IFLA_VXLAN_PROXY].map { $0.first ?? 0 != 0 } ?? false)
            }
        }
        return LinkInfo(
            index: info.ifi_index, name: attributes.string(IFLA_IFNAME) ?? "",
            kind: kind, master: attributes.u32(IFLA_MASTER).map { Int32($0) },
            mtu: attributes.u32(IFLA_MTU) ?? 0, mac: attributes.bytes(IFLA_ADDRESS).flatMap { MACAddress(bytes: $0) },
            isUp: info.ifi_flags & UInt32(IFF_UP) != 0, vxlan: vxlan)
    }
}
