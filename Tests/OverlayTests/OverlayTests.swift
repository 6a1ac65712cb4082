import Addressing
import Foundation
import Netns
@testable import OverlayNet
import TestSupport
import Testing

@Suite("Overlay driver on simulated hosts", .timeLimit(.minutes(5)))
struct OverlayTests {
    static let vnet = try! HostLabel("vnet")
    static let spec = OverlaySpec(name: vnet, subnet: try! IPv4Subnet(parsing: "192.168.0.0/24"), gateway: IPv4Address(192, 168, 0, 1), vni: 4097)

    @Test("sandboxes on different hosts ping each other over VXLAN once peers are programmed, not before")
    func pingAcrossHosts() throws {
        try withCluster(hosts: 3) { cluster in
            for n in 1...3 { try cluster.driver(n).createNetwork(Self.spec) }
            let c1 = try cluster.sandbox("c1"), c2 = try cluster.sandbox("c2"), c3 = try cluster.sandbox("c3")
            let e1 = try cluster.driver(1).attach(c1, to: Self.vnet, address: ipa("192.168.0.2"))
            let e2 = try cluster.driver(2).attach(c2, to: Self.vnet, address: ipa("192.168.0.3"))
            _ = try cluster.driver(3).attach(c3, to: Self.vnet, address: ipa("192.168.0.4"))
            #expect(e1.interface == "eth0" && e2.mac == MACAddress(derivedFrom: ip("192.168.0.3")))
            // Negative control: no peers, no traffic.
            #expect(try !ping(from: c1, ip("192.168.0.3")))
            // Each host learns the others' endpoints.
            let endpoints = [(1, ip("192.168.0.2")), (2, ip("192.168.0.3")), (3, ip("192.168.0.4"))]
            for (host, _) in endpoints {
                for (other, address) in endpoints where other != host {
                    try cluster.driver(host).addPeer([IPAddress(address)], vtep: cluster.vtep(other), on: Self.vnet)
                }
            }
            #expect(try ping(from: c1, ip("192.168.0.3")))
            #expect(try ping(from: c3, ip("192.168.0.2")))
            #expect(try ping(from: c2, ip("192.168.0.4")))
            // The gateway address on the local bridge answers too.
            #expect(try ping(from: c1, ip("192.168.0.1")))
            // A peer removed: traffic to it stops.
            try cluster.driver(1).removePeer([ipa("192.168.0.3")], vtep: cluster.vtep(2), on: Self.vnet)
            #expect(try !ping(from: c1, ip("192.168.0.3")))
        }
    }

    @Test("dual-stack and IPv6-only networks: one neighbour per address, one FDB entry per peer, ping -6 across hosts; a changed IPv6 address replaces its neighbour")
    func ipv6Peers() throws {
        try withCluster(hosts: 2) { cluster in
            let dual = OverlaySpec(name: try HostLabel("dual"), subnet: try IPv4Subnet(parsing: "192.168.8.0/24"), gateway: IPv4Address(192, 168, 8, 1),
                                   subnet6: try IPSubnet(parsing: "fd00:8::/64"), vni: 4100)
            let only6 = OverlaySpec(name: try HostLabel("only6"), subnet: nil, gateway: nil, subnet6: try IPSubnet(parsing: "fd00:9::/64"),
                                    gateway6: ipa("fd00:9::5"), vni: 4101)
            for n in 1...2 { for spec in [dual, only6] { try cluster.driver(n).createNetwork(spec) } }
            let c1 = try cluster.sandbox("c1"), c2 = try cluster.sandbox("c2")
            let d1 = try cluster.driver(1).attach(c1, to: dual.name, address: ipa("192.168.8.2"), address6: ipa("fd00:8::2"))
            _ = try cluster.driver(2).attach(c2, to: dual.name, address: ipa("192.168.8.3"), address6: ipa("fd00:8::3"))
            let o1 = try cluster.driver(1).attach(c1, to: only6.name, address: ipa("fd00:9::2"))
            _ = try cluster.driver(2).attach(c2, to: only6.name, address: ipa("fd00:9::3"))
            #expect(d1.address == ipa("192.168.8.2") && d1.address6 == ipa("fd00:8::2") && d1.mac == MACAddress(derivedFrom: ip("192.168.8.2")))
            #expect(o1.address == ipa("fd00:9::2") && o1.address6 == nil && o1.mac.description == "02:43:00:00:00:02" && o1.bridgePort == "ve00000002")
            // The bridge's MAC comes from the IPv6 gateway, which no endpoint ever has (::2 does not
            // collide with it; ::1, free on this network, would not either).
            let bridge = try Shell.check(["ip", "-n", cluster.driver(1).overlayNamespaceName(only6.name), "link", "show", "br0"])
            let bridgeAddresses = try Shell.check(["ip", "-n", cluster.driver(1).overlayNamespaceName(only6.name), "-o", "addr", "show", "br0"])
            #expect(bridge.contains("link/ether 02:43:00:00:00:05") && !bridgeAddresses.contains("inet "), "\(bridge)\(bridgeAddresses)")
            let own = try Shell.check(["ip", "-n", c1.name, "-o", "addr", "show", "dev", o1.interface])
            #expect(own.contains("inet6 fd00:9::2/64") && !own.contains("inet "), "an IPv6-only interface: \(own)")
            func ping6(_ from: Sandbox, _ to: String) throws -> Bool {
                try Shell.run(["ip", "netns", "exec", from.name, "busybox", "ping", "-6", "-c", "2", "-w", "3", to]).status == 0
            }
            #expect(try !ping6(c1, "fd00:9::3"), "no peers, no traffic")
            try cluster.driver(1).addPeer([ipa("192.168.8.3"), ipa("fd00:8::3")], vtep: cluster.vtep(2), on: dual.name)
            try cluster.driver(2).addPeer([ipa("192.168.8.2"), ipa("fd00:8::2")], vtep: cluster.vtep(1), on: dual.name)
            try cluster.driver(1).addPeer([ipa("fd00:9::3")], vtep: cluster.vtep(2), on: only6.name)
            try cluster.driver(2).addPeer([ipa("fd00:9::2")], vtep: cluster.vtep(1), on: only6.name)
            #expect(try ping6(c1, "fd00:8::3") && ping6(c1, "fd00:9::3") && ping6(c2, "fd00:9::2"))
            #expect(try ping(from: c1, ip("192.168.8.3")), "and IPv4 on the dual-stack one")
            let ns = cluster.driver(1).overlayNamespaceName(dual.name)
            func neighbours(_ ns: String) throws -> String { try Shell.check(["ip", "-n", ns, "neigh", "show", "dev", "vxlan0", "nud", "permanent"]) }
            let shown = try neighbours(ns)
            #expect(shown.contains("192.168.8.3 lladdr 02:42:c0:a8:08:03") && shown.contains("fd00:8::3 lladdr 02:42:c0:a8:08:03"), "\(shown)")
            let fdb = try Shell.check(["bridge", "-n", ns, "fdb", "show", "dev", "vxlan0"]).split(separator: "\n").filter { $0.hasPrefix("02:42:c0:a8:08:03 dst") }
            #expect(fdb.count == 1, "\(fdb)")
            #expect(try cluster.driver(1).peers(on: dual.name, family: .v6) == [ipa("fd00:8::3"): cluster.vtep(2)])
            // The peer's IPv6 address changes: the old neighbour goes, the new one comes.
            try cluster.driver(1).addPeer([ipa("192.168.8.3"), ipa("fd00:8::33")], vtep: cluster.vtep(2), on: dual.name)
            #expect(try cluster.driver(1).peers(on: dual.name, family: .v6) == [ipa("fd00:8::33"): cluster.vtep(2)])
            // A peer whose IPv6 address is outside the network's prefixes (a stale record) keeps
            // its IPv4 neighbour and gets no IPv6 one.
            try cluster.driver(1).addPeer([ipa("192.168.8.7"), ipa("fd00:77::7")], vtep: cluster.vtep(2), on: dual.name)
            #expect(try cluster.driver(1).peers(on: dual.name)[ip("192.168.8.7")] == cluster.vtep(2))
            #expect(try cluster.driver(1).peers(on: dual.name, family: .v6)[ipa("fd00:77::7")] == nil)
            // Removal takes every neighbour and the FDB entry (read from the kernel directly).
            let ns6 = cluster.driver(1).overlayNamespaceName(only6.name)
            #expect(try neighbours(ns6).contains("fd00:9::3 lladdr 02:43:00:00:00:03"))
            try cluster.driver(1).removePeer([ipa("fd00:9::3")], vtep: cluster.vtep(2), on: only6.name)
            try cluster.driver(1).removePeer([ipa("192.168.8.3"), ipa("fd00:8::33")], vtep: cluster.vtep(2), on: dual.name)
            let left = try neighbours(ns) + neighbours(ns6)
            #expect(!left.contains("192.168.8.3 ") && !left.contains("fd00:8::33") && !left.contains("fd00:9::3"), "\(left)")
            let fdbLeft = try Shell.check(["bridge", "-n", ns, "fdb", "show", "dev", "vxlan0"]) + Shell.check(["bridge", "-n", ns6, "fdb", "show", "dev", "vxlan0"])
            // (The bridge's own learnt entries, `master br0`, age out by themselves: only the
            // vxlan's permanent ones, `dst VTEP`, are dnsd's.)
            #expect(!fdbLeft.contains("02:42:c0:a8:08:03 dst") && !fdbLeft.contains("02:43:00:00:00:03 dst"), "\(fdbLeft)")
            #expect(try !ping6(c1, "fd00:9::3"))
        }
    }

    @Test("MTU 1450: a full-size packet with DF crosses hosts, one byte more is refused")
    func mtu() throws {
        try withCluster(hosts: 2) { cluster in
            for n in 1...2 { try cluster.driver(n).createNetwork(Self.spec) }
            let c1 = try cluster.sandbox("c1"), c2 = try cluster.sandbox("c2")
            _ = try cluster.driver(1).attach(c1, to: Self.vnet, address: ipa("192.168.0.2"))
            _ = try cluster.driver(2).attach(c2, to: Self.vnet, address: ipa("192.168.0.3"))
            try cluster.driver(1).addPeer([ipa("192.168.0.3")], vtep: cluster.vtep(2), on: Self.vnet)
            try cluster.driver(2).addPeer([ipa("192.168.0.2")], vtep: cluster.vtep(1), on: Self.vnet)
            let receiver = try ChildProcess(["ip", "netns", "exec", c2.name, "python3", "-c", """
                import socket
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.bind(("0.0.0.0", 9999))
                s.settimeout(3)
                while True:
                    data, peer = s.recvfrom(65535)
                    s.sendto(str(len(data)).encode(), peer)
                """])
            defer { receiver.stop() }
            usleep(300_000)
            let sender = """
                import socket, sys
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.setsockopt(socket.IPPROTO_IP, 10, 2)  # IP_MTU_DISCOVER = IP_PMTUDISC_DO: DF set
                s.settimeout(2)
                size = int(sys.argv[1]) - 28  # IP and UDP headers
                try:
                    s.sendto(b"x" * size, ("192.168.0.3", 9999))
                    print("echo", s.recv(100).decode())
                except OSError as e:
                    print("error", e.errno)
                """
            let full = try Shell.run(["ip", "netns", "exec", c1.name, "python3", "-c", sender, "1450"])
            #expect(full.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "echo 1422", "\(full.stdout) \(full.stderr)")
            let over = try Shell.run(["ip", "netns", "exec", c1.name, "python3", "-c", sender, "1451"])
            #expect(over.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "error 90", "EMSGSIZE: \(over.stdout)")
        }
    }

    @Test("peers are idempotent: one neighbour and one FDB entry however often added, read back from the kernel")
    func idempotentPeers() throws {
        try withCluster(hosts: 1) { cluster in
            let driver = cluster.driver(1)
            try driver.createNetwork(Self.spec)
            try driver.createNetwork(Self.spec)  // again: adopted, no error
            for _ in 0..<3 { try driver.addPeer([ipa("192.168.0.9")], vtep: ip("198.18.0.7"), on: Self.vnet) }
            try driver.addPeer([ipa("192.168.0.10")], vtep: ip("198.18.0.7"), on: Self.vnet)
            #expect(try driver.peers(on: Self.vnet) == [ip("192.168.0.9"): ip("198.18.0.7"), ip("192.168.0.10"): ip("198.18.0.7")])
            let ns = driver.overlayNamespaceName(Self.vnet)
            let neigh = try Shell.check(["ip", "-n", ns, "neigh", "show", "dev", "vxlan0"])
            #expect(neigh.split(separator: "\n").filter { $0.contains("192.168.0.9 ") }.count == 1)
            // A peer that moved to another host: the FDB entry follows.
            try driver.addPeer([ipa("192.168.0.9")], vtep: ip("198.18.0.8"), on: Self.vnet)
            #expect(try driver.peers(on: Self.vnet)[ip("192.168.0.9")] == ip("198.18.0.8"))
            // Exactly one FDB entry for its MAC, to the new VTEP (not the old one as well).
            let mac = MACAddress(derivedFrom: ip("192.168.0.9")).description
            let fdb = try Shell.check(["bridge", "-n", ns, "fdb", "show", "dev", "vxlan0"]).split(separator: "\n").filter { $0.hasPrefix(mac) }
            #expect(fdb.count == 1 && fdb.first?.contains("dst 198.18.0.8") == true, "\(fdb)")
            for _ in 0..<2 { try driver.removePeer([ipa("192.168.0.10")], vtep: ip("198.18.0.7"), on: Self.vnet) }
            #expect(try driver.peers(on: Self.vnet)[ip("192.168.0.10")] == nil)
            let details = try Shell.check(["ip", "-n", ns, "-d", "link", "show", "vxlan0"])
            #expect(details.contains("mtu 1450") && details.contains("nolearning") && details.contains("proxy") && details.contains("local 198.18.0.1"))
            #expect(try Shell.check(["ip", "-n", ns, "-o", "addr", "show", "br0"]).contains("192.168.0.1/24"))
        }
    }

    @Test("the driver keeps each network's peer table: peers given before the network exists are programmed when it is made, and again after it is re-made")
    func peerTableReplay() throws {
        try withCluster(hosts: 1) { cluster in
            let driver = cluster.driver(1)
            try driver.addPeer([ipa("192.168.0.9")], vtep: ip("198.18.0.7"), on: Self.vnet)
            try driver.addPeer([ipa("192.168.0.10")], vtep: ip("198.18.0.8"), on: Self.vnet)
            try driver.removePeer([ipa("192.168.0.10")], vtep: ip("198.18.0.8"), on: Self.vnet)
            #expect(try driver.peers(on: Self.vnet).isEmpty, "no network yet: nothing in a kernel")
            try driver.createNetwork(Self.spec)
            #expect(try driver.peers(on: Self.vnet) == [ip("192.168.0.9"): ip("198.18.0.7")], "the table, less the removed peer")
            try driver.deleteNetwork(Self.vnet)
            try driver.createNetwork(Self.spec)
            #expect(try driver.peers(on: Self.vnet) == [ip("192.168.0.9"): ip("198.18.0.7")], "replayed into the re-made network")
            #expect(driver.replayFailures == 0)
        }
    }

    @Test("the leak check fires on what a test leaves: a namespace with its prefix, a driver-named link in the machine's namespace")
    func leakCheckFires() throws {
        // Alone: the links it leaves on purpose would be every concurrent test's leak.
        try MachineNamespaceLock.shared.alone { try leakCheckFiresAlone() }
    }

    private func leakCheckFiresAlone() throws {
        var leakedNamespace = ""
        var caught: LeakError?
        do {
            try withClusterChecked(hosts: 1) { cluster in
                leakedNamespace = cluster.fixture.prefix + "leak"
                try NamedNamespaces().create(leakedNamespace, on: cluster.fixture.thread)
                try Shell.check(["ip", "link", "add", "vedeadbeef", "type", "veth", "peer", "name", "vbdeadbeef"])
            }
        } catch let error as LeakError {
            caught = error
        }
        _ = try? Shell.run(["ip", "link", "del", "vedeadbeef"])
        try? NamedNamespaces().delete(leakedNamespace)
        #expect(caught?.after.namespaces == [leakedNamespace], "\(String(describing: caught))")
        #expect(caught?.after.hostLinks == ["vedeadbeef", "vbdeadbeef"], "\(String(describing: caught))")
        #expect(caught?.after.mounts.contains { $0.contains(leakedNamespace) } == true, "the netns bind mount, read from the whole of /proc/self/mounts")
    }

    @Test("interface order: eth0 first, then eth1; detach removes both veth ends")
    func interfaceOrderAndDetach() throws {
        try withCluster(hosts: 1) { cluster in
            let driver = cluster.driver(1)
            let other = OverlaySpec(name: try HostLabel("net2"), subnet: try IPv4Subnet(parsing: "192.168.2.0/24"), gateway: ip("192.168.2.1"), vni: 4098)
            try driver.createNetwork(Self.spec)
            try driver.createNetwork(other)
            let c1 = try cluster.sandbox("c1")
            let first = try driver.attach(c1, to: Self.vnet, address: ipa("192.168.0.2"))
            let second = try driver.attach(c1, to: other.name, address: ipa("192.168.2.2"), defaultRoute: true)
            #expect(first.interface == "eth0" && second.interface == "eth1")
            // IPv4 networks: no IPv6 on the new interfaces (no link-local, no DAD or MLD flooded to
            // every bridge port), while lo keeps ::1.
            #expect(try Shell.check(["ip", "-n", c1.name, "-6", "-o", "addr", "show", "dev", "eth0"]).isEmpty)
            #expect(try Shell.check(["ip", "-n", c1.name, "-6", "-o", "addr", "show", "dev", "lo"]).contains("::1"))
            // br0: no multicast snooping (each port add would walk every port), its own MAC.
            let bridge = try Shell.check(["ip", "-n", driver.overlayNamespaceName(Self.vnet), "-d", "link", "show", "br0"])
            #expect(bridge.contains("mcast_snooping 0") && bridge.contains(MACAddress(derivedFrom: Self.spec.gateway!).description), "\(bridge)")
            let overlayV6 = try Shell.check(["ip", "-n", driver.overlayNamespaceName(Self.vnet), "-6", "-o", "addr"])
            #expect(overlayV6.split(separator: "\n").allSatisfy { $0.contains(": lo ") }, "\(overlayV6)")
            let routes = try Shell.check(["ip", "-n", c1.name, "route"])
            #expect(routes.contains("default via 192.168.2.1 dev eth1"))
            try driver.detach(first)
            let links = try Shell.check(["ip", "-n", c1.name, "-o", "link"])
            #expect(!links.contains("eth0") && links.contains("eth1"))
            #expect(!(try Shell.check(["ip", "-n", driver.overlayNamespaceName(Self.vnet), "-o", "link"]).contains(first.bridgePort)))
        }
    }

    @Test("a failed attach leaves nothing behind")
    func failedAttachUndoes() throws {
        try withCluster(hosts: 1) { cluster in
            let driver = cluster.driver(1)
            try driver.createNetwork(Self.spec)
            let c1 = try cluster.sandbox("c1")
            #expect(throws: OverlayError.self) { try driver.attach(c1, to: Self.vnet, address: ipa("10.0.0.2")) }
            #expect(throws: OverlayError.self) { try driver.attach(c1, to: try HostLabel("nosuch"), address: ipa("192.168.0.2")) }
            // The interface name is taken in the sandbox: the veth must not stay on the bridge.
            _ = try driver.attach(c1, to: Self.vnet, address: ipa("192.168.0.2"), interface: "eth0")
            #expect(throws: NetlinkError.self) { try driver.attach(c1, to: Self.vnet, address: ipa("192.168.0.3"), interface: "eth0") }
            let ports = try Shell.check(["ip", "-n", driver.overlayNamespaceName(Self.vnet), "-o", "link"])
            #expect(!ports.contains("vec0a80003"))
        }
    }

    @Test("deleting a network removes its namespace, bridge and vxlan device")
    func deleteNetwork() throws {
        try withCluster(hosts: 1) { cluster in
            let driver = cluster.driver(1)
            try driver.createNetwork(Self.spec)
            let name = driver.overlayNamespaceName(Self.vnet)
            #expect(NamedNamespaces().exists(name))
            try driver.deleteNetwork(Self.vnet)
            #expect(!NamedNamespaces().exists(name))
            try driver.createNetwork(Self.spec)  // and again from scratch
            #expect(NamedNamespaces().exists(name))
        }
    }
}

@Suite("IPAM for one host", .timeLimit(.minutes(5)))
struct AddressPoolTests {
    @Test("allocates in order, skips network, gateway and broadcast, refuses foreign and taken addresses")
    func pool() throws {
        var pool = try AddressPool(subnet: try IPv4Subnet(parsing: "192.168.5.0/29"))
        #expect(pool.gateway == ip("192.168.5.1"))
        var got: [IPv4Address] = []
        for _ in 0..<5 { got.append(try pool.allocate()) }
        #expect(got == (2...6).map { IPv4Address(192, 168, 5, UInt8($0)) })
        #expect(throws: AddressPool.Failure.exhausted(try IPv4Subnet(parsing: "192.168.5.0/29"))) { try pool.allocate() }
        pool.release(ip("192.168.5.4"))
        #expect(try pool.allocate() == ip("192.168.5.4"))
        var fresh = try AddressPool(subnet: try IPv4Subnet(parsing: "192.168.5.0/29"))
        #expect(throws: AddressPool.Failure.self) { try fresh.reserve(ip("192.168.6.2")) }
        #expect(throws: AddressPool.Failure.self) { try fresh.reserve(ip("192.168.5.1")) }
        #expect(throws: AddressPool.Failure.self) { try fresh.reserve(ip("192.168.5.7")) }
        #expect(throws: AddressPool.Failure.self) { try fresh.reserve(ip("192.168.5.0")) }
        try fresh.reserve(ip("192.168.5.3"))
        #expect(throws: AddressPool.Failure.inUse(ip("192.168.5.3"))) { try fresh.reserve(ip("192.168.5.3")) }
        #expect(try fresh.allocate() == ip("192.168.5.2"))
        #expect(try fresh.allocate() == ip("192.168.5.4"))
        #expect(throws: AddressPool.Failure.self) { try AddressPool(subnet: try IPv4Subnet(parsing: "192.168.5.0/29"), gateway: ip("10.0.0.1")) }
    }
}
