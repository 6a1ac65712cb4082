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
        #expect(nodata.contains("status: NOERROR") && nodata.contains("flags: qr aa") && nodata.contains("ANSWER: 0, AUTHORITY: 1")
                && nodata.range(of: #"v4net\.\s+10\s+IN\s+SOA"#, options: .regularExpression) != nil, "\(nodata)")

        // IPv6 is on only where a dual-stack network needs it: c03's interface on vnet, not its
        // IPv4-only ones; vxlan0 without an address of its own; the IPv6 gateway on no device.
        func sysctl(_ sandbox: String, _ interface: String) throws -> String {
            Self.trimmed(try cluster.exec(sandbox, ["cat", "/proc/sys/net/ipv6/conf/\(interface)/disable_ipv6"]).stdout)
        }
        #expect(try sysctl(c03, "eth0") == "1" && (try sysctl(c03, "eth1")) == "1" && (try sysctl(c03, "eth2")) == "0")
        let overlay1 = "\(cluster.hostID(1))-ov-vnet", overlay2 = "\(cluster.hostID(2))-ov-vnet"
        #expect(Self.trimmed(try Shell.run(["ip", "-n", overlay1, "-6", "addr", "show", "dev", "vxlan0"]).stdout).isEmpty)
        #expect(!(try Shell.run(["ip", "-n", overlay1, "-6", "addr", "show"]).stdout.contains("fd00:db8:1::1")))
        // One permanent neighbour per remote address (the proxy's answers), one FDB entry per peer.
        func neighbours(_ overlay: String) throws -> String { try Shell.run(["ip", "-n", overlay, "-6", "neigh", "show", "dev", "vxlan0"]).stdout }
        let shown = try neighbours(overlay1)
        #expect(shown.contains("fd00:db8:1::3 lladdr 02:42:c0:a8:00:03 PERMANENT"), "\(shown)")
        let fdb = try Shell.run(["bridge", "-n", overlay1, "fdb", "show", "dev", "vxlan0"]).stdout
        #expect(fdb.split(separator: "\n").filter { $0.hasPrefix("02:42:c0:a8:00:03 dst") }.count == 1, "\(fdb)")

        // Hosts files: both lines for each peer, and the sandbox's own two.
        #expect(try cluster.eventually {
            let hosts = try cluster.exec(c01, ["cat", "/etc/hosts"]).stdout
            return hosts.contains("192.168.0.3\t\(c02) \(c02).vnet db db.vnet") && hosts.contains("fd00:db8:1::3\t\(c02) \(c02).vnet db db.vnet")
                && hosts.contains("fd00:db8:1::2\t\(c01)") && hosts.contains("fd00:db8:1::99\t\(c03) \(c03).vnet")
        })
        #expect(try cluster.exec(c01, ["getent", "ahostsv6", "\(c02).vnet"]).stdout.hasPrefix("fd00:db8:1::3"))
        // `dnsd inspect` shows both: the sandbox's own IPv6 address, its resolver's AAAA for c02.
        let inspected = try cluster.dnsd(1, ["inspect", c01]).stdout.filter { !$0.isWhitespace }
        #expect(inspected.contains(#""address6":"fd00:db8:1::2""#) && inspected.contains(#""address6":"fd00:db8:1::3""#)
                && inspected.contains(#""subnet6":"fd00:db8:1::/64""#), "\(inspected)")
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
        let c04 = cluster.name("c04")
        let taken = try cluster.dnsd(2, ["run", "--name=\(c04)", "--net=vnet", "--ip6=fd00:db8:1::3"])
        #expect(taken.status != 0 && taken.stderr.contains("fd00:db8:1::3 is already in use"), "\(taken.stderr)")
        let outside = try cluster.dnsd(2, ["run", "--name=\(cluster.name("c04"))", "--net=vnet", "--ip6=fd00:db8:2::3"])
        #expect(outside.status != 0 && outside.stderr.contains("not in subnet fd00:db8:1::/64"), "\(outside.stderr)")
        let noFamily = try cluster.dnsd(2, ["run", "--name=\(cluster.name("c04"))", "--net=v4net", "--ip6=fd00:db8:1::5"])
        #expect(noFamily.status != 0 && noFamily.stderr.contains("has no IPv6 subnet"), "\(noFamily.stderr)")
        let swapped = try cluster.dnsd(2, ["run", "--name=\(c04)", "--net=vnet", "--ip=fd00:db8:1::5"])
        #expect(swapped.status != 0 && swapped.stderr.contains("expected an IPv4 address"), "\(swapped.stderr)")
        let swapped6 = try cluster.dnsd(2, ["run", "--name=\(c04)", "--net=vnet", "--ip6=192.168.0.9"])
        #expect(swapped6.status != 0 && swapped6.stderr.contains("expected an IPv6 address"), "\(swapped6.stderr)")
        for refused in [taken, outside, noFamily, swapped, swapped6] { #expect(refused.stderr.split(separator: "\n").count == 1, "one line") }
        #expect(try cluster.etcdList("dnsd/v1/ipam/vnet/").keys.sorted() == claims, "refusals claim nothing")
        let listed = try cluster.dnsd(2, ["ps"]).stdout
        #expect(!NamedNamespacesList.contains(c04) && !listed.contains(c04), "and make nothing")

        // h2's daemon dies and comes back: c02 keeps both addresses, both names and both claims
        // (held again under its new lease: checked after the old one has lapsed), and its peers'
        // IPv6 neighbours are programmed again (one removed by hand meanwhile comes back).
        cluster.kill(2)
        try Shell.check(["ip", "-n", overlay2, "-6", "neigh", "del", "fd00:db8:1::2", "dev", "vxlan0"])
        try cluster.restart(2)
        #expect(try cluster.dnsd(2, ["ps"]).stdout.contains("vnet:eth0=192.168.0.3,fd00:db8:1::3"))
        #expect(try cluster.eventually(5) { try neighbours(overlay2).contains("fd00:db8:1::2 lladdr 02:42:c0:a8:00:02 PERMANENT") })
        usleep(4_500_000)  // past the harness's lease TTL (3 s): what is left was held again
        #expect(try cluster.etcdList("dnsd/v1/ipam/vnet/").keys.sorted() == claims)
        #expect(Self.trimmed(try cluster.exec(c01, ["dig", "+short", "AAAA", "\(c02).vnet", "@127.0.0.11"]).stdout) == "fd00:db8:1::3")
        #expect(Self.trimmed(try cluster.exec(c02, ["dig", "+short", "AAAA", "\(c01).vnet", "@127.0.0.11"]).stdout) == "fd00:db8:1::2")
        #expect(try cluster.exec(c02, ["busybox", "ping", "-6", "-c", "1", "-w", "5", "fd00:db8:1::2"]).status == 0)

        // c03 leaves vnet: both of its claims, its lines of both families, its AAAA go.
        #expect(try cluster.dnsd(1, ["network", "disconnect", "vnet", c03]).status == 0)
        #expect(try cluster.eventually {
            let hosts = try cluster.exec(c01, ["cat", "/etc/hosts"]).stdout
            let answer = try cluster.exec(c02, ["dig", "AAAA", "\(c03).vnet", "@127.0.0.11"]).stdout
            return !hosts.contains(c03) && answer.contains("status: NXDOMAIN")
        })
        #expect(try cluster.eventually { !(try neighbours(overlay2).contains("fd00:db8:1::99")) }, "its neighbour gone on the other host")
        #expect(try cluster.etcdList("dnsd/v1/ipam/vnet/").keys.sorted() == claims.filter { !$0.hasSuffix("/192.168.0.4") && !$0.hasSuffix("::99") })

        // Stop c02 on h2: both of its records go everywhere, and both claims from the store.
        #expect(try cluster.dnsd(2, ["stop", c02]).status == 0)
        #expect(try cluster.eventually { try cluster.exec(c01, ["dig", "AAAA", "\(c02).vnet", "@127.0.0.11"]).stdout.contains("status: NXDOMAIN") })
        #expect(try cluster.exec(c01, ["dig", "-x", "fd00:db8:1::3", "@127.0.0.11"]).stdout.contains("status: NXDOMAIN"))
        #expect(try cluster.eventually { !(try cluster.exec(c01, ["cat", "/etc/hosts"]).stdout.contains(c02)) })
        #expect(try cluster.eventually { !(try neighbours(overlay1).contains("fd00:db8:1::3")) }, "its neighbour gone from h1's vxlan0")
        #expect(try cluster.etcdList("dnsd/v1/ipam/vnet/").keys.sorted() == ["dnsd/v1/ipam/vnet/192.168.0.2", "dnsd/v1/ipam/vnet/fd00:db8:1::2"])
        for sandbox in [c01, c03] { #expect(try cluster.dnsd(1, ["stop", sandbox]).status == 0) }
        #expect(try cluster.dnsd(1, ["network", "rm", "vnet"]).status == 0, "no claim of either family left behind")
    }

    @Test("bad dual-stack input is one line and changes nothing")
    func refusals() throws {
        let cluster = try ClusterHarness(hosts: 1, store: "local")
        defer { cluster.close() }
        for (arguments, message) in [
            (["--subnet=10.5.0.0/24", "--subnet=fd00:5::/64", "--subnet=fd00:6::/64"], "at most one --subnet per address family"),
            (["--driver=bridge", "--subnet=fd00:5::/64"], "bridge networks are IPv4 only"),
            (["--subnet=fd00:5::/64", "--gateway=10.5.0.1"], "an IPv4 gateway needs an IPv4 subnet"),
            (["--subnet=10.5.0.0/24", "--subnet=fd00:5::1/64"], "host bits set"),
            (["--subnet=10.5.0.0/24", "--subnet=fd00:5::/121"], "has no room for containers (at most /120)"),
            (["--subnet=10.5.0.0/24", "--subnet=fd00:5::/64", "--gateway=fd00:6::1"], "not in subnet fd00:5::/64"),
            (["--driver=bridge", "--subnet=10.5.0.0/24", "--subnet=fd00:5::/64"], "bridge networks are IPv4 only"),
            (["--subnet=10.5.0.0/24", "--subnet=fd00:zz::/64"], "invalid subnet"),
            (["--subnet=10.5.0.0/24", "--subnet=fe80::/64"], "cannot be a network's IPv6 prefix: link-local space"),
            (["--subnet=10.5.0.0/24", "--subnet=fd00::/40"], "shorter than /48"),
        ] {
            let result = try cluster.dnsd(1, ["network", "create"] + arguments + ["bad"])
            #expect(result.status != 0 && result.stderr.contains(message), "\(arguments): \(result.stderr)")
            #expect(result.stderr.split(separator: "\n").count == 1, "one line: \(result.stderr)")
        }
        #expect(!(try cluster.dnsd(1, ["network", "ls"]).stdout.contains("bad")), "nothing was made")
        // The longest prefix allowed works.
        #expect(try cluster.dnsd(1, ["network", "create", "--subnet=10.5.0.0/24", "--subnet=fd00:5::/120", "good"]).status == 0)
    }

    @Test("an IPv6-only network across hosts: AAAA only (A is NODATA), IPv6 hosts lines, ping -6, one claim per endpoint; addresses past the first 2^32 refused")
    func ipv6Only() throws {
        let cluster = try ClusterHarness(hosts: 2)
        defer { cluster.close() }
        let a = cluster.name("a"), b = cluster.name("b")
        let created = try cluster.dnsd(1, ["network", "create", "--subnet=fd00:db8:6::/64", "v6net"])
        #expect(created.status == 0 && created.stdout.hasPrefix("v6net overlay fd00:db8:6::/64"), "\(created.stdout)\(created.stderr)")
        let ranA = try cluster.dnsd(1, ["run", "--name=\(a)", "--net=v6net"])
        #expect(ranA.stdout.contains("v6net:eth0=fd00:db8:6::2 "), "\(ranA.stdout)\(ranA.stderr)")
        let ranB = try cluster.dnsd(2, ["run", "--name=\(b)", "--net=v6net", "--alias=six"])
        #expect(ranB.stdout.contains("v6net:eth0=fd00:db8:6::3 "), "\(ranB.stdout)\(ranB.stderr)")
        #expect(try cluster.eventually {
            Self.trimmed(try cluster.exec(a, ["dig", "+short", "AAAA", "six.v6net", "@127.0.0.11"]).stdout) == "fd00:db8:6::3"
        })
        let noA = try cluster.exec(a, ["dig", "A", "\(b).v6net", "@127.0.0.11"]).stdout
        #expect(noA.contains("status: NOERROR") && noA.contains("ANSWER: 0"), "A of an IPv6-only name is NODATA: \(noA)")
        #expect(Self.trimmed(try cluster.exec(a, ["dig", "+short", "-x", "fd00:db8:6::3", "@127.0.0.11"]).stdout) == "\(b).v6net.")
        let hosts = try cluster.exec(a, ["cat", "/etc/hosts"]).stdout
        #expect(hosts.contains("fd00:db8:6::3\t\(b) \(b).v6net six six.v6net") && hosts.contains("fd00:db8:6::2\t\(a)"), "\(hosts)")
        #expect(try cluster.exec(a, ["busybox", "ping", "-6", "-c", "2", "-w", "5", "\(b).v6net"]).status == 0, "ping -6 across hosts")
        // Its interface has no IPv4 address; its way out is the gateway bridge's IPv4 leg.
        let own = try cluster.exec(a, ["ip", "-o", "addr", "show", "dev", "eth0"]).stdout
        #expect(own.contains("inet6 fd00:db8:6::2/64") && !own.contains("inet "), "\(own)")
        #expect(try cluster.etcdList("dnsd/v1/ipam/v6net/").keys.sorted() == ["dnsd/v1/ipam/v6net/fd00:db8:6::2", "dnsd/v1/ipam/v6net/fd00:db8:6::3"])
        // Addresses: --ip6 within the first 2^32 (MACs come from the low 32 bits), no --ip.
        let far = try cluster.dnsd(2, ["run", "--name=\(cluster.name("c"))", "--net=v6net", "--ip6=fd00:db8:6::1:0:5"])
        #expect(far.status != 0 && far.stderr.contains("past the first 2^32 addresses"), "\(far.stderr)")
        let v4 = try cluster.dnsd(2, ["run", "--name=\(cluster.name("c"))", "--net=v6net", "--ip=10.0.0.5"])
        #expect(v4.status != 0 && v4.stderr.contains("has no IPv4 subnet"), "\(v4.stderr)")
        let pinned = try cluster.dnsd(2, ["run", "--name=\(cluster.name("c"))", "--net=v6net", "--ip6=fd00:db8:6::ffff:fffe"])
        #expect(pinned.stdout.contains("v6net:eth0=fd00:db8:6::ffff:fffe "), "\(pinned.stdout)\(pinned.stderr)")
        // A daemon restart keeps it; stop takes its name and claim everywhere.
        cluster.kill(2)
        try cluster.restart(2)
        #expect(try cluster.dnsd(2, ["ps"]).stdout.contains("v6net:eth0=fd00:db8:6::3 "))
        #expect(try cluster.exec(b, ["busybox", "ping", "-6", "-c", "1", "-w", "5", "fd00:db8:6::2"]).status == 0)
        for (host, name) in [(2, b), (2, cluster.name("c")), (1, a)] { #expect(try cluster.dnsd(host, ["stop", name]).status == 0) }
        #expect(try cluster.eventually { try cluster.etcdList("dnsd/v1/ipam/v6net/").isEmpty })
        #expect(try cluster.dnsd(1, ["network", "rm", "v6net"]).status == 0)
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
        let own = try cluster.exec(b, ["cat", "/etc/hosts"]).stdout
        let ownLines = own.split(separator: "\n").map(String.init)
        #expect(ownLines.contains { $0.hasPrefix("192.168.70.3\t\(b)") } && ownLines.contains { $0.hasPrefix("fd00:70::b\t\(b)") },
                "its own two lines: \(own)")
        #expect(try cluster.exec(a, ["getent", "ahostsv4", b]).stdout.hasPrefix("192.168.70.3"))
        #expect(try cluster.exec(a, ["busybox", "ping", "-6", "-c", "2", "-w", "5", b]).status == 0)
        #expect(try cluster.dnsd(1, ["stop", b]).status == 0)
        #expect(try cluster.eventually { try cluster.exec(a, ["getent", "hosts", "\(b).hnet"]).status == 2 })
        #expect(!(try cluster.exec(a, ["cat", "/etc/hosts"]).stdout.contains("fd00:70::b")))
    }
}
