import ClusterHarness
import Foundation
import TestSupport
import Testing

/// Issue 15 on a real daemon: every cluster network's domain is answered locally, apex
/// included, from the network records (not from the endpoints seen), and never forwarded.
@Suite("End to end: DNS scope of cluster networks", .serialized, .timeLimit(.minutes(5)))
struct DNSScopeTests {
    @Test("names under a network with no endpoint, apexes, reverse names in its subnet; a network created later is in scope at once")
    func scope() throws {
        // The upstream is 127.0.0.1:9 (nothing listens): anything forwarded gets SERVFAIL.
        let cluster = try ClusterHarness(hosts: 1, store: "local")
        defer { cluster.close() }
        let s = cluster.name("s")
        #expect(try cluster.dnsd(1, ["network", "create", "--driver=bridge", "--subnet=192.168.18.0/24", "vnet"]).status == 0)
        #expect(try cluster.dnsd(1, ["network", "create", "--driver=bridge", "--subnet=192.168.19.0/24", "other"]).status == 0)
        #expect(try cluster.dnsd(1, ["run", "--name=\(s)", "--net=vnet"]).status == 0)
        /// dig's output with runs of blanks folded to one space.
        func dig(_ arguments: [String]) throws -> String {
            try cluster.exec(s, ["dig", "+time=2", "+tries=1", "@127.0.0.11"] + arguments).stdout
                .split(separator: "\n").map { $0.split(whereSeparator: { $0 == " " || $0 == "\t" }).joined(separator: " ") }.joined(separator: "\n")
        }
        for name in ["x.other", "c03.other", "other"] {
            let out = try dig([name])
            #expect(out.contains("status: NXDOMAIN") && out.contains(" aa"), "\(name): \(out)")
            #expect(out.contains("other. 10 IN SOA other. hostmaster.other. 1 3600 600 86400 10"), "\(name): \(out)")
        }
        for type in ["A", "AAAA", "NS", "MX"] {
            let out = try dig([type, "vnet"])
            #expect(out.contains("status: NOERROR") && out.contains(" aa") && out.contains("ANSWER: 0"), "\(type) vnet: \(out)")
        }
        let soa = try dig(["SOA", "vnet"])
        #expect(soa.contains("ANSWER: 1") && soa.contains("vnet. 10 IN SOA vnet. hostmaster.vnet."), "\(soa)")
        let reverse = try dig(["-x", "192.168.19.5"])
        #expect(reverse.contains("status: NXDOMAIN"), "\(reverse)")
        // A network created after the sandbox is in scope as soon as the store has it.
        #expect(try cluster.dnsd(1, ["network", "create", "--driver=bridge", "--subnet=192.168.20.0/24", "later"]).status == 0)
        #expect(try cluster.eventually(2) { try dig(["x.later"]).contains("status: NXDOMAIN") })
        // And out of it once removed: then a name under it is forwarded like any other.
        #expect(try cluster.dnsd(1, ["network", "rm", "later"]).status == 0)
        #expect(try cluster.eventually(2) { try dig(["x.later"]).contains("status: SERVFAIL") })
    }
}
