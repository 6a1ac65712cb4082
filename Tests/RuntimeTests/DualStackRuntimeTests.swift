import ClusterHarness
import Foundation
import TestSupport
import Testing

/// Issue 24 with real runtimes: a podman container (CNI) on h1 and a Docker container (remote
/// driver and IPAM) on h2 on one dual-stack dnsd network, a real etcd: each resolves the other's
/// AAAA and pings it over IPv6 across the VXLAN; stopping each takes both families away.
@Suite("Runtimes: podman and Docker on a dual-stack network", .serialized, .timeLimit(.minutes(6)))
struct DualStackRuntimeTests {
    /// The addresses busybox `nslookup` prints for `name` (every `Address:` line after its `Name:`).
    static func addresses(in output: String, of name: String) -> [String] {
        let lines = output.split(separator: "\n").map(String.init)
        guard let at = lines.firstIndex(where: { $0.hasPrefix("Name:") && $0.contains(name) }) else { return [] }
        return lines[(at + 1)...].prefix { $0.hasPrefix("Address") }.compactMap { $0.split(separator: " ").last.map(String.init) }
    }

    @Test("podman --ip6 on h1, docker on h2 (IPv6 from dnsd's IPAM): AAAA by name both ways, ping -6 over VXLAN, stop takes both families")
    func podmanAndDocker() throws {
        let rt = try RuntimeHarness(hosts: 2, docker: true, daemonOptions: ["--liveness-interval", "3600"], subnet6: "fd00:77::/64")
        defer {
            let left = rt.finish()
            #expect(left.isEmpty, "\(left)")
        }
        try rt.startDockerd(2)
        let net = rt.network
        let pod = rt.cluster.name("pod"), dock = rt.cluster.name("dock")

        // podman with --ip6: the CNI plugin gets it (IP= / runtimeConfig.ips) and reports both.
        let started = try rt.podman(1, ["run", "-d", "--name", pod, "--network", net, "--ip6", "fd00:77::a", rt.image, "sleep", "600"])
        #expect(started.status == 0, "\(started.stderr)")
        let own = try rt.podman(1, ["exec", pod, "ip", "-6", "-o", "addr", "show", "eth0"]).stdout
        #expect(own.contains("fd00:77::a/64"), "\(own)")
        let inspected = try rt.podman(1, ["inspect", "--format", "{{range .NetworkSettings.Networks}}{{.GlobalIPv6Address}}{{end}}", pod])
        #expect(inspected.stdout.contains("fd00:77::a"), "podman reports the IPv6 address of the CNI result: \(inspected.stdout)\(inspected.stderr)")

        // dockerd on h2 has the dnsd network with IPv6 on (the sync made it so); its container gets
        // an IPv6 address from dnsd's IPAM.
        #expect(try rt.cluster.eventually(5) { try rt.docker(2, ["network", "ls"]).stdout.contains(net) })
        let enabled = try rt.docker(2, ["network", "inspect", "--format", "{{.EnableIPv6}} {{range .IPAM.Config}}{{.Subnet}} {{end}}", net]).stdout
        #expect(enabled.contains("true") && enabled.contains("fd00:77::/64") && enabled.contains("192.168.77.0/24"), "\(enabled)")
        let ran = try rt.docker(2, ["run", "-d", "--name", dock, "--dns", "192.168.77.1", "--network", net, rt.image, "sleep", "600"])
        #expect(ran.status == 0, "\(ran.stderr)")
        let dockerOwn = try rt.docker(2, ["exec", dock, "ip", "-6", "-o", "addr", "show", "eth0"]).stdout
        let dockerV6 = try #require(dockerOwn.split(separator: " ").first { $0.hasPrefix("fd00:77::") }.map { String($0.split(separator: "/")[0]) },
                                    "docker's container has an IPv6 address of the network: \(dockerOwn)")
        #expect(try rt.cluster.etcdList("dnsd/v1/ipam/\(net)/").keys.contains("dnsd/v1/ipam/\(net)/\(dockerV6)"), "claimed in the cluster IPAM")

        // Names both ways, by AAAA: the podman container asks dnsd at 127.0.0.11, the Docker one
        // asks dnsd's resolver at the network's gateway.
        #expect(try rt.cluster.eventually(5) {
            Self.addresses(in: try rt.podman(1, ["exec", pod, "nslookup", "-type=AAAA", "\(dock).\(net)"]).stdout, of: dock) == [dockerV6]
        })
        #expect(try rt.cluster.eventually(5) {
            Self.addresses(in: try rt.docker(2, ["exec", dock, "nslookup", "-type=AAAA", "\(pod).\(net)", "192.168.77.1"]).stdout, of: pod)
                == ["fd00:77::a"]
        })
        // ...and ping each other over IPv6 by name, across hosts.
        let toDocker = try rt.podman(1, ["exec", pod, "ping", "-6", "-c", "2", "-W", "3", "\(dock).\(net)"])
        #expect(toDocker.status == 0, "\(toDocker.stdout)\(toDocker.stderr)")
        let toPodman = try rt.docker(2, ["exec", dock, "ping", "-6", "-c", "2", "-W", "3", "\(pod).\(net)"])
        #expect(toPodman.status == 0, "\(toPodman.stdout)\(toPodman.stderr)")

        // h2's dnsd dies and comes back: the Docker container is taken back from dockerd with its
        // IPv6 address (GlobalIPv6Address), its claim held again under the new lease (checked once
        // the old lease has lapsed) and its AAAA still answered on h1.
        rt.cluster.kill(2)
        try rt.cluster.restart(2)
        usleep(4_500_000)  // past the harness's lease TTL (3 s)
        #expect(try rt.cluster.eventually(5) {
            Self.addresses(in: try rt.podman(1, ["exec", pod, "nslookup", "-type=AAAA", "\(dock).\(net)"]).stdout, of: dock) == [dockerV6]
        })
        #expect(try rt.cluster.etcdList("dnsd/v1/ipam/\(net)/").keys.contains("dnsd/v1/ipam/\(net)/\(dockerV6)"))
        let endpoints = try rt.cluster.etcdList("dnsd/v1/endpoints/\(net)/").values.compactMap {
            (try? JSONSerialization.jsonObject(with: Data($0))) as? [String: Any]
        }
        #expect(endpoints.contains { $0["name"] as? String == dock && $0["ipv6"] as? String == dockerV6 }, "\(endpoints)")

        // A dual-stack network made from Docker: both pools judged and served by dnsd's IPAM, the
        // dnsd network made with both subnets, a container on it with an address of each.
        let d6 = "d" + net.dropFirst()
        let made = try rt.docker(2, ["network", "create", "-d", "dnsd", "--ipam-driver", "dnsd", "--ipv6",
                                     "--subnet", "192.168.82.0/24", "--subnet", "fd00:82::/64", d6])
        #expect(made.status == 0, "\(made.stderr)")
        #expect(try rt.cluster.eventually(5) { try rt.cluster.dnsd(1, ["network", "ls"]).stdout.contains("192.168.82.0/24 fd00:82::/64") })
        let onD6 = try rt.docker(2, ["run", "--rm", "--network", d6, rt.image, "ip", "-o", "addr", "show", "eth0"])
        #expect(onD6.stdout.contains("192.168.82.2/24") && onD6.stdout.contains("fd00:82::2/64"), "\(onD6.stdout)\(onD6.stderr)")
        #expect(try rt.docker(2, ["network", "rm", d6]).status == 0)
        #expect(try rt.cluster.eventually(5) { !(try rt.cluster.dnsd(1, ["network", "ls"]).stdout.contains(d6)) })

        // Stop: each container's two records and two claims go everywhere.
        #expect(try rt.docker(2, ["rm", "-f", dock]).status == 0)
        #expect(try rt.cluster.eventually(8) {
            try rt.podman(1, ["exec", pod, "nslookup", "-type=AAAA", "\(dock).\(net)"]).stdout.contains("NXDOMAIN")
        })
        #expect(try rt.cluster.eventually(8) { !(try rt.cluster.etcdList("dnsd/v1/ipam/\(net)/").keys.contains { $0.hasSuffix("/" + dockerV6) }) })
        #expect(try rt.podman(1, ["stop", "-t", "0", pod]).status == 0)
        #expect(try rt.cluster.eventually(8) { try rt.cluster.etcdList("dnsd/v1/ipam/\(net)/").isEmpty }, "both families' claims released")
        #expect(try rt.cluster.etcdList("dnsd/v1/endpoints/\(net)/").isEmpty)
    }
}
