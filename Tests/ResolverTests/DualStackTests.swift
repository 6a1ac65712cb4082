import Addressing
import Foundation
import Resolver
import Testing

/// Dual stack (DESIGN.md §4 with IPv6): AAAA beside A, NODATA across families, ip6.arpa for
/// endpoints and for the networks' IPv6 prefixes. Real `dig` in a real namespace and raw
/// queries whose replies libldns decodes; a scripted upstream records every name that reaches
/// it, so "never forwarded" is checked where it would show.
@Suite("Dual stack: AAAA, ip6.arpa and IPv6 prefixes", .timeLimit(.minutes(5)))
struct DualStackTests {
    /// The ip6.arpa name of `address` (32 nibbles, least significant first); `uppercase` spells
    /// the hex nibbles and the suffix in capitals, as a client may (DNS names ignore case).
    static func reverseName(_ address: String, uppercase: Bool = false) -> String {
        let value = IPv6Address(address)!.value
        let nibbles = (0..<32).map { String(Int(value >> UInt128(4 * $0) & 0xF), radix: 16) }
        let name = nibbles.joined(separator: ".") + ".ip6.arpa"
        return uppercase ? name.uppercased() : name
    }

    /// A scripted upstream that answers every name with one A record, and a fixture using it.
    private func withScriptedFixture(_ body: (ResolverFixture, ScriptedUpstream) throws -> Void) throws {
        let upstream = try ScriptedUpstream { _ in .answer(IPv4Address(203, 0, 113, 8), after: 0) }
        defer { upstream.close() }
        try withFixture(upstream: false, configure: { $0.upstreams = [upstream.address] }) { fx in
            try body(fx, upstream)
        }
    }

    @Test("AAAA for name, name.net, alias and alias.net answers the IPv6 address; A still the IPv4")
    func aaaaForEveryName() throws {
        try withFixture { fx in
            let s = try fx.sandbox(on: [ResolverFixture.vnet])
            for name in ["c02", "c02.vnet", "api", "API.VNet.", "v6only", "six.vnet"] {
                let expected = name.lowercased().hasPrefix("c02") || name.lowercased().hasPrefix("api") ? "fd00::3" : "fd00::6"
                let reply = try LDNSReply(#require(try s.client.udp(LDNSQuery.make(name, type: 28))))
                #expect(reply.rcode == 0 && reply.authoritative, "\(name): \(reply)")
                #expect(reply.answers.map(\.type) == [28] && reply.addresses == [expected], "\(name): \(reply)")
                #expect(reply.answers.allSatisfy { $0.ttl == 10 } && reply.authorities == 0)
                let dig = try Dig.run(s.name, ["AAAA", name])
                #expect(dig.status == "NOERROR" && dig.flags.contains("aa") && dig.addresses == [expected], "\(name): \(dig.output)")
            }
            let a = try LDNSReply(#require(try s.client.udp(LDNSQuery.make("c02.vnet", type: 1))))
            #expect(a.answers.map(\.type) == [1] && a.addresses == ["192.168.0.3"])
        }
    }

    @Test("A on a v6-only name and AAAA on a v4-only name: NODATA (NOERROR, no answer) with the zone's SOA",
          arguments: [("v6only", UInt16(1)), ("six.vnet", 1), ("V6ONLY.vnet", 1), ("c01", 28), ("c01.vnet", 28), ("db", 28), ("many7.vnet", 28)])
    func nodataAcrossFamilies(name: String, type: UInt16) throws {
        try withFixture { fx in
            let s = try fx.sandbox(on: [ResolverFixture.vnet])
            let reply = try LDNSReply(#require(try s.client.udp(LDNSQuery.make(name, type: type))))
            #expect(reply.rcode == 0 && reply.authoritative && reply.answers.isEmpty, "\(reply)")
            #expect(reply.authorityRecords.map(\.type) == [6], "\(reply)")
            #expect(reply.authorityRecords.first?.fields.first == "vnet.", "\(reply)")
            #expect(reply.authorityRecords.first?.ttl == 10)
            let dig = try Dig.run(s.name, [type == 1 ? "A" : "AAAA", name])
            #expect(dig.status == "NOERROR" && dig.answers.isEmpty && dig.flags.contains("aa"), "\(dig.output)")
            #expect(fx.upstream?.sawQuery(for: name) == false)
        }
    }

    @Test("ANY gives both families; a one-family name only its own")
    func anyGivesBoth() throws {
        try withFixture { fx in
            let s = try fx.sandbox(on: [ResolverFixture.vnet])
            for (name, expected) in [("c02.vnet", ["192.168.0.3", "fd00::3"]), ("api", ["192.168.0.3", "fd00::3"]),
                                     ("v6only", ["fd00::6"]), ("c01.vnet", ["192.168.0.2"])] {
                let reply = try LDNSReply(#require(try s.client.udp(LDNSQuery.make(name, type: 255))))
                #expect(reply.rcode == 0 && reply.authoritative, "\(name)")
                #expect(Set(reply.addresses) == Set(expected) && reply.addresses.count == expected.count, "\(name): \(reply)")
                #expect(reply.answers.map(\.type).sorted() == expected.map { $0.contains(":") ? UInt16(28) : 1 }.sorted())
            }
        }
    }

    @Test("several endpoints sharing an alias: every IPv6 address, order rotated between answers")
    func sharedAliasRotatesAAAA() throws {
        try withFixture { fx in
            let s = try fx.sandbox(on: [ResolverFixture.vnet])
            var orders: Set<[String]> = []
            for i in 0..<4 {
                let reply = try LDNSReply(#require(try s.client.udp(LDNSQuery.make(i % 2 == 0 ? "web" : "web.vnet", type: 28, id: UInt16(i)))))
                #expect(Set(reply.addresses) == ["fd00::3", "fd00::4"] && reply.addresses.count == 2, "\(reply)")
                orders.insert(reply.addresses)
            }
            #expect(orders.count == 2, "both orders seen: \(orders)")
            var digOrders: Set<[String]> = []
            for _ in 0..<4 { digOrders.insert(try Dig.run(s.name, ["AAAA", "web.vnet"]).addresses) }
            #expect(digOrders.count == 2, "\(digOrders)")
        }
    }

    @Test("PTR for an endpoint's IPv6 address: name.net.")
    func ptrForIPv6Endpoints() throws {
        try withFixture { fx in
            let s = try fx.sandbox(on: [ResolverFixture.vnet, ResolverFixture.net2])
            for (address, target) in [("fd00::3", "c02.vnet."), ("fd00::4", "c03.vnet."), ("fd00::6", "v6only.vnet."), ("fd00:2::2", "c04.net2.")] {
                let dig = try Dig.run(s.name, ["-x", address])
                #expect(dig.status == "NOERROR" && dig.flags.contains("aa"), "\(address): \(dig.output)")
                #expect(dig.answers.map(\.data) == [target] && dig.answers.map(\.type) == ["PTR"], "\(address)")
                let reply = try LDNSReply(#require(try s.client.udp(LDNSQuery.make(Self.reverseName(address), type: 12))))
                #expect(reply.rcode == 0 && reply.authoritative && reply.answers.map(\.data) == [target], "\(reply)")
            }
        }
    }

    @Test("ip6.arpa inside a cluster IPv6 prefix, not an endpoint of the sandbox's networks: NXDOMAIN, never forwarded")
    func coveredIPv6IsNXDOMAIN() throws {
        try withScriptedFixture { fx, upstream in
            // A network with an IPv6 prefix and no endpoints yet is in scope too.
            fx.store.update { $0.setNetwork(try! HostLabel("other"), subnets: [try! IPSubnet(parsing: "fd00:19::/48")]) }
            let onVnet = try fx.sandbox(on: [ResolverFixture.vnet])
            let onNet2 = try fx.sandbox(on: [ResolverFixture.net2])
            let cases: [(sandbox: (name: String, id: SandboxID, client: SandboxClient), address: String)] = [
                (onVnet, "fd00::77"),                  // unused, in the attached network's prefix
                (onVnet, "fd00::ffff:ffff:ffff:ffff"), // the prefix's last address
                (onVnet, "fd00:2::2"),                 // an endpoint of a network it is not on
                (onVnet, "fd00:2::99"),                // unused, in that network's prefix
                (onNet2, "fd00::3"),                   // the other way round
                (onNet2, "fd00:19:0:ab::1"),           // a network without endpoints
            ]
            for (sandbox, address) in cases {
                let name = Self.reverseName(address)
                let reply = try LDNSReply(#require(try sandbox.client.udp(LDNSQuery.make(name, type: 12))))
                #expect(reply.rcode == 3 && reply.authoritative && reply.answers.isEmpty, "\(address): \(reply)")
                let dig = try Dig.run(sandbox.name, ["-x", address])
                #expect(dig.status == "NXDOMAIN" && dig.answers.isEmpty, "\(address): \(dig.output)")
                // Other types of the same name: NXDOMAIN as well (the name does not exist).
                let any = try LDNSReply(#require(try sandbox.client.udp(LDNSQuery.make(name, type: 255))))
                #expect(any.rcode == 3, "\(address): \(any)")
            }
            #expect(upstream.queriedNames.isEmpty, "forwarded: \(upstream.queriedNames)")
        }
    }

    @Test("ip6.arpa outside every cluster prefix: forwarded, the upstream's answer relayed")
    func outsideIPv6IsForwarded() throws {
        try withScriptedFixture { fx, upstream in
            let s = try fx.sandbox(on: [ResolverFixture.vnet])
            // fd00:0:0:1::3 is the first /64 after vnet's fd00::/64; fd00:3:: is next to net2's.
            for address in ["2001:db8::1", "fd00:0:0:1::3", "fd00:3::2", "fd01::3", "::1"] {
                let name = Self.reverseName(address)
                let reply = try LDNSReply(#require(try s.client.udp(LDNSQuery.make(name, type: 12, id: 0x6060))))
                #expect(reply.id == 0x6060 && reply.rcode == 0 && !reply.authoritative, "\(address): \(reply)")
                #expect(upstream.queriedNames.contains(name), "\(address) not forwarded")
            }
        }
    }

    @Test("uppercase hex nibbles and suffix (DNS names ignore case) answer as lowercase does")
    func uppercaseNibbles() throws {
        try withScriptedFixture { fx, upstream in
            let s = try fx.sandbox(on: [ResolverFixture.vnet])
            // fd00::6 and fd00::77 both have nibbles d and f ("...0.0.D.F.IP6.ARPA"); 0xabcd in
            // the prefix's interface identifier gives every letter a-f.
            fx.store.update {
                $0.setEndpoint("hex", on: ResolverFixture.vnet, EndpointRecord(name: try! HostLabel("hex"), ipv6: [IPv6Address("fd00::abcd:ef01")!]))
            }
            for (address, target) in [("fd00::6", "v6only.vnet."), ("fd00::abcd:ef01", "hex.vnet.")] {
                let upper = Self.reverseName(address, uppercase: true)
                let query = try LDNSQuery.make(upper, type: 12)
                #expect(query.contains(UInt8(ascii: "D")) && query.contains(UInt8(ascii: "F")), "the query carries capitals")
                let reply = try LDNSReply(#require(try s.client.udp(query)))
                #expect(reply.rcode == 0 && reply.authoritative && reply.answers.map(\.data) == [target], "\(address): \(reply)")
                #expect(reply.questionName == upper + ".", "the client's spelling is kept")
                // Mixed case too.
                let mixed = String(Self.reverseName(address).enumerated().map { $0.offset % 4 == 0 ? Character($0.element.uppercased()) : $0.element })
                let mixedReply = try LDNSReply(#require(try s.client.udp(LDNSQuery.make(mixed, type: 12))))
                #expect(mixedReply.answers.map(\.data) == [target], "\(mixed): \(mixedReply)")
            }
            let unused = try LDNSReply(#require(try s.client.udp(LDNSQuery.make(Self.reverseName("fd00::beef", uppercase: true), type: 12))))
            #expect(unused.rcode == 3 && unused.authoritative, "\(unused)")
            #expect(upstream.queriedNames.isEmpty, "forwarded: \(upstream.queriedNames)")
        }
    }

    @Test("malformed ip6.arpa names (two-character label, non-hex nibble, 31 or 33 nibbles) are not ours: forwarded")
    func malformedReverseNamesFallThrough() throws {
        try withScriptedFixture { fx, upstream in
            let s = try fx.sandbox(on: [ResolverFixture.vnet])
            // All under vnet's prefix fd00::/64 and so would be NXDOMAIN if read as an address.
            let nibbles = Self.reverseName("fd00::6").split(separator: ".").prefix(32).map(String.init)
            let suffix = "ip6.arpa"
            var twoChars = nibbles
            twoChars[0] = "06"
            var nonHex = nibbles
            nonHex[3] = "g"
            let cases = [
                (twoChars + [suffix]).joined(separator: "."),                  // 34 labels, one of two characters
                (nonHex + [suffix]).joined(separator: "."),                    // a nibble that is not hex
                (nibbles.dropFirst() + [suffix]).joined(separator: "."),       // 31 nibbles: 33 labels
                (["0"] + nibbles + [suffix]).joined(separator: "."),           // 33 nibbles: 35 labels
                (nibbles + ["ip7", "arpa"]).joined(separator: "."),            // not ip6.arpa
            ]
            for name in cases {
                let reply = try LDNSReply(#require(try s.client.udp(LDNSQuery.make(name, type: 12))))
                #expect(reply.rcode == 0 && !reply.authoritative && reply.addresses == ["203.0.113.8"], "\(name): \(reply)")
                #expect(upstream.queriedNames.contains(name), "\(name) was not forwarded")
            }
            #expect(upstream.queriedNames.count == cases.count)
        }
    }

    @Test("records file: a name on an IPv4 line and an IPv6 line answers A, AAAA, ANY and both PTRs")
    func recordsFileDualStack() throws {
        let endpoints = try RecordsFile.parse("""
            # dual stack: one line per family
            10.7.0.2 r1 both
            fd00:7::2 r1 both
            fd00:7::3 r6
            10.7.0.4 r4

            """)
        #expect(endpoints.count == 4)
        try withFixture { fx in
            let network = try HostLabel("file")
            fx.store.update {
                $0.setNetwork(network, subnets: [try! IPSubnet(parsing: "10.7.0.0/24"), try! IPSubnet(parsing: "fd00:7::/64")])
                $0.replaceEndpoints(on: network, with: endpoints)
            }
            let s = try fx.sandbox(on: [network])
            for name in ["r1", "r1.file", "both", "BOTH.file"] {
                #expect(try LDNSReply(#require(try s.client.udp(LDNSQuery.make(name, type: 1)))).addresses == ["10.7.0.2"], "\(name)")
                #expect(try LDNSReply(#require(try s.client.udp(LDNSQuery.make(name, type: 28)))).addresses == ["fd00:7::2"], "\(name)")
                #expect(Set(try LDNSReply(#require(try s.client.udp(LDNSQuery.make(name, type: 255)))).addresses) == ["10.7.0.2", "fd00:7::2"])
            }
            #expect(try Dig.run(s.name, ["AAAA", "r1.file"]).addresses == ["fd00:7::2"])
            #expect(try Dig.run(s.name, ["-x", "fd00:7::2"]).answers.map(\.data) == ["r1.file."])
            #expect(try Dig.run(s.name, ["-x", "10.7.0.2"]).answers.map(\.data) == ["r1.file."])
            let noA = try LDNSReply(#require(try s.client.udp(LDNSQuery.make("r6.file", type: 1))))
            #expect(noA.rcode == 0 && noA.answers.isEmpty && noA.authorityRecords.map(\.type) == [6])
            let noAAAA = try LDNSReply(#require(try s.client.udp(LDNSQuery.make("r4", type: 28))))
            #expect(noAAAA.rcode == 0 && noAAAA.answers.isEmpty && noAAAA.authorityRecords.map(\.type) == [6])
            #expect(try Dig.run(s.name, ["-x", "fd00:7::99"]).status == "NXDOMAIN")
        }
    }

    @Test("NetworkZone.covers: both families, at the prefixes' edges, /0 and host routes")
    func zoneCovers() throws {
        func zone(_ subnets: [String]) -> NetworkZone {
            NetworkZone(name: try! HostLabel("z"), subnets: subnets.map { try! IPSubnet(parsing: $0) }, endpoints: [EndpointRecord]())
        }
        let dual = zone(["10.1.0.0/16", "fd00:1::/64", "fd00:9::1/128"])
        #expect(dual.covers(IPv4Address(10, 1, 0, 0)) && dual.covers(IPv4Address(10, 1, 255, 255)))
        #expect(!dual.covers(IPv4Address(10, 0, 255, 255)) && !dual.covers(IPv4Address(10, 2, 0, 0)))
        #expect(dual.covers(IPv6Address("fd00:1::")!) && dual.covers(IPv6Address("fd00:1::ffff:ffff:ffff:ffff")!))
        #expect(!dual.covers(IPv6Address("fd00:0:0:ffff:ffff:ffff:ffff:ffff")!) && !dual.covers(IPv6Address("fd00:1:0:1::")!))
        #expect(dual.covers(IPv6Address("fd00:9::1")!) && !dual.covers(IPv6Address("fd00:9::2")!))
        // The families do not mix: an IPv4 value in the low bits of an IPv6 address is not covered.
        #expect(!dual.covers(IPv6Address("::10.1.0.1")!) && !dual.covers(IPv6Address("::ffff:10.1.0.1")!))
        #expect(dual.covers(IPAddress("10.1.2.3")!) && dual.covers(IPAddress("fd00:1::5")!) && !dual.covers(IPAddress("fd00:2::5")!))
        let v4Only = zone(["192.168.0.0/24"])
        #expect(!v4Only.covers(IPv6Address("fd00::1")!) && !v4Only.covers(IPv6Address("::")!))
        let everything = zone(["0.0.0.0/0", "::/0"])
        #expect(everything.covers(IPv4Address(255, 255, 255, 255)) && everything.covers(IPv6Address("ffff::1")!))
        #expect(zone([]).covers(IPv4Address(10, 1, 0, 1)) == false && zone([]).covers(IPv6Address("fd00:1::1")!) == false)
        #expect(dual.subnets.map(\.description) == ["10.1.0.0/16", "fd00:1::/64", "fd00:9::1/128"])
    }
}
