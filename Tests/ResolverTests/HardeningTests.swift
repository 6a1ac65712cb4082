import Addressing
import Foundation
import Netns
import Resolver
import Synchronization
import TestSupport
import Testing

/// Regressions of issue 11 on the responder: forwarding that a reused slot or a forger cannot
/// fool, and TCP clients that cannot grow the daemon's memory or lock others out.
@Suite("Hardening: forwarding and TCP clients", .timeLimit(.minutes(5)))
struct ResolverHardeningTests {
    @Test("a reused forwarding slot gets its own deadline: a slow answer within the timeout is relayed")
    func reusedSlotDeadline() throws {
        let upstream = try ScriptedUpstream { name in
            name == "slow.test" ? .answer(IPv4Address(203, 0, 113, 9), after: 1.0) : .answer(IPv4Address(203, 0, 113, 8), after: 0)
        }
        defer { upstream.close() }
        try withFixture(upstream: false, configure: { config in
            config.upstreams = [upstream.address]
            config.upstreamTimeoutMilliseconds = 3000
        }) { fx in
            let s = try fx.sandbox(on: [ResolverFixture.vnet])
            let fast = try LDNSReply(#require(try s.client.udp(LDNSQuery.make("fast.test", id: 1))))
            #expect(fast.addresses == ["203.0.113.8"])
            // The fast query's deadline (3 s after it was sent) is still queued when the slow
            // query takes the same slot 2.4 s later; it must not cut the slow one (answered
            // after 1 s) short.
            Thread.sleep(forTimeInterval: 2.4)
            let start = Date()
            let slow = try LDNSReply(#require(try s.client.udp(LDNSQuery.make("slow.test", id: 2), timeout: 5)))
            #expect(slow.rcode == 0, "SERVFAIL after \(Date().timeIntervalSince(start)) s")
            #expect(slow.addresses == ["203.0.113.9"])
        }
    }

    @Test("forwarded queries leave from many source ports, not one")
    func randomSourcePorts() throws {
        let upstream = try ScriptedUpstream { _ in .answer(IPv4Address(203, 0, 113, 8), after: 0) }
        defer { upstream.close() }
        try withFixture(upstream: false, configure: { $0.upstreams = [upstream.address] }) { fx in
            let s = try fx.sandbox(on: [ResolverFixture.vnet])
            for i in 0..<40 {
                let reply = try LDNSReply(#require(try s.client.udp(LDNSQuery.make("n\(i).test", id: UInt16(i)))))
                #expect(reply.addresses == ["203.0.113.8"])
            }
            let ports = upstream.sourcePorts
            #expect(ports.count == 40)
            // 40 picks from a pool of 16 random ports: one port (the old behaviour) or a handful
            // means the pool is not used.
            #expect(Set(ports).count >= 8, "\(Set(ports).count) distinct source ports")
        }
    }

    @Test("forged answers are ignored: another port, a wrong ID, the name in another case; the real one is relayed")
    func forgedAnswers() throws {
        let forged = IPv4Address(6, 6, 6, 6), real = IPv4Address(203, 0, 113, 7)
        let upstream = try ScriptedUpstream { name in
            let action: ScriptedUpstream.Action
            switch name {
            case "port.test": action = .forgedThenAnswer([.fromOtherPort(forged)], real, after: 0.1)
            case "id.test": action = .forgedThenAnswer([.wrongID(forged)], real, after: 0.1)
            case "case.test": action = .forgedThenAnswer([.otherCase(forged)], real, after: 0.1)
            default: action = .silent
            }
            return action
        }
        defer { upstream.close() }
        try withFixture(upstream: false, configure: { $0.upstreams = [upstream.address] }) { fx in
            let s = try fx.sandbox(on: [ResolverFixture.vnet])
            for name in ["port.test", "id.test", "CaSe.test"] {
                let reply = try LDNSReply(#require(try s.client.udp(LDNSQuery.make(name, id: 77)), "no answer for \(name)"))
                #expect(reply.id == 77)
                #expect(reply.addresses == ["203.0.113.7"], "\(name): \(reply.addresses)")
            }
        }
    }

    @Test("a TCP client that pipelines queries and never reads: the responder stops reading it; others are served")
    func tcpClientNeverReads() throws {
        try withFixture { fx in
            let s = try fx.sandbox(on: [ResolverFixture.vnet])
            let query = try LDNSQuery.make("c01.vnet", id: 5)
            let framed = [UInt8(query.count >> 8), UInt8(query.count & 0xFF)] + query
            var chunk: [UInt8] = []
            while chunk.count + framed.count <= 4096 { chunk += framed }
            let fd = try s.client.connectTCP(sendTimeout: 2)
            defer { close(fd) }
            var small: Int32 = 65536
            setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, socklen_t(MemoryLayout<Int32>.size))
            // 16 MiB of queries, paced in 4 KiB writes a millisecond apart (each answer is longer than its query). A
            // responder that reads everything and queues the answers takes all of it; one that
            // stops reading while its answers are not taken stalls the sender (send times out)
            // once the kernel buffers are full.
            var sent = 0
            outer: for round in 0..<(16 << 20) / chunk.count {
                var offset = 0
                while offset < chunk.count {
                    let n = chunk.withUnsafeBytes { send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
                    if n <= 0 { break outer }
                    offset += n
                    sent += n
                }
                _ = round
                usleep(1000)
            }
            print("FIGURE TCP client that never reads: the responder took \(sent >> 10) KiB of its queries before it stopped reading")
            #expect(sent < 8 << 20, "the responder took \(sent >> 10) KiB of queries from a client that reads nothing")
            // Other clients of the same sandbox are answered meanwhile, over UDP and TCP.
            #expect(try LDNSReply(#require(try s.client.udp(LDNSQuery.make("c02.vnet")))).addresses == ["192.168.0.3"])
            #expect(try s.client.tcp([LDNSQuery.make("c03.vnet")]).count == 1)
        }
    }

    @Test("a pipelining client that reads gets every answer, also past the point where its output backed up")
    func tcpPipelinedBurst() throws {
        try withFixture { fx in
            let s = try fx.sandbox(on: [ResolverFixture.vnet])
            let queries = try (0..<6000).map { try LDNSQuery.make("c0\($0 % 3 + 1).vnet", id: UInt16($0)) }
            let answers = try s.client.tcp(queries, timeout: 10, readConcurrently: true)
            #expect(answers.count == queries.count)
            #expect(Set(answers.map { UInt16($0[0]) << 8 | UInt16($0[1]) }).count == queries.count)
        }
    }

    @Test("idle TCP connections at the cap: the longest-idle one is closed and the newcomer answered at once")
    func idleConnectionsEvicted() throws {
        try withFixture(configure: { $0.maxTCPConnectionsPerSandbox = 4 }) { fx in
            let s = try fx.sandbox(on: [ResolverFixture.vnet])
            var idle: [Int32] = []
            defer { idle.forEach { close($0) } }
            for _ in 0..<4 {
                idle.append(try s.client.connectTCP(sendTimeout: 1))
                usleep(20_000)
            }
            let start = Date()
            let answers = try s.client.tcp([LDNSQuery.make("c01.vnet", id: 9)], timeout: 2)
            #expect(answers.count == 1, "the newcomer was not served")
            #expect(Date().timeIntervalSince(start) < 1)
            // The oldest idle connection was the one closed (a read sees end of file).
            var byte: UInt8 = 0
            var tv = timeval(tv_sec: 1, tv_usec: 0)
            setsockopt(idle[0], SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            #expect(recv(idle[0], &byte, 1, 0) == 0)
        }
    }
}
