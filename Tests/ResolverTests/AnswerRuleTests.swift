import Addressing
import Foundation
import Resolver
import Testing

/// Every row of DESIGN.md §4, each queried with real `dig` inside a real namespace and with a
/// raw query whose reply libldns decodes.
@Suite("DNS answer rules (DESIGN.md §4)", .timeLimit(.minutes(5)))
struct AnswerRuleTests {
    @Test("name, name.net, alias, alias.net: A, authoritative, TTL <= 10, any case, trailing dot or not")
    func namesAnswer() throws {
        try withFixture { fx in
            let s = try fx.sandbox(on: [ResolverFixture.vnet])
            for name in ["c01", "c01.vnet", "db", "db.vnet", "C01.VNet", "c01.vnet.", "Db."] {
                let dig = try Dig.run(s.name, [name])
                #expect(dig.status == "NOERROR", "\(name)")
                #expect(dig.flags.contains("aa"), "\(name)")
                #expect(dig.addresses == ["192.168.0.2"], "\(name): \(dig.output)")
                #expect(dig.answers.allSatisfy { $0.ttl <= 10 && $0.ttl > 0 })
                let reply = try LDNSReply(#require(try s.client.udp(LDNSQuery.make(name))))
                #expect(reply.rcode == 0 && reply.authoritative)
                #expect(reply.addresses == ["192.168.0.2"])
                #expect(reply.answers.allSatisfy { $0.ttl == 10 })
            }
        }
    }

    @Test("AAAA where the endpoint has IPv6")
    func aaaa() throws {
        try withFixture { fx in
            let s = try fx.sandbox(on: [ResolverFixture.vnet])
            let dig = try Dig.run(s.name, ["AAAA", "c02.vnet"])
            #expect(dig.status == "NOERROR")
            #expect(dig.addresses == ["fd00::3"])
            let reply = try LDNSReply(#require(try s.client.udp(LDNSQuery.make("api", type: 28))))
            #expect(reply.addresses == ["fd00::3"])
            #expect(reply.answers.first?.owner == "api.")
        }
    }

    @Test("same name, other type (AAAA on v4-only, MX, TXT): NODATA, never NXDOMAIN", arguments: ["AAAA", "MX", "TXT", "SRV"])
    func nodata(type: String) throws {
        try withFixture { fx in
            let s = try fx.sandbox(on: [ResolverFixture.vnet])
            let dig = try Dig.run(s.name, [type, "c01.vnet"])
            #expect(dig.status == "NOERROR")
            #expect(dig.answers.isEmpty)
            #expect(dig.flags.contains("aa"))
            let code: UInt16 = ["AAAA": 28, "MX": 15, "TXT": 16, "SRV": 33][type]!
            let reply = try LDNSReply(#require(try s.client.udp(LDNSQuery.make("c01", type: code))))
            #expect(reply.rcode == 0)
            #expect(reply.answers.isEmpty)
        }
    }

    @Test("several endpoints share an alias: all addresses, order rotated between answers")
    func sharedAliasRotates() throws {
        try withFixture { fx in
            let s = try fx.sandbox(on: [ResolverFixture.vnet])
            var orders: Set<[String]> = []
            for _ in 0..<4 {
                let dig = try Dig.run(s.name, ["web.vnet"])
                #expect(Set(dig.addresses) == ["192.168.0.3", "192.168.0.4"])
                orders.insert(dig.addresses)
            }
            #expect(orders.count == 2, "both orders seen: \(orders)")
            let first = try LDNSReply(#require(try s.client.udp(LDNSQuery.make("web", id: 1)))).addresses
            let second = try LDNSReply(#require(try s.client.udp(LDNSQuery.make("web", id: 2)))).addresses
            #expect(first.count == 2 && first != second)
        }
    }

    @Test("PTR for an endpoint address on an attached network: name.net.")
    func ptr() throws {
        try withFixture { fx in
            let s = try fx.sandbox(on: [ResolverFixture.vnet])
            let dig = try Dig.run(s.name, ["-x", "192.168.0.3"])
            #expect(dig.status == "NOERROR")
            #expect(dig.answers.map(\.data) == ["c02.vnet."])
            let v6 = try Dig.run(s.name, ["-x", "fd00::3"])
            #expect(v6.answers.map(\.data) == ["c02.vnet."])
            let reply = try LDNSReply(#require(try s.client.udp(LDNSQuery.make("4.0.168.192.in-addr.arpa", type: 12))))
            #expect(reply.answers.map(\.data) == ["c03.vnet."])
            #expect(reply.authoritative)
            // An unused address inside an attached subnet is internal: NXDOMAIN, not forwarded.
            let unused = try Dig.run(s.name, ["-x", "192.168.0.77"])
            #expect(unused.status == "NXDOMAIN")
            #expect(fx.upstream?.sawQuery(for: "77.0.168.192.in-addr.arpa") == false)
        }
    }

    @Test("unknown name inside an attached network's domain: NXDOMAIN, never forwarded")
    func unknownInDomain() throws {
        try withFixture { fx in
            let s = try fx.sandbox(on: [ResolverFixture.vnet])
            for name in ["nosuch.vnet", "a.c01.vnet"] {
                let dig = try Dig.run(s.name, [name])
                #expect(dig.status == "NXDOMAIN", "\(name)")
                #expect(dig.flags.contains("aa"))
                #expect(fx.upstream?.sawQuery(for: name) == false)
            }
            let reply = try LDNSReply(#require(try s.client.udp(LDNSQuery.make("NoSuch.VNET", type: 28))))
            #expect(reply.rcode == 3)
        }
    }

    @Test("a name under a network the sandbox is not attached to: NXDOMAIN, not forwarded, no leakage")
    func noLeakage() throws {
        try withFixture { fx in
            let onVnet = try fx.sandbox(on: [ResolverFixture.vnet])
            let onNet2 = try fx.sandbox(on: [ResolverFixture.net2])
            // Each sees its own network...
            #expect(try Dig.run(onVnet.name, ["c01.vnet"]).addresses == ["192.168.0.2"])
            #expect(try Dig.run(onNet2.name, ["c04.net2"]).addresses == ["192.168.2.2"])
            #expect(try Dig.run(onNet2.name, ["secret"]).addresses == ["192.168.2.2"])
            // ...and nothing of the other, by any spelling.
            for name in ["c04.net2", "secret.net2"] {
                let dig = try Dig.run(onVnet.name, [name])
                #expect(dig.status == "NXDOMAIN" && dig.answers.isEmpty, "\(name)")
                #expect(fx.upstream?.sawQuery(for: name) == false)
            }
            for name in ["c01.vnet", "db.vnet"] {
                #expect(try Dig.run(onNet2.name, [name]).status == "NXDOMAIN")
            }
            // A bare name of the other network is not answered from its records: it goes
            // upstream, which does not know it.
            let bare = try Dig.run(onNet2.name, ["c01"])
            // (dnsmasq without upstreams refuses what it does not know; dnsd relays that.)
            #expect(bare.status == "REFUSED" && bare.answers.isEmpty, "\(bare.output)")
            #expect(fx.upstream?.sawQuery(for: "c01") == true, "answered without asking the upstream")
            // PTR of the other network's endpoint: internal address, NXDOMAIN.
            let ptr = try Dig.run(onVnet.name, ["-x", "192.168.2.2"])
            #expect(ptr.status == "NXDOMAIN" && ptr.answers.isEmpty)
        }
    }

    @Test("a sandbox on two networks resolves names of both")
    func twoNetworks() throws {
        try withFixture { fx in
            let s = try fx.sandbox(on: [ResolverFixture.vnet, ResolverFixture.net2])
            #expect(try Dig.run(s.name, ["c04.net2"]).addresses == ["192.168.2.2"])
            #expect(try Dig.run(s.name, ["c01"]).addresses == ["192.168.0.2"])
            #expect(try Dig.run(s.name, ["-x", "192.168.2.2"]).answers.map(\.data) == ["c04.net2."])
        }
    }

    @Test("opcode other than QUERY: NOTIMP")
    func notImplemented() throws {
        try withFixture { fx in
            let s = try fx.sandbox(on: [ResolverFixture.vnet])
            var query = try LDNSQuery.make("c01.vnet")
            query[2] |= 0x10  // opcode 2 (STATUS)
            let reply = try #require(try s.client.udp(query))
            #expect(reply[3] & 0x0F == 4)
            #expect(reply[2] & 0x80 != 0)
            let dig = try Dig.run(s.name, ["+opcode=notify", "c01.vnet"])
            #expect(dig.status == "NOTIMP")
        }
    }

    @Test("class other than IN: REFUSED", arguments: ["CH", "HS"])
    func refusedClass(recordClass: String) throws {
        try withFixture { fx in
            let s = try fx.sandbox(on: [ResolverFixture.vnet])
            let dig = try Dig.run(s.name, ["-c", recordClass, "TXT", "version.bind"])
            #expect(dig.status == "REFUSED")
            let reply = try LDNSReply(#require(try s.client.udp(LDNSQuery.make("c01.vnet", recordClass: 3))))
            #expect(reply.rcode == 5)
        }
    }

    @Test("zone transfers are refused")
    func zoneTransfer() throws {
        try withFixture { fx in
            let s = try fx.sandbox(on: [ResolverFixture.vnet])
            let replies = try s.client.tcp([LDNSQuery.make("vnet", type: 252)])
            #expect(try LDNSReply(#require(replies.first)).rcode == 5)
        }
    }
}
