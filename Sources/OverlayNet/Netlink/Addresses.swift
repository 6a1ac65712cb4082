import Addressing
import CMnl
#if canImport(Glibc)
import Glibc
#endif

extension NetlinkSocket {
    /// Adds (or keeps) `address/prefixLength` on link `index`. An IPv6 address is usable at once
    /// (no duplicate address detection: the cluster IPAM made it unique).
    public func addAddress(_ address: IPAddress, prefixLength: Int, to index: Int32) throws {
        try changeAddress(RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, address, prefixLength, index, "add address")
    }

    public func addAddress(_ address: IPv4Address, prefixLength: Int, to index: Int32) throws {
        try addAddress(IPAddress(address), prefixLength: prefixLength, to: index)
    }

    /// Removes the address; absent is not an error.
    public func deleteAddress(_ address: IPAddress, prefixLength: Int, from index: Int32) throws {
        do {
            try changeAddress(RTM_DELADDR, 0, address, prefixLength, index, "delete address")
        } catch let error as NetlinkError where error.errno == EADDRNOTAVAIL || error.errno == ENODEV {
            return
        }
    }

    /// Makes `address/prefixLength` the only address of its family on link `index` (IPv6
    /// link-local addresses aside): any other (left by an earlier run, or put there by hand) is
    /// removed, and the wanted one added if it is missing.
    public func setOnlyAddress(_ address: IPAddress, prefixLength: Int, on index: Int32) throws {
        let present = try addresses(address.family).filter { $0.index == index && !$0.address.isLinkLocal }
        for stale in present where stale.address != address || stale.prefixLength != prefixLength {
            try deleteAddress(stale.address, prefixLength: stale.prefixLength, from: index)
        }
        if !present.contains(where: { $0.address == address && $0.prefixLength == prefixLength }) {
            try addAddress(address, prefixLength: prefixLength, to: index)
        }
    }

    public func setOnlyAddress(_ address: IPv4Address, prefixLength: Int, on index: Int32) throws {
        try setOnlyAddress(IPAddress(address), prefixLength: prefixLength, on: index)
    }

    private func changeAddress(_ type: Int, _ flags: Int32, _ address: IPAddress, _ prefixLength: Int, _ index: Int32,
                               _ operation: String) throws {
        let message = NetlinkMessage(type: UInt16(type), flags: flags)
        let header = message.familyHeader(ifaddrmsg.self)
        header.pointee.ifa_family = UInt8(address.family.addressFamily)
        header.pointee.ifa_prefixlen = UInt8(prefixLength)
        header.pointee.ifa_index = UInt32(index)
        if address.family == .v6 { header.pointee.ifa_flags = UInt8(IFA_F_NODAD) }
        message.put(IFA_LOCAL, address: address)
        message.put(IFA_ADDRESS, address: address)
        try perform(message, operation, "\(address)/\(prefixLength) on #\(index)")
    }

    /// The addresses of `family` per link index.
    public func addresses(_ family: IPFamily = .v4) throws -> [(index: Int32, address: IPAddress, prefixLength: Int)] {
        let message = NetlinkMessage(type: UInt16(RTM_GETADDR), flags: 0)
        message.familyHeader(ifaddrmsg.self).pointee.ifa_family = UInt8(family.addressFamily)
        var result: [(Int32, IPAddress, Int)] = []
        try dump(message, "dump addresses") { header in
            guard header.pointee.nlmsg_type == UInt16(RTM_NEWADDR) else { return }
            let info = UnsafeRawPointer(mnl_nlmsg_get_payload(header)).load(as: ifaddrmsg.self)
            guard Int32(info.ifa_family) == family.addressFamily else { return }
            let attributes = NetlinkAttributes(header, familyHeaderSize: MemoryLayout<ifaddrmsg>.size)
            guard let address = attributes.address(IFA_LOCAL, family) ?? attributes.address(IFA_ADDRESS, family) else { return }
            result.append((Int32(info.ifa_index), address, Int(info.ifa_prefixlen)))
        }
        return result
    }

    /// The default route through `gateway` on link `index` (replacing any other default).
    public func setDefaultRoute(via gateway: IPv4Address, device index: Int32) throws {
        let message = NetlinkMessage(type: UInt16(RTM_NEWROUTE), flags: NLM_F_CREATE | NLM_F_REPLACE)
        let header = message.familyHeader(rtmsg.self)
        header.pointee.rtm_family = UInt8(AF_INET)
        header.pointee.rtm_table = UInt8(RT_TABLE_MAIN.rawValue)
        header.pointee.rtm_protocol = UInt8(RTPROT_BOOT)
        header.pointee.rtm_scope = UInt8(RT_SCOPE_UNIVERSE.rawValue)
        header.pointee.rtm_type = UInt8(RTN_UNICAST)
        message.put(RTA_GATEWAY.rawValue, u32: gateway.value.bigEndian)
        message.put(RTA_OIF.rawValue, u32: UInt32(index))
        try perform(message, "set default route", "via \(gateway) dev #\(index)")
    }

    /// IPv4 routes of the main table: destination/prefix, gateway and output link.
    public func routes() throws -> [(destination: IPv4Address, prefixLength: Int, gateway: IPv4Address?, device: Int32?)] {
        let message = NetlinkMessage(type: UInt16(RTM_GETROUTE), flags: 0)
        message.familyHeader(rtmsg.self).pointee.rtm_family = UInt8(AF_INET)
        var result: [(IPv4Address, Int, IPv4Address?, Int32?)] = []
        try dump(message, "dump routes") { header in
            guard header.pointee.nlmsg_type == UInt16(RTM_NEWROUTE) else { return }
            let info = UnsafeRawPointer(mnl_nlmsg_get_payload(header)).load(as: rtmsg.self)
            guard info.rtm_table == UInt8(RT_TABLE_MAIN.rawValue) else { return }
            let attributes = NetlinkAttributes(header, familyHeaderSize: MemoryLayout<rtmsg>.size)
            let destination = attributes.u32(RTA_DST.rawValue).map { IPv4Address(UInt32(bigEndian: $0)) } ?? IPv4Address(0)
            result.append((destination, Int(info.rtm_dst_len),
                           attributes.u32(RTA_GATEWAY.rawValue).map { IPv4Address(UInt32(bigEndian: $0)) },
                           attributes.u32(RTA_OIF.rawValue).map { Int32($0) }))
        }
        return result
    }
}
