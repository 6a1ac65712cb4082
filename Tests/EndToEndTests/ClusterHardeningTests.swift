import ClusterHarness
import Foundation
import TestSupport
import Testing

/// Issue 11's regressions on the cluster: claims, networks and their devices, the store.
@Suite("Hardening: claims, networks, the store", .serialized, .timeLimit(.minutes(5)))
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

extension ClusterHardeningTests {
    @Test("bridge networks whose names share a prefix get their own bridges and NAT; overlapping subnets are refused in one line")
    func bridgeNetworks() throws {
        let cluster = try ClusterHarness(hosts: 1, store: "local")
        defer { cluster.close() }
        let host = cluster.hosts[0].name
        #expect(try cluster.dnsd(1, ["network", "create", "--driver=bridge", "--subnet=192.168.91.0/24", "frontend-a1"]).status == 0)
        #expect(try cluster.dnsd(1, ["network", "create", "--driver=bridge", "--subnet=192.168.92.0/24", "frontend-a2"]).status == 0)
        let a = cluster.name("a"), b = cluster.name("b")
        #expect(try cluster.dnsd(1, ["run", "--name=\(a)", "--net=frontend-a1"]).status == 0)
        #expect(try cluster.dnsd(1, ["run", "--name=\(b)", "--net=frontend-a2"]).status == 0)
        let addresses = try Shell.check(["ip", "-n", host, "-o", "-4", "addr", "show"])
        let gatewayDevices = ["192.168.91.1", "192.168.92.1"].map { gw in
            addresses.split(separator: "\n").first { $0.contains("inet \(gw)/24") }.map { String($0.split(separator: " ")[1]) }
        }
        #expect(gatewayDevices[0] != nil && gatewayDevices[1] != nil && gatewayDevices[0] != gatewayDevices[1], "\(gatewayDevices)")
        let nat = try Shell.check(["ip", "netns", "exec", host, "nft", "list", "table", "ip", "dnsd_nat"])
        #expect(nat.contains("192.168.91.0/24") && nat.contains("192.168.92.0/24"), "\(nat)")
        // Each sandbox reaches its own gateway.
        #expect(try cluster.exec(a, ["busybox", "ping", "-c", "1", "-w", "2", "192.168.91.1"]).status == 0)
        #expect(try cluster.exec(b, ["busybox", "ping", "-c", "1", "-w", "2", "192.168.92.1"]).status == 0)
        let before = try cluster.dnsd(1, ["network", "ls"]).stdout
        for (subnet, word) in [("192.168.91.128/25", "frontend-a1"), ("192.168.0.0/16", "frontend-a"), ("172.17.9.0/24", "built-in"),
                               ("172.18.0.0/24", "built-in"), ("198.18.0.0/16", "route")] {
            let refused = try cluster.dnsd(1, ["network", "create", "--subnet=\(subnet)", "clash"])
            #expect(refused.status != 0 && refused.stderr.split(separator: "\n").count == 1 && refused.stderr.contains(word), "\(subnet): \(refused.stderr)")
        }
        #expect(try cluster.dnsd(1, ["network", "ls"]).stdout == before)
    }
}

extension ClusterHardeningTests {
    @Test("network rm is cluster-wide and atomic: refused while in use; every host drops its devices; a re-created network works everywhere")
    func networkRemoveClusterWide() throws {
        let cluster = try ClusterHarness(hosts: 2)
        defer { cluster.close() }
        let a = cluster.name("a"), b = cluster.name("b")
        #expect(try cluster.dnsd(1, ["network", "create", "--subnet=192.168.83.0/24", "rmnet"]).status == 0)
        #expect(try cluster.dnsd(1, ["run", "--name=\(a)", "--net=rmnet"]).status == 0)
        #expect(try cluster.dnsd(2, ["run", "--name=\(b)", "--net=rmnet"]).status == 0)
        let overlay2 = "\(cluster.hostID(2))-ov-rmnet", overlay1 = "\(cluster.hostID(1))-ov-rmnet"
        #expect(cluster.namespaces().contains(overlay2) && cluster.namespaces().contains(overlay1))
        // In use (an endpoint on h2): refused on h1, nothing changes.
        #expect(try cluster.dnsd(1, ["stop", a]).status == 0)
        let refused = try cluster.dnsd(1, ["network", "rm", "rmnet"])
        #expect(refused.status != 0 && refused.stderr.contains("still has 1 endpoint"), "\(refused.stderr)")
        #expect(try cluster.dnsd(2, ["network", "ls"]).stdout.contains("rmnet"))
        #expect(try cluster.dnsd(2, ["stop", b]).status == 0)
        let removed = try cluster.dnsd(1, ["network", "rm", "rmnet"])
        #expect(removed.status == 0, "\(removed.stderr)")
        #expect(!cluster.namespaces().contains(overlay1), "h1 keeps its overlay namespace")
        #expect(cluster.eventually(3) { !cluster.namespaces().contains(overlay2) }, "h2 keeps its overlay namespace")
        #expect(try cluster.etcdList("dnsd/v1/vni/").isEmpty && cluster.etcdList("dnsd/v1/networks/").isEmpty)
        // The same name again with another subnet: both hosts build it afresh.
        #expect(try cluster.dnsd(2, ["network", "create", "--subnet=10.83.0.0/24", "rmnet"]).status == 0)
        let ra = try cluster.dnsd(1, ["run", "--name=\(a)2", "--net=rmnet"])
        let rb = try cluster.dnsd(2, ["run", "--name=\(b)2", "--net=rmnet"])
        #expect(ra.status == 0 && rb.status == 0, "\(ra.stderr) \(rb.stderr)")
        #expect(try cluster.exec("\(a)2", ["busybox", "ping", "-c", "1", "-w", "3", "\(b)2"]).status == 0)
    }
}

extension ClusterHardeningTests {
    @Test("a leftover overlay namespace is verified and repaired: without devices, without vxlan0, with a wrong VNI")
    func leftoverOverlayRepaired() throws {
        let cluster = try ClusterHarness(hosts: 2)
        defer { cluster.close() }
        #expect(try cluster.dnsd(1, ["network", "create", "--subnet=192.168.85.0/24", "lnet"]).status == 0)
        let overlay1 = "\(cluster.hostID(1))-ov-lnet"
        // A daemon killed between making the namespace and its devices left this behind.
        try Shell.check(["ip", "netns", "add", overlay1])
        let a = cluster.name("a"), b = cluster.name("b")
        let runA = try cluster.dnsd(1, ["run", "--name=\(a)", "--net=lnet"])
        #expect(runA.status == 0, "\(runA.stderr)")
        #expect(try cluster.dnsd(2, ["run", "--name=\(b)", "--net=lnet"]).status == 0)
        #expect(try cluster.exec(a, ["busybox", "ping", "-c", "1", "-w", "3", b]).status == 0)
        let vni = try Shell.check(["ip", "-d", "-n", overlay1, "link", "show", "vxlan0"])
        #expect(vni.contains("vxlan id ") && vni.contains("nolearning") && vni.contains("proxy") && vni.contains("mtu 1450"), "\(vni)")
        // While h1's daemon is down, its vxlan0 is deleted and replaced by one with another VNI.
        cluster.kill(1)
        try Shell.check(["ip", "-n", overlay1, "link", "del", "vxlan0"])
        try Shell.check(["ip", "-n", cluster.hosts[0].name, "link", "add", "vxlan0", "type", "vxlan", "id", "999", "dstport", "4789",
                         "local", "198.18.0.1", "nolearning"])
        try Shell.check(["ip", "-n", cluster.hosts[0].name, "link", "set", "vxlan0", "netns", overlay1])
        try cluster.restart(1)
        let c = cluster.name("c")
        let runC = try cluster.dnsd(1, ["run", "--name=\(c)", "--net=lnet"])
        #expect(runC.status == 0, "\(runC.stderr)")
        let repaired = try Shell.check(["ip", "-d", "-n", overlay1, "link", "show", "vxlan0"])
        #expect(!repaired.contains("vxlan id 999") && repaired.contains("proxy") && repaired.contains("master br0"), "\(repaired)")
        // Both the survivor and the new sandbox reach h2 again (peers programmed on the new device).
        #expect(try cluster.exec(a, ["busybox", "ping", "-c", "1", "-w", "3", b]).status == 0)
        #expect(try cluster.exec(c, ["busybox", "ping", "-c", "1", "-w", "3", b]).status == 0)
    }
}
