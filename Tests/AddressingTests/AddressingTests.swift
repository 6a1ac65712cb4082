import Addressing
import Testing

/// The family-generic address and prefix types, at their edges: what the cluster IPAM's keys,
/// the picker and the resolver's prefix checks rest on. Expectations are literals from RFC 4291
/// and RFC 5952, not the product's own output.
@Suite("Addressing: IPAddress and IPSubnet")
struct AddressingTests {
    @Test("IPv6 text: every spelling of one address has one canonical text (RFC 5952), which the claim keys use")
    func canonicalText() throws {
        for (given, canonical) in [
            ("FD00:DB8:1:0:0:0:0:3", "fd00:db8:1::3"), ("fd00:db8:1:0::3", "fd00:db8:1::3"), ("fd00:0db8:0001::0003", "fd00:db8:1::3"),
            ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"), ("2001:0:0:1:0:0:0:1", "2001:0:0:1::1"), ("0:0:0:0:0:0:0:0", "::"),
            ("fd00::", "fd00::"), ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
        ] {
            let address = try #require(IPAddress(given), "\(given)")
            #expect(address.family == .v6 && address.description == canonical, "\(given) -> \(address)")
        }
        for bad in ["fd00::1::2", "fd00:db8:1::3/64", "fd00:db8:1::g", "1.2.3", "010.1.1.1", "1.2.3.4 ", "", ":", "fe80::1%eth0"] {
            #expect(IPAddress(bad) == nil, "\(bad)")
        }
        #expect(IPAddress("192.168.0.3")?.family == .v4 && IPAddress("192.168.0.3")?.bytes == [192, 168, 0, 3])
        #expect(IPAddress("fd00::1")?.bytes == [0xfd, 0] + [UInt8](repeating: 0, count: 13) + [1])
        #expect(IPAddress("255.255.255.255")! < IPAddress("::")!, "IPv4 sorts before IPv6")
        #expect(IPAddress("fe80::1")!.isLinkLocal && IPAddress("febf::1")!.isLinkLocal && !IPAddress("fec0::1")!.isLinkLocal
                && !IPAddress("fd00::1")!.isLinkLocal)
    }

    @Test("prefixes: host bits refused, contains and overlaps per family, sizes and host ranges at /0, /31, /32, /64, /120, /127, /128")
    func prefixes() throws {
        #expect(throws: IPSubnet.ParseError.hostBitsSet("fd00::1/64", network: "fd00::/64")) { try IPSubnet(parsing: "fd00::1/64") }
        #expect(throws: IPSubnet.ParseError.notCIDR("fd00::/129", nil)) { try IPSubnet(parsing: "fd00::/129") }
        #expect(throws: IPSubnet.ParseError.notCIDR("fd00::/64", .v4)) { try IPSubnet(parsing: "fd00::/64", family: .v4) }
        #expect(throws: IPSubnet.ParseError.notCIDR("fd00::/+64", nil)) { try IPSubnet(parsing: "fd00::/+64") }
        let v6 = try IPSubnet(parsing: "fd00:db8:1::/64")
        #expect(v6.contains(IPAddress("fd00:db8:1::ffff")!) && v6.contains(IPAddress("fd00:db8:1:0:ffff:ffff:ffff:ffff")!))
        #expect(!v6.contains(IPAddress("fd00:db8:1:1::")!) && !v6.contains(IPAddress("192.168.0.1")!))
        #expect(v6.last == IPAddress("fd00:db8:1:0:ffff:ffff:ffff:ffff")! && v6.size == UInt128(1) << 64)
        #expect(v6.hostRange == (IPAddress("fd00:db8:1::1")!.value)...(v6.last.value), "IPv6 has no broadcast: the last address is a host's")
        #expect(try v6.overlaps(IPSubnet(parsing: "fd00:db8:1:0:8000::/65")) && !(try v6.overlaps(IPSubnet(parsing: "fd00:db8:2::/64"))))
        #expect(try !v6.overlaps(IPSubnet(parsing: "10.0.0.0/8")), "families never overlap")
        let v4 = try IPSubnet(parsing: "192.168.0.0/24")
        #expect(v4.hostRange == (IPAddress("192.168.0.1")!.value)...(IPAddress("192.168.0.254")!.value), "IPv4 less its broadcast")
        #expect(v4.last == IPAddress("192.168.0.255")! && v4.size == 256)
        #expect(try IPSubnet(parsing: "10.0.0.0/31").hostRange == nil && IPSubnet(parsing: "10.0.0.1/32").hostRange == nil)
        let one = IPAddress("fd00::1")!.value
        #expect(try IPSubnet(parsing: "fd00::/127").hostRange == (one...one), "a /127: one host address past the first")
        let top = try IPSubnet(parsing: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128")
        #expect(top.hostRange == nil && top.last == top.network && top.size == 1)
        #expect(top.address(at: 1) == IPAddress("::")!, "wraps, never traps")
        let all = try IPSubnet(parsing: "::/0")
        #expect(all.size == .max && all.contains(IPAddress("ffff::1")!) && all.last == IPAddress("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")!)
        #expect(try IPSubnet(parsing: "0.0.0.0/0").last == IPAddress("255.255.255.255")!)
        #expect(try IPSubnet(parsing: "fd00::/120").hostRange?.count == 255)
        // IPv4Subnet is the same prefix, known to be IPv4.
        let wrapped = try IPv4Subnet(parsing: "192.168.0.0/24")
        #expect(wrapped.subnet == v4 && wrapped.mask == 0xFFFF_FF00 && wrapped.contains(IPv4Address(192, 168, 0, 77)) && IPv4Subnet(v6) == nil)
    }

    @Test("IPv6 prefixes a network may not have: link-local, multicast, reserved, IPv4-mapped, shorter than /48")
    func unusablePrefixes() throws {
        for (text, reason) in [("fe80::/64", "link-local"), ("ff05::/64", "multicast"), ("::/120", "reserved"), ("::ffff:0:0/96", "IPv4-mapped"),
                               ("::ffff:10.0.0.0/120", "IPv4-mapped"), ("fd00::/47", "/48"), ("2000::/3", "/48")] {
            let found = try IPSubnet(parsing: text).unusableAsNetwork6
            #expect(found?.contains(reason) == true, "\(text): \(found ?? "usable")")
        }
        for text in ["fd00:db8:1::/64", "fd00::/48", "2001:db8::/120"] { #expect(try IPSubnet(parsing: text).unusableAsNetwork6 == nil, "\(text)") }
    }
}
