import Addressing
import CMnl
#if canImport(Glibc)
import Glibc
#endif

extension NetlinkSocket {
    /// Adds (or keeps) `address/prefixLength` on link `index`.
    public func addAddress(_ address: IPv4Address, prefixLength: Int, to index: Int32) throws {
        try changeAddress(RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, address, prefixLength, index, "add address")
    }

    /// Removes the address; absent is not an error.
    public func deleteAddress(_ address: IPv4Address, prefixLength: Int, from index: Int32) throws {
        do {
            try changeAddress(RTM_DELADDR, 0, address, prefixLength, index, "delete address")
        } catch let error as NetlinkError where error.errno == EADDRNOTAVAIL || error.errno == ENODEV {
            return
        }
    }

    /// Makes `address/prefixLength` the only IPv4 address of link `index`: any other (left by an
    /// earlier run, or put there by hand) is removed, and the wanted one added if it is missing.
    public func setOnlyAddress(_ address: IPv4Address, prefixLength: Int, on index: Int32) throws {
        let present = try addresses().filter { $0.index == index }
        for stale in present where stale.address != address || stale.prefixLength != prefixLength {
            try deleteAddress(stale.address, prefixLength: stale.prefixLength, from: index)
        }
        if !present.contains(where: { $0.address == address && $0.prefixLength == prefixLength }) {
            try addAddress(address, prefixLength: prefixLength, to: index)
        }
    }

    private func changeAddress(_ type: Int, _ flags: Int32, _ address: IPv4Address, _ prefixLength: Int, _ index: Int32,
                         _ operation: String) throws {
        let message = NetlinkMessage(type: UInt16(type), flags: flags)
        let header = message.familyHeader(ifaddrmsg.self)
        header.pointee.ifa_family = UInt8(AF_INET)
        header.pointee.ifa_prefixlen = UInt8(prefixLength)
        header.pointee.ifa_index = UInt32(index)
        message.put(IFA_LOCAL, u32: address.value.bigEndian)
        message.put(IFA_ADDRESS, u32: address.value.bigEndian)
        try perform(message, operation, "\(address)/\(prefixLength) on #\(index)")
    }

    /// IPv4 addresses per link index.
    public func addresses() throws -> [(index: Int32, address: IPv4Address, prefixLength: Int)] {
        let message = NetlinkMessage(type: UInt16(RTM_GETADDR), flags: 0)
        message.familyHeader(ifaddrmsg.self).pointee.ifa_family = UInt8(AF_INET)
        var result: [(Int32, IPv4Address, Int)] = []
        try dump(message, "dump addresses") { header in
            guard header.pointee.nlmsg_type == UInt16(RTM_NEWADDR) else { return }
            let info = UnsafeRawPointer(mnl_nlmsg_get_payload(header)).load(as: ifaddrmsg.self)
            let attributes = NetlinkAttributes(header, familyHeaderSize: MemoryLayout<ifaddrmsg>.size)
            guard let raw = attributes.u32(IFA_LOCAL) ?? attributes.u32(IFA_ADDRESS) else { return }
            result.append((Int32(info.ifa_index), IPv4Address(UInt32(bigEndian: raw)), Int(info.ifa_prefixlen)))
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
