import Addressing
import Foundation
import TestSupport
import Netns
import Resolver
import Testing

/// EDNS0 sizes, truncation, TCP, malformed packets, and what serving does to the namespace.
@Suite("Transport: EDNS0, TC, TCP, malformed input, listener lifecycle", .timeLimit(.minutes(5)))
struct TransportTests {
    @Test("EDNS0: the answer carries an OPT; without EDNS no OPT")
    func ednsOPT() throws {
        try withFixture { fx in
            let s = try fx.sandbox(on: [ResolverFixture.vnet])
            let with = try LDNSReply(#require(try s.client.udp(LDNSQuery.make("c01.vnet", udpSize: 4096))))
            #expect(with.ednsUDPSize == 1232)
            let without = try LDNSReply(#require(try s.client.udp(LDNSQuery.make("c01.vnet"))))
            #expect(without.ednsUDPSize == nil)
            #expect(try Dig.run(s.name, ["c01.vnet"]).output.contains("; EDNS: version: 0"))
        }
    }

    @Test("EDNS version above 0: BADVERS")
    func badVersion() throws {
        try withFixture { fx in
            let s = try fx.sandbox(on: [ResolverFixture.vnet])
            let reply = try LDNSReply(#require(try s.client.udp(LDNSQuery.make("c01.vnet", udpSize: 1232, ednsVersion: 1))))
            #expect(reply.extendedRcode == 16)
            #expect(reply.ednsUDPSize != nil)
        }
    }

    @Test("TC when the answer does not fit the client's UDP size; the full answer over TCP")
    func truncationAndTCP() throws {
        try withFixture { fx in
            let s = try fx.sandbox(on: [ResolverFixture.vnet])
            // 100 addresses: 1600+ bytes. Classic 512 and EDNS 1232 both truncate, and so does a
            // client advertising more than 1232: dnsd never sends a UDP answer over 1232 bytes
            // (fragmentation), and says so in its OPT.
            for size in [nil, UInt16(1232), UInt16(700), UInt16(4096), UInt16(65535)] as [UInt16?] {
                let bytes = try #require(try s.client.udp(LDNSQuery.make("many.vnet", udpSize: size)))
                let reply = try LDNSReply(bytes)
                #expect(reply.truncated, "size \(String(describing: size))")
                #expect(reply.answers.isEmpty)
                #expect(bytes.count <= 1232)
                if size != nil { #expect(reply.ednsUDPSize == 1232) }
            }
            // A 1232-byte-or-smaller answer to a client advertising 4096 is sent whole.
            let fits = try LDNSReply(#require(try s.client.udp(LDNSQuery.make("web.vnet", udpSize: 4096))))
            #expect(!fits.truncated && fits.addresses.count == 2)
            let tcp = try s.client.tcp([LDNSQuery.make("many.vnet")])
            let full = try LDNSReply(#require(tcp.first))
            #expect(!full.truncated)
            #expect(full.addresses.count == 100)
            // dig retries over TCP by itself after TC.
            let dig = try Dig.run(s.name, ["many.vnet"])
            #expect(dig.addresses.count == 100)
            #expect(dig.output.contains("Truncated, retrying in TCP mode"))
            // A small answer fits a small EDNS size.
            let small = try LDNSReply(#require(try s.client.udp(LDNSQuery.make("c02.vnet", udpSize: 512))))
            #expect(!small.truncated && small.addresses == ["192.168.0.3"])
        }
    }

    @Test("TCP: several pipelined queries on one connection, each answered")
    func tcpPipelined() throws {
        try withFixture { fx in
            let s = try fx.sandbox(on: [ResolverFixture.vnet])
            let queries = try ["c01", "c02.vnet", "nosuch.vnet", "db"].enumerated().map {
                try LDNSQuery.make($0.element, id: UInt16(100 + $0.offset))
            }
            let replies = try s.client.tcp(queries).map { try LDNSReply($0) }
            #expect(replies.count == 4)
            let byID = Dictionary(uniqueKeysWithValues: replies.map { ($0.id, $0) })
            #expect(byID[100]?.addresses == ["192.168.0.2"])
            #expect(byID[101]?.addresses == ["192.168.0.3"])
            #expect(byID[102]?.rcode == 3)
            #expect(byID[103]?.addresses == ["192.168.0.2"])
            #expect(try Dig.run(s.name, ["+tcp", "c03.vnet"]).addresses == ["192.168.0.4"])
        }
    }

    @Test("malformed packets: FORMERR when the header is readable, otherwise dropped; the responder keeps answering")
    func malformed() throws {
        try withFixture { fx in
            let s = try fx.sandbox(on: [ResolverFixture.vnet])
            let good = try LDNSQuery.make("c01.vnet", id: 0xBEEF)
            // Header only, question cut in half: FORMERR with the same ID.
            let cut = try #require(try s.client.udp(Array(good[0..<17])))
            #expect(cut[0] == 0xBE && cut[1] == 0xEF)
            #expect(cut[3] & 0x0F == 1)
            // Compression loop in the question: FORMERR.
            var loop = Array(good[0..<12])
            loop += [0xC0, 12, 0, 1, 0, 1]
            #expect(try #require(try s.client.udp(loop))[3] & 0x0F == 1)
            // Two questions: FORMERR.
            var two = good
            two[5] = 2
            #expect(try #require(try s.client.udp(two))[3] & 0x0F == 1)
            // Shorter than a header, or a response: no answer at all.
            #expect(try s.client.udp([1, 2, 3], timeout: 0.3) == nil)
            var response = good
            response[2] |= 0x80
            #expect(try s.client.udp(response, timeout: 0.3) == nil)
            // Garbage over TCP, then a good query on a new connection.
            _ = try s.client.tcp([[0xFF, 0xFF, 0xFF]], timeout: 0.5)
            #expect(try LDNSReply(#require(try s.client.udp(good))).addresses == ["192.168.0.2"])
            #expect(try Dig.run(s.name, ["c01.vnet"]).addresses == ["192.168.0.2"])
        }
    }

    @Test("records change while serving: new names answer, removed ones are gone")
    func liveUpdates() throws {
        try withFixture { fx in
            let s = try fx.sandbox(on: [ResolverFixture.vnet])
            fx.store.update {
                $0.setEndpoint("c09", on: ResolverFixture.vnet, EndpointRecord(name: try! .init("c09"), ipv4: [.init(192, 168, 0, 9)]))
                $0.removeEndpoint("c01", from: ResolverFixture.vnet)
            }
            #expect(try Dig.run(s.name, ["c09.vnet"]).addresses == ["192.168.0.9"])
            #expect(try Dig.run(s.name, ["c01.vnet"]).status == "NXDOMAIN")
            #expect(try Dig.run(s.name, ["db.vnet"]).status == "NXDOMAIN")
        }
    }

    @Test("one process serves many sandboxes; stopping one releases its sockets, so its namespace can die")
    func stopReleases() throws {
        try withFixture { fx in
            // Each sandbox gets a veth whose other end sits in a helper namespace: when a sandbox's
            // namespace is really destroyed, the kernel removes the pair and the end disappears.
            let peers = "\(TestRun.namePrefix)peers-\(UUID().uuidString.prefix(6))"
            try fx.namespaces.create(peers, on: fx.thread)
            defer { try? fx.namespaces.delete(peers) }
            var names: [String] = []
            var ids: [SandboxID] = []
            do {
                var clients: [SandboxClient] = []
                for i in 0..<20 {
                    let s = try fx.sandbox(on: [ResolverFixture.vnet])
                    names.append(s.name)
                    ids.append(s.id)
                    clients.append(s.client)
                    try Shell.check(["ip", "-n", peers, "link", "add", "v\(i)", "type", "veth", "peer", "name", "eth9", "netns", s.name])
                }
                for client in clients {
                    #expect(try LDNSReply(#require(try client.udp(LDNSQuery.make("c02")))).addresses == ["192.168.0.3"])
                }
            }  // the test's own handles on the namespaces are closed here
            // Stop serving all but the last; delete every namespace.
            for id in ids.dropLast() { fx.server.stopServing(id) }
            for name in names { try fx.namespaces.delete(name) }
            func peerExists(_ i: Int) throws -> Bool {
                try Shell.run(["ip", "-n", peers, "link", "show", "v\(i)"]).status == 0
            }
            // Namespace teardown is asynchronous in the kernel: give it a moment.
            var gone = 0
            for _ in 0..<100 {
                gone = try (0..<19).filter { try !peerExists($0) }.count
                if gone == 19 { break }
                usleep(20_000)
            }
            #expect(gone == 19, "every stopped sandbox's namespace was destroyed")
            // The control: the sandbox still served keeps its namespace (and veth) alive through
            // the responder's sockets, exactly the leak stopServing prevents.
            #expect(try peerExists(19))
            fx.server.stopServing(ids[19])
            var controlGone = false
            for _ in 0..<100 where !controlGone {
                controlGone = try !peerExists(19)
                if !controlGone { usleep(20_000) }
            }
            #expect(controlGone)
        }
    }

    @Test("redirect mode: an application in the sandbox owns port 53, dig at 127.0.0.11 still works")
    func redirectMode() throws {
        try withFixture { fx in
            let s = try fx.sandbox(on: [ResolverFixture.vnet], mode: .redirect)
            // An app binds 0.0.0.0:53 (UDP and TCP) in the sandbox and keeps it while dig runs:
            // possible because dnsd holds other ports.
            let app = try fx.thread.run(in: s.client.namespace) { () -> (udp: Int32, tcp: Int32, rc: Int32) in
                func bound(_ type: __socket_type) -> (Int32, Int32) {
                    let fd = socket(AF_INET, Int32(type.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
                    var address = sockaddr_in()
                    address.sin_family = sa_family_t(AF_INET)
                    address.sin_port = UInt16(53).bigEndian
                    let rc = withUnsafePointer(to: &address) {
                        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
                    }
                    return (fd, rc)
                }
                let (udp, udpRC) = bound(SOCK_DGRAM)
                let (tcp, tcpRC) = bound(SOCK_STREAM)
                return (udp, tcp, udpRC != 0 ? udpRC : (tcpRC != 0 ? tcpRC : listen(tcp, 8)))
            }
            defer {
                close(app.udp)
                close(app.tcp)
            }
            #expect(app.rc == 0)
            #expect(try Dig.run(s.name, ["c01.vnet"]).addresses == ["192.168.0.2"])
            #expect(try Dig.run(s.name, ["+tcp", "c02.vnet"]).addresses == ["192.168.0.3"])
            // The app saw none of it.
            var byte: UInt8 = 0
            #expect(recv(app.udp, &byte, 1, Int32(MSG_DONTWAIT)) < 0 && errno == EAGAIN)
            #expect(accept(app.tcp, nil, nil) < 0)
            fx.server.stopServing(s.id)
            let rules = try Shell.run(["ip", "netns", "exec", s.name, "nft", "list", "tables"])
            #expect(!rules.stdout.contains("dnsd_dns"))
        }
    }
}
