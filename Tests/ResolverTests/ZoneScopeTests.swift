import Addressing
import Foundation
import Resolver
import Testing

/// Issue 15: a cluster network's whole domain, apex included, is answered locally, and every
/// negative answer about it carries the zone's SOA (RFC 2308). ldns reads every reply.
@Suite("DNS scope: networks' domains, apex and SOA", .timeLimit(.minutes(5)))
struct ZoneScopeTests {
    /// The SOA dnsd synthesizes for `zone`, as ldns reads it (names compared without case: the
    /// owner points at the question, which keeps the client's spelling).
    private func expectSOA(_ record: LDNSReply.Record?, zone: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(record?.type == 6 && record?.owner.lowercased() == "\(zone).", "\(String(describing: record))", sourceLocation: sourceLocation)
        #expect(record?.fields.map { $0.lowercased() } == ["\(zone).", "hostmaster.\(zone).", "1", "3600", "600", "86400", "10"],
                "\(String(describing: record))", sourceLocation: sourceLocation)
        #expect(record?.ttl == 10, sourceLocation: sourceLocation)
    }

    @Test("NXDOMAIN and NODATA for a network's names carry its SOA in the authority section")
    func negativeAnswersCarrySOA() throws {
        try withFixture { fx in
            let s = try fx.sandbox(on: [ResolverFixture.vnet])
            for (name, type, rcode, zone) in [("nosuch.vnet", UInt16(1), 3, "vnet"), ("a.b.vnet", 1, 3, "vnet"), ("c04.net2", 1, 3, "net2"),
                                              ("c01.vnet", 28, 0, "vnet"), ("c01", 15, 0, "vnet"), ("C01.VNET", 16, 0, "vnet")] {
                let reply = try LDNSReply(#require(try s.client.udp(LDNSQuery.make(name, type: type))))
                #expect(reply.rcode == rcode && reply.authoritative && reply.answers.isEmpty, "\(name): \(reply)")
                #expect(reply.authorityRecords.count == 1, "\(name)")
                expectSOA(reply.authorityRecords.first, zone: zone.lowercased())
            }
            // Positive answers carry none.
            #expect(try LDNSReply(#require(try s.client.udp(LDNSQuery.make("c01.vnet")))).authorities == 0)
        }
    }

    @Test("a network's own name: SOA and NODATA on it (NS, A...), NXDOMAIN from a sandbox not on it; never forwarded")
    func apex() throws {
        try withFixture { fx in
            let s = try fx.sandbox(on: [ResolverFixture.vnet])
            let soa = try LDNSReply(#require(try s.client.udp(LDNSQuery.make("vnet", type: 6))))
            #expect(soa.rcode == 0 && soa.authoritative && soa.answers.count == 1)
            expectSOA(soa.answers.first, zone: "vnet")
            for type: UInt16 in [1, 2, 28, 15] {
                let reply = try LDNSReply(#require(try s.client.udp(LDNSQuery.make("vnet.", type: type))))
                #expect(reply.rcode == 0 && reply.authoritative && reply.answers.isEmpty, "type \(type): \(reply)")
                expectSOA(reply.authorityRecords.first, zone: "vnet")
            }
            let other = try LDNSReply(#require(try s.client.udp(LDNSQuery.make("net2", type: 1))))
            #expect(other.rcode == 3 && other.authoritative)
            expectSOA(other.authorityRecords.first, zone: "net2")
            #expect(!fx.upstream!.sawQuery(for: "vnet") && !fx.upstream!.sawQuery(for: "net2"))
            // dig agrees.
            #expect(try Dig.run(s.name, ["SOA", "vnet"]).status == "NOERROR")
            #expect(try Dig.run(s.name, ["net2"]).status == "NXDOMAIN")
        }
    }

    @Test("a network without endpoints is in scope: its names and its subnet's reverse names are NXDOMAIN, not forwarded")
    func emptyNetwork() throws {
        try withFixture { fx in
            fx.store.update { $0.setNetwork(try! HostLabel("other"), subnets: [try! IPSubnet(parsing: "192.168.19.0/24")]) }
            let s = try fx.sandbox(on: [ResolverFixture.vnet])
            for name in ["x.other", "c03.other", "other", "5.19.168.192.in-addr.arpa"] {
                let reply = try LDNSReply(#require(try s.client.udp(LDNSQuery.make(name, type: name.hasSuffix("arpa") ? 12 : 1))))
                #expect(reply.rcode == 3 && reply.authoritative, "\(name): \(reply)")
            }
            #expect(!fx.upstream!.sawQuery(for: "x.other") && !fx.upstream!.sawQuery(for: "other"))
        }
    }
}
