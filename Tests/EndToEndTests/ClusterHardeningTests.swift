import ClusterHarness
import Foundation
import TestSupport
import Testing

/// Issue 11's regressions on the cluster: claims, networks and their devices, the store.
@Suite("Hardening: claims, networks, the store", .serialized)
struct ClusterHardeningTests {
    @Test("stop releases only this host's claims: a name and address another host took meanwhile stay")
    func releaseOnlyOwnClaims() throws {
        let cluster = try ClusterHarness(hosts: 2)
        defer { cluster.close() }
        let x = cluster.name("x")
        #expect(try cluster.dnsd(1, ["network", "create", "--subnet=192.168.81.0/24", "cnet"]).status == 0)
        let run = try cluster.dnsd(1, ["run", "--name=\(x)", "--net=cnet"])
        #expect(run.status == 0, "\(run.stderr)")
        let address = try #require(run.stdout.split(separator: " ").first { $0.hasPrefix("cnet:eth0=") }.map { String($0.dropFirst(10)) })
        // h1 was cut off past its lease and h2 took the name and the address (written by hand
        // here: the keys as h2 would hold them).
        let other = cluster.hostID(2)
        try cluster.etcdPut("dnsd/v1/names/\(x)", Array("{\"host\":\"\(other)\",\"name\":\"\(x)\"}".utf8))
        try cluster.etcdPut("dnsd/v1/ipam/cnet/\(address)", Array(other.utf8))
        #expect(try cluster.dnsd(1, ["stop", x]).status == 0)
        let names = try cluster.etcdList("dnsd/v1/names/")
        let ipam = try cluster.etcdList("dnsd/v1/ipam/cnet/")
        #expect(names["dnsd/v1/names/\(x)"].map { String(decoding: $0, as: UTF8.self).contains(other) } == true, "\(names.keys)")
        #expect(ipam["dnsd/v1/ipam/cnet/\(address)"].map { String(decoding: $0, as: UTF8.self) } == other, "\(ipam)")
    }
}
