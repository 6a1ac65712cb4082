import ClusterHarness
import Foundation
import TestSupport
import Testing

/// DESIGN.md §1, end to end: three simulated hosts, real etcd, one daemon per host.
@Suite("End to end: the user's story", .serialized, .timeLimit(.minutes(5)))
struct StoryTests {
    @Test("network create, run, connect, names by DNS and hosts file across hosts, ping over VXLAN, stop")
    func story() throws {
        let cluster = try ClusterHarness(hosts: 3)
        defer { cluster.close() }
        let c01 = cluster.name("c01"), c02 = cluster.name("c02")
        #expect(try cluster.dnsd(1, ["network", "create", "--driver=overlay", "--subnet=192.168.0.0/24", "vnet"]).status == 0)
        let created = try cluster.dnsd(2, ["network", "ls"])
        #expect(created.stdout.contains("vnet") && created.stdout.contains("192.168.0.0/24"), "visible on every host")
        // h1: eth0 on the local bridge, then eth1 on vnet.
        let run1 = try cluster.dnsd(1, ["run", "--name=\(c01)", "--hostname=\(c01)"])
        #expect(run1.status == 0, "\(run1.stderr)")
        let connect = try cluster.dnsd(1, ["network", "connect", "vnet", c01])
        #expect(connect.stdout.contains("bridge:eth0=172.17.0.") && connect.stdout.contains("vnet:eth1=192.168.0.2"), "\(connect.stdout)\(connect.stderr)")
        // h2: eth0 on vnet, eth1 on the gateway bridge.
        let run2 = try cluster.dnsd(2, ["run", "--name=\(c02)", "--hostname=\(c02)", "--net=vnet"])
        #expect(run2.stdout.contains("vnet:eth0=192.168.0.3") && run2.stdout.contains("gwbridge:eth1=172.18.0."), "\(run2.stdout)\(run2.stderr)")

        // c01's hosts file has c02's line; c01 resolves c02 by DNS (127.0.0.11) and pings it.
        #expect(try cluster.eventually { try cluster.exec(c01, ["cat", "/etc/hosts"]).stdout.contains("192.168.0.3\t\(c02) \(c02).vnet") })
        #expect(try cluster.exec(c01, ["dig", "+short", "\(c02).vnet", "@127.0.0.11"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "192.168.0.3")
        #expect(try cluster.exec(c01, ["dig", "+short", c02, "@127.0.0.11"]).stdout.contains("192.168.0.3"))
        #expect(try cluster.exec(c01, ["getent", "hosts", "\(c02).vnet"]).stdout.hasPrefix("192.168.0.3"))
        #expect(try cluster.exec(c01, ["busybox", "ping", "-A", "-c", "3", "-w", "3", c02]).status == 0, "ping crosses hosts over VXLAN")
        // ...and c02 sees c01 the same way.
        #expect(try cluster.exec(c02, ["dig", "+short", "\(c01).vnet", "@127.0.0.11"]).stdout.contains("192.168.0.2"))

        // A name is unique in the cluster.
        let duplicate = try cluster.dnsd(3, ["run", "--name=\(c01)", "--net=vnet"])
        #expect(duplicate.status != 0 && duplicate.stderr.contains("already used in the cluster"), "\(duplicate.stderr)")
        #expect(duplicate.stderr.split(separator: "\n").count == 1, "one line")

        // Stop c02 on h2: it vanishes from c01's DNS and hosts file on h1.
        #expect(try cluster.dnsd(2, ["stop", c02]).status == 0)
        #expect(try cluster.eventually { try cluster.exec(c01, ["dig", "\(c02).vnet", "@127.0.0.11"]).stdout.contains("status: NXDOMAIN") })
        #expect(try cluster.eventually { !(try cluster.exec(c01, ["cat", "/etc/hosts"]).stdout.contains(c02)) })
        #expect(!NamedNamespacesList.contains(c02))
        #expect(try cluster.dnsd(1, ["stop", c01]).status == 0)
    }
}

import Netns
enum NamedNamespacesList {
    static func contains(_ name: String) -> Bool { NamedNamespaces().exists(name) }
}
