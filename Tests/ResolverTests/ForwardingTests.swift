import Addressing
import Foundation
import TestSupport
import Netns
import Resolver
import Testing

/// Names dnsd does not own go to real upstream servers.
@Suite("Forwarding to upstream servers", .timeLimit(.minutes(5)))
struct ForwardingTests {
    @Test("other names are forwarded; the answer is relayed with the client's ID")
    func forwards() throws {
        try withFixture { fx in
            let s = try fx.sandbox(on: [ResolverFixture.vnet])
            let dig = try Dig.run(s.name, ["outside.test"])
            #expect(dig.status == "NOERROR")
            #expect(dig.addresses == ["203.0.113.7"])
            #expect(fx.upstream!.sawQuery(for: "outside.test"))
            let reply = try LDNSReply(#require(try s.client.udp(LDNSQuery.make("outside.test", id: 0x4242))))
            #expect(reply.id == 0x4242)
            #expect(reply.addresses == ["203.0.113.7"])
            // A single label dnsd does not know is forwarded too.
            _ = try Dig.run(s.name, ["unknownhost"])
            #expect(fx.upstream!.sawQuery(for: "unknownhost"))
        }
    }

    @Test("TCP client, truncated UDP upstream answer: retried over TCP upstream")
    func tcpRetryOnTC() throws {
        try withFixture { fx in
            let s = try fx.sandbox(on: [ResolverFixture.vnet])
            // No EDNS: 60 A records do not fit 512 bytes, so dnsmasq truncates over UDP.
            let replies = try s.client.tcp([LDNSQuery.make("big.test", id: 7)])
            let reply = try LDNSReply(#require(replies.first))
            #expect(reply.id == 7)
            #expect(!reply.truncated)
            #expect(reply.addresses.count == 60)
            // Over UDP the client gets the TC answer and dig retries over TCP, through dnsd again.
            let udp = try LDNSReply(#require(try s.client.udp(LDNSQuery.make("big.test"))))
            #expect(udp.truncated)
            #expect(try Dig.run(s.name, ["+noedns", "big.test"]).addresses.count == 60)
        }
    }

    @Test("dead first upstream: the next one answers")
    func failover() throws {
        try withFixture(configure: { config in
            // A port nothing listens on (ICMP port unreachable), then the real one.
            let dead = SocketAddress(IPv4Address(127, 0, 0, 1), port: try! Dnsmasq.freePort())
            config.upstreams.insert(dead, at: 0)
        }) { fx in
            let s = try fx.sandbox(on: [ResolverFixture.vnet])
            let dig = try Dig.run(s.name, ["outside.test"])
            #expect(dig.addresses == ["203.0.113.7"])
        }
    }

    @Test("silent upstream: next one answers after the per-try timeout")
    func silentUpstreamTimeout() throws {
        let blackHole = try BlackHole()
        defer { blackHole.close() }
        try withFixture(configure: { config in
            config.upstreams.insert(blackHole.address, at: 0)
        }) { fx in
            let s = try fx.sandbox(on: [ResolverFixture.vnet])
            let start = Date()
            let reply = try LDNSReply(#require(try s.client.udp(LDNSQuery.make("outside.test"), timeout: 3)))
            #expect(reply.addresses == ["203.0.113.7"])
            #expect(Date().timeIntervalSince(start) >= 0.3, "the black hole was tried first")
        }
    }

    @Test("all upstreams dead or silent: SERVFAIL")
    func allFail() throws {
        let blackHole = try BlackHole()
        defer { blackHole.close() }
        try withFixture(upstream: false, configure: { config in
            config.upstreams = [SocketAddress(IPv4Address(127, 0, 0, 1), port: try! Dnsmasq.freePort()), blackHole.address]
        }) { fx in
            let s = try fx.sandbox(on: [ResolverFixture.vnet])
            let dig = try Dig.run(s.name, ["outside.test"])
            #expect(dig.status == "SERVFAIL")
            let reply = try LDNSReply(#require(try s.client.udp(LDNSQuery.make("outside.test", id: 99), timeout: 3)))
            #expect(reply.rcode == 2 && reply.id == 99)
            // Local names never depend on the upstream.
            #expect(try Dig.run(s.name, ["c01.vnet"]).addresses == ["192.168.0.2"])
        }
    }

    @Test("no upstream configured: SERVFAIL for outside names, local names still answer")
    func noUpstream() throws {
        try withFixture(upstream: false) { fx in
            let s = try fx.sandbox(on: [ResolverFixture.vnet])
            #expect(try Dig.run(s.name, ["outside.test"]).status == "SERVFAIL")
            #expect(try Dig.run(s.name, ["c02"]).addresses == ["192.168.0.3"])
        }
    }

    @Test("in-flight forwards are bounded: past the cap, SERVFAIL at once")
    func boundedInFlight() throws {
        let blackHole = try BlackHole()
        defer { blackHole.close() }
        try withFixture(upstream: false, configure: { config in
            config.upstreams = [blackHole.address]
            config.maxInFlightForwards = 3
            config.upstreamTimeoutMilliseconds = 1500
        }) { fx in
            let s = try fx.sandbox(on: [ResolverFixture.vnet])
            let queries = try (0..<8).map { try LDNSQuery.make("name\($0).outside.test", id: UInt16(1000 + $0)) }
            // Within 1 s only the 5 over the cap are answered (SERVFAIL); the 3 in flight wait.
            let answers = try s.client.udpBurst(queries, timeout: 1.0).map { try LDNSReply($0) }
            #expect(answers.count == 5)
            #expect(answers.allSatisfy { $0.rcode == 2 })
            #expect(Set(answers.map(\.id)) == Set((1003..<1008).map { UInt16($0) }))
        }
    }

    @Test("upstream in its own namespace across a veth on the test underlay")
    func upstreamInNamespace() throws {
        let names = NamedNamespaces()
        let thread = try NamespaceThread()
        let upstreamNS = "\(TestRun.namePrefix)up"
        let hostSide = "dt\(TestRun.token)h"
        TestRun.record(link: hostSide)
        try names.create(upstreamNS, on: thread)
        defer {
            try? Shell.run(["ip", "link", "del", hostSide])
            try? names.delete(upstreamNS)
            thread.shutdown()
        }
        try Shell.check(["ip", "link", "add", hostSide, "type", "veth", "peer", "name", "eth0", "netns", upstreamNS])
        try Shell.check(["ip", "addr", "add", "198.18.0.201/30", "dev", hostSide])
        try Shell.check(["ip", "link", "set", hostSide, "up"])
        try Shell.check(["ip", "-n", upstreamNS, "addr", "add", "198.18.0.202/30", "dev", "eth0"])
        try Shell.check(["ip", "-n", upstreamNS, "link", "set", "eth0", "up"])
        let dnsmasq = try Dnsmasq(address: "198.18.0.202", netns: upstreamNS)
        defer { dnsmasq.stop() }
        try withFixture(upstream: false, configure: { config in
            config.upstreams = [SocketAddress(IPv4Address(198, 18, 0, 202), port: dnsmasq.port)]
        }) { fx in
            let s = try fx.sandbox(on: [ResolverFixture.vnet])
            #expect(try Dig.run(s.name, ["outside.test"]).addresses == ["203.0.113.7"])
            #expect(dnsmasq.sawQuery(for: "outside.test"))
        }
    }
}

/// A UDP socket on loopback that never answers: an upstream that has gone silent.
struct BlackHole {
    let fd: Int32
    let address: SocketAddress

    init() throws {
        let port = try Dnsmasq.freePort()
        fd = try loopbackUDPSocket(port: port, what: "black hole")
        address = SocketAddress(IPv4Address(127, 0, 0, 1), port: port)
    }

    func close() { Glibc.close(fd) }
}
