import Addressing
import CMnl
#if canImport(Glibc)
import Glibc
#endif

/// A permanent entry as a dump reports it: a neighbour (IP -> MAC) or an FDB entry
/// (MAC -> remote VTEP).
public struct NeighbourEntry: Sendable, Equatable, Hashable {
    public var index: Int32
    public var address: IPAddress?
    public var mac: MACAddress?
}

extension NetlinkSocket {
    /// A permanent neighbour `address -> mac` on link `index`; replaces an existing one, so
    /// adding twice is harmless.
    /// An IPv4 entry answers ARP requests, an IPv6 entry Neighbor Solicitations (a vxlan
    /// device's `proxy`); the device must have IPv6 enabled for the latter.
    public func addNeighbour(_ address: IPAddress, mac: MACAddress, on index: Int32) throws {
        try neighbour(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, family: address.family.addressFamily, flags: 0,
                      address: address, mac: mac, index: index, "add neighbour")
    }

    public func deleteNeighbour(_ address: IPAddress, on index: Int32) throws {
        try ignoringAbsent {
            try neighbour(RTM_DELNEIGH, 0, family: address.family.addressFamily, flags: 0, address: address, mac: nil, index: index,
                          "delete neighbour")
        }
    }

    /// A permanent FDB entry on a vxlan device: frames for `mac` go to the VTEP `remote`.
    public func addForwardingEntry(_ mac: MACAddress, remote: IPv4Address, on index: Int32) throws {
        try neighbour(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, family: AF_BRIDGE, flags: UInt8(NTF_SELF),
                      address: IPAddress(remote), mac: mac, index: index, "add fdb entry")
    }

    public func deleteForwardingEntry(_ mac: MACAddress, remote: IPv4Address, on index: Int32) throws {
        try ignoringAbsent {
            try neighbour(RTM_DELNEIGH, 0, family: AF_BRIDGE, flags: UInt8(NTF_SELF),
                          address: IPAddress(remote), mac: mac, index: index, "delete fdb entry")
        }
    }

    /// Permanent neighbours of `family` or FDB entries (AF_BRIDGE; their addresses are the
    /// IPv4 VTEPs) on link `index`.
    public func neighbours(on index: Int32, family: IPFamily = .v4, forwardingDatabase: Bool = false) throws -> [NeighbourEntry] {
        let message = NetlinkMessage(type: UInt16(RTM_GETNEIGH), flags: 0)
        let header = message.familyHeader(ndmsg.self)
        header.pointee.ndm_family = UInt8(forwardingDatabase ? AF_BRIDGE : family.addressFamily)
        let addressFamily: IPFamily = forwardingDatabase ? .v4 : family
        var result: [NeighbourEntry] = []
        try dump(message, "dump neighbours") { header in
            guard header.pointee.nlmsg_type == UInt16(RTM_NEWNEIGH) else { return }
            let info = UnsafeRawPointer(mnl_nlmsg_get_payload(header)).load(as: ndmsg.self)
            guard info.ndm_ifindex == index, info.ndm_state & UInt16(NUD_PERMANENT) != 0 else { return }
            let attributes = NetlinkAttributes(header, familyHeaderSize: MemoryLayout<ndmsg>.size)
            let address = attributes.address(NDA_DST, addressFamily)
            result.append(NeighbourEntry(index: index, address: address,
                                         mac: attributes.bytes(NDA_LLADDR).flatMap { MACAddress(bytes: $0) }))
        }
        return result
    }

    private func neighbour(_ type: Int, _ flags: Int32, family: Int32, flags ntf: UInt8, address: IPAddress,
                           mac: MACAddress?, index: Int32, _ operation: String) throws {
        let message = NetlinkMessage(type: UInt16(type), flags: flags)
        let header = message.familyHeader(ndmsg.self)
        header.pointee.ndm_family = UInt8(family)
        header.pointee.ndm_ifindex = index
        header.pointee.ndm_state = UInt16(NUD_PERMANENT)
        header.pointee.ndm_flags = ntf
        message.put(NDA_DST, address: address)
        if let mac { message.put(NDA_LLADDR, bytes: mac.bytes) }
        try perform(message, operation, "\(address)\(mac.map { " \($0)" } ?? "") on #\(index)")
    }

    private func ignoringAbsent(_ body: () throws -> Void) throws {
        do { try body() } catch let error as NetlinkError where error.errno == ENOENT || error.errno == ENODEV {
            return
        }
    }
}
