import ClusterHarness
import Foundation
import TestSupport
import Testing

/// Issue 24's story, end to end: dual-stack overlay networks on simulated hosts with real etcd,
/// names answering A and AAAA at 127.0.0.11, ip6.arpa, both hosts lines, ping -6 over VXLAN.
@Suite("End to end: dual-stack networks", .serialized, .timeLimit(.minutes(5)))
struct DualStackTests {
    private static func trimmed(_ text: String) -> String { text.trimmingCharacters(in: .whitespacesAndNewlines) }

    @Test("network create with an IPv4 and an IPv6 subnet; AAAA, ip6.arpa, both hosts lines and ping -6 across hosts; stop takes both")
    func story() throws {
        let cluster = try ClusterHarness(hosts: 2)
        defer { cluster.close() }
        let c01 = cluster.name("c01"), c02 = cluster.name("c02"), c03 = cluster.name("c03")
        let created = try cluster.dnsd(1, ["network", "create", "--driver=overlay", "--subnet=192.168.0.0/24", "--subnet=fd00:db8:1::/64", "vnet"])
        #expect(created.status == 0 && created.stdout.contains("192.168.0.0/24 fd00:db8:1::/64"), "\(created.stdout)\(created.stderr)")
        #expect(try cluster.dnsd(2, ["network", "ls"]).stdout.contains("fd00:db8:1::/64"), "visible on every host")
        #expect(try cluster.dnsd(1, ["network", "create", "--subnet=192.168.9.0/24", "v4net"]).status == 0)

        let run1 = try cluster.dnsd(1, ["run", "--name=\(c01)", "--hostname=\(c01)", "--net=vnet"])
        #expect(run1.stdout.contains("vnet:eth0=192.168.0.2,fd00:db8:1::2"), "\(run1.stdout)\(run1.stderr)")
        let run2 = try cluster.dnsd(2, ["run", "--name=\(c02)", "--hostname=\(c02)", "--net=vnet", "--alias=db"])
        #expect(run2.stdout.contains("vnet:eth0=192.168.0.3,fd00:db8:1::3"), "\(run2.stdout)\(run2.stderr)")
        // An IPv4-only sandbox on the same host as c01, also on vnet with a chosen IPv6 address.
        #expect(try cluster.dnsd(1, ["run", "--name=\(c03)", "--net=v4net"]).status == 0)
        let connected = try cluster.dnsd(1, ["network", "connect", "--ip6=fd00:db8:1::99", "vnet", c03])
        #expect(connected.stdout.contains("vnet:eth2=192.168.0.4,fd00:db8:1::99"), "\(connected.stdout)\(connected.stderr)")

        // DNS at 127.0.0.11: AAAA and A, short and qualified names, aliases, PTR in ip6.arpa.
        #expect(try cluster.eventually {
            Self.trimmed(try cluster.exec(c01, ["dig", "+short", "AAAA", "\(c02).vnet", "@127.0.0.11"]).stdout) == "fd00:db8:1::3"
        })
        #expect(Self.trimmed(try cluster.exec(c01, ["dig", "+short", "AAAA", c02, "@127.0.0.11"]).stdout) == "fd00:db8:1::3")
        #expect(Self.trimmed(try cluster.exec(c01, ["dig", "+short", "AAAA", "db.vnet", "@127.0.0.11"]).stdout) == "fd00:db8:1::3")
        #expect(Self.trimmed(try cluster.exec(c01, ["dig", "+short", "A", "\(c02).vnet", "@127.0.0.11"]).stdout) == "192.168.0.3")
        #expect(Self.trimmed(try cluster.exec(c01, ["dig", "+short", "-x", "fd00:db8:1::3", "@127.0.0.11"]).stdout) == "\(c02).vnet.")
        // An address inside the cluster's IPv6 prefix that no endpoint has: NXDOMAIN, never forwarded.
        let unknown = try cluster.exec(c01, ["dig", "-x", "fd00:db8:1::77", "@127.0.0.11"]).stdout
        #expect(unknown.contains("status: NXDOMAIN") && unknown.contains("flags: qr aa"), "\(unknown)")
        // A v4-only name asked for AAAA (c03 on v4net, from c03 itself): NODATA, not NXDOMAIN.
        let nodata = try cluster.exec(c03, ["dig", "AAAA", "\(c03).v4net", "@127.0.0.11"]).stdout
        #expect(nodata.contains("status: NOERROR") && nodata.contains("ANSWER: 0"), "\(nodata)")

        // Hosts files: both lines for each peer, and the sandbox's own two.
        #expect(try cluster.eventually {
            let hosts = try cluster.exec(c01, ["cat", "/etc/hosts"]).stdout
            return hosts.contains("192.168.0.3\t\(c02) \(c02).vnet db db.vnet") && hosts.contains("fd00:db8:1::3\t\(c02) \(c02).vnet db db.vnet")
                && hosts.contains("fd00:db8:1::2\t\(c01)") && hosts.contains("fd00:db8:1::99\t\(c03) \(c03).vnet")
        })
        #expect(try cluster.exec(c01, ["getent", "ahostsv6", "\(c02).vnet"]).stdout.hasPrefix("fd00:db8:1::3"))
        // Over VXLAN by IPv6, by name (hosts file) and by address; and to a local peer.
        #expect(try cluster.exec(c01, ["busybox", "ping", "-6", "-c", "3", "-w", "5", "\(c02).vnet"]).status == 0, "ping -6 crosses hosts")
        #expect(try cluster.exec(c02, ["busybox", "ping", "-6", "-c", "2", "-w", "5", "fd00:db8:1::2"]).status == 0)
        #expect(try cluster.exec(c01, ["busybox", "ping", "-6", "-c", "2", "-w", "5", "fd00:db8:1::99"]).status == 0, "a peer on this host")
        #expect(try cluster.exec(c03, ["busybox", "ping", "-6", "-c", "2", "-w", "5", "fd00:db8:1::3"]).status == 0)

        // The store holds one claim per family per endpoint.
        let claims = try cluster.etcdList("dnsd/v1/ipam/vnet/").keys.sorted()
        #expect(claims == ["dnsd/v1/ipam/vnet/192.168.0.2", "dnsd/v1/ipam/vnet/192.168.0.3", "dnsd/v1/ipam/vnet/192.168.0.4",
                           "dnsd/v1/ipam/vnet/fd00:db8:1::2", "dnsd/v1/ipam/vnet/fd00:db8:1::3", "dnsd/v1/ipam/vnet/fd00:db8:1::99"], "\(claims)")
        // Refusals: a taken IPv6 address, one outside the prefix, an IPv6 address on an IPv4 network.
        let taken = try cluster.dnsd(2, ["run", "--name=\(cluster.name("c04"))", "--net=vnet", "--ip6=fd00:db8:1::3"])
        #expect(taken.status != 0 && taken.stderr.contains("fd00:db8:1::3 is already in use"), "\(taken.stderr)")
        let outside = try cluster.dnsd(2, ["run", "--name=\(cluster.name("c04"))", "--net=vnet", "--ip6=fd00:db8:2::3"])
        #expect(outside.status != 0 && outside.stderr.contains("not in subnet fd00:db8:1::/64"), "\(outside.stderr)")
        let noFamily = try cluster.dnsd(2, ["run", "--name=\(cluster.name("c04"))", "--net=v4net", "--ip6=fd00:db8:1::5"])
        #expect(noFamily.status != 0 && noFamily.stderr.contains("has no IPv6 subnet"), "\(noFamily.stderr)")
        for refused in [taken, outside, noFamily] { #expect(refused.stderr.split(separator: "\n").count == 1, "one line") }
        #expect(try cluster.etcdList("dnsd/v1/ipam/vnet/").count == 6, "refusals claim nothing")

        // h2's daemon dies and comes back: c02 keeps both addresses, both names and both claims.
        cluster.kill(2)
        try cluster.restart(2)
        #expect(try cluster.dnsd(2, ["ps"]).stdout.contains("vnet:eth0=192.168.0.3,fd00:db8:1::3"))
        #expect(try cluster.eventually(5) {
            Self.trimmed(try cluster.exec(c02, ["dig", "+short", "AAAA", "\(c01).vnet", "@127.0.0.11"]).stdout) == "fd00:db8:1::2"
        })
        #expect(try cluster.etcdList("dnsd/v1/ipam/vnet/").count == 6)
        #expect(try cluster.exec(c02, ["busybox", "ping", "-6", "-c", "1", "-w", "5", "fd00:db8:1::2"]).status == 0, "peers programmed again")

        // Stop c02 on h2: both of its records go everywhere, and both claims from the store.
        #expect(try cluster.dnsd(2, ["stop", c02]).status == 0)
        #expect(try cluster.eventually { try cluster.exec(c01, ["dig", "AAAA", "\(c02).vnet", "@127.0.0.11"]).stdout.contains("status: NXDOMAIN") })
        #expect(try cluster.exec(c01, ["dig", "-x", "fd00:db8:1::3", "@127.0.0.11"]).stdout.contains("status: NXDOMAIN"))
        #expect(try cluster.eventually { !(try cluster.exec(c01, ["cat", "/etc/hosts"]).stdout.contains(c02)) })
        #expect(try cluster.etcdList("dnsd/v1/ipam/vnet/").keys.allSatisfy { !$0.hasSuffix(".3") && !$0.hasSuffix("::3") })
        for sandbox in [c01, c03] { #expect(try cluster.dnsd(1, ["stop", sandbox]).status == 0) }
        #expect(try cluster.dnsd(1, ["network", "rm", "vnet"]).status == 0, "no claim of either family left behind")
    }

    @Test("bad dual-stack input is one line and changes nothing")
    func refusals() throws {
        let cluster = try ClusterHarness(hosts: 1, store: "local")
        defer { cluster.close() }
        for (arguments, message) in [
            (["--subnet=10.5.0.0/24", "--subnet=fd00:5::/64", "--subnet=fd00:6::/64"], "at most one --subnet per address family"),
            (["--subnet=fd00:5::/64"], "IPv6-only networks are not supported"),
            (["--subnet=10.5.0.0/24", "--subnet=fd00:5::1/64"], "host bits set"),
            (["--subnet=10.5.0.0/24", "--subnet=fd00:5::/124"], "no free address"),
            (["--subnet=10.5.0.0/24", "--subnet=fd00:5::/64", "--gateway=fd00:6::1"], "not in subnet fd00:5::/64"),
            (["--driver=bridge", "--subnet=10.5.0.0/24", "--subnet=fd00:5::/64"], "bridge networks are IPv4 only"),
            (["--subnet=10.5.0.0/24", "--subnet=fd00:zz::/64"], "invalid subnet"),
        ] {
            let result = try cluster.dnsd(1, ["network", "create"] + arguments + ["bad"])
            #expect(result.status != 0 && result.stderr.contains(message), "\(arguments): \(result.stderr)")
            #expect(result.stderr.split(separator: "\n").count == 1, "one line: \(result.stderr)")
        }
        #expect(!(try cluster.dnsd(1, ["network", "ls"]).stdout.contains("bad")), "nothing was made")
    }

    @Test("one host, the local store, hosts mode: a dual-stack network's names in the hosts files, ping -6 by name")
    func hostsModeLocalStore() throws {
        let cluster = try ClusterHarness(hosts: 1, store: "local", dnsMode: "hosts")
        defer { cluster.close() }
        let a = cluster.name("a"), b = cluster.name("b")
        #expect(try cluster.dnsd(1, ["network", "create", "--subnet=192.168.70.0/24", "--subnet=fd00:70::/64", "hnet"]).status == 0)
        #expect(try cluster.dnsd(1, ["run", "--name=\(a)", "--net=hnet"]).status == 0)
        #expect(try cluster.dnsd(1, ["run", "--name=\(b)", "--net=hnet", "--ip6=fd00:70::b"]).status == 0)
        #expect(try cluster.eventually { try cluster.exec(a, ["getent", "ahostsv6", "\(b).hnet"]).stdout.hasPrefix("fd00:70::b") })
        #expect(try cluster.exec(a, ["getent", "ahostsv4", b]).stdout.hasPrefix("192.168.70.3"))
        #expect(try cluster.exec(a, ["busybox", "ping", "-6", "-c", "2", "-w", "5", b]).status == 0)
        #expect(try cluster.dnsd(1, ["stop", b]).status == 0)
        #expect(try cluster.eventually { try cluster.exec(a, ["getent", "hosts", "\(b).hnet"]).status == 2 })
        #expect(!(try cluster.exec(a, ["cat", "/etc/hosts"]).stdout.contains("fd00:70::b")))
    }
}
