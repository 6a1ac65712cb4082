import ClusterHarness
import Foundation
import TestSupport
import Testing

/// Issue 13 end to end with real runtimes: podman (CNI backend) on two simulated hosts and
/// containerd (`ctr run --cni`) on one, a real etcd, one dnsd daemon per host.
@Suite("Runtimes: podman and containerd through the dnsd CNI plugin", .serialized, .timeLimit(.minutes(6)))
struct CNIRuntimeTests {
    static func trimmed(_ result: Shell.Result) -> String { result.stdout.trimmingCharacters(in: .whitespacesAndNewlines) }

    /// The address `nslookup NAME 127.0.0.11` prints for a name (busybox's format), or nil.
    static func address(in output: String, of name: String) -> String? {
        let lines = output.split(separator: "\n").map(String.init)
        guard let at = lines.firstIndex(where: { $0.hasPrefix("Name:") && $0.contains(name) }), at + 1 < lines.count else { return nil }
        return lines[at + 1].split(separator: " ").last.map(String.init)
    }

    @Test("podman on h1 and h2, ctr on h2, a dnsd sandbox: names across hosts, http over VXLAN, stop and kill")
    func story() throws {
        let rt = try RuntimeHarness(hosts: 2)
        defer {
            let left = rt.finish()
            #expect(left.isEmpty, "\(left)")
        }
        let net = rt.network
        let web = rt.cluster.name("web"), c2 = rt.cluster.name("c2"), sbx = rt.cluster.name("sbx")
        let started = try rt.podman(1, ["run", "-d", "--name", web, "--network", net, "--network-alias", "www", rt.image, "httpd", "-f", "-p", "80", "-h", "/www"])
        #expect(started.status == 0, "\(started.stderr)")

        // A podman container on h2: resolv.conf from the CNI result, the name answered by dnsd
        // (web runs on h1), the page fetched over VXLAN by its short name.
        let resolv = try rt.podman(2, ["run", "--rm", "--name", rt.cluster.name("r1"), "--network", net, rt.image, "cat", "/etc/resolv.conf"])
        #expect(resolv.stdout.contains("nameserver 127.0.0.11") && resolv.stdout.contains("search \(net)"), "\(resolv.stdout)\(resolv.stderr)")
        let lookup = try rt.podman(2, ["run", "--rm", "--name", rt.cluster.name("r2"), "--network", net, rt.image, "nslookup", "\(web).\(net)"])
        #expect(Self.address(in: lookup.stdout, of: web) == "192.168.77.2", "\(lookup.stdout)\(lookup.stderr)")
        let alias = try rt.podman(2, ["run", "--rm", "--name", rt.cluster.name("r3"), "--network", net, rt.image, "nslookup", "www.\(net)"])
        #expect(Self.address(in: alias.stdout, of: "www") == "192.168.77.2", "--network-alias: \(alias.stdout)")
        let page = try rt.podman(2, ["run", "--rm", "--name", rt.cluster.name("r4"), "--network", net, rt.image, "wget", "-qO-", "http://\(web)/"])
        #expect(page.stdout.contains("hello from dnsd-busybox"), "\(page.stdout)\(page.stderr)")
        // --ip: the requested address.
        let pinned = try rt.podman(2, ["run", "--rm", "--name", rt.cluster.name("r5"), "--network", net, "--ip", "192.168.77.200", rt.image, "ip", "-4", "-o", "addr", "show", "eth0"])
        #expect(pinned.stdout.contains("192.168.77.200/24"), "\(pinned.stdout)\(pinned.stderr)")
        // The way out: the gateway bridge's NAT takes a container to another host's underlay address.
        let out = try rt.podman(1, ["exec", web, "ping", "-c", "1", "-W", "2", "198.18.0.2"])
        #expect(out.status == 0, "\(out.stdout)\(out.stderr)")
        // What podman reports and writes is the network's address, not the way-out leg's (issue
        // 21, item 13): inspect's address on the network, and the container's own hosts line.
        let inspected = try rt.podman(1, ["inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{.SecondaryIPAddresses}}{{end}}", web])
        #expect(inspected.stdout.hasPrefix("192.168.77.2 ") && !inspected.stdout.contains("172.18."), "\(inspected.stdout)\(inspected.stderr)")
        let ownLines = try rt.podman(1, ["exec", web, "cat", "/etc/hosts"]).stdout.split(separator: "\n").filter { $0.contains(web) }
        #expect(!ownLines.isEmpty && !ownLines.contains { $0.contains("172.18.") }, "\(ownLines)")
        // A name is unique in the cluster: podman's run fails with dnsd's one line.
        let clash = try rt.podman(2, ["run", "--rm", "--name", web, "--network", net, rt.image, "true"])
        #expect(clash.status != 0 && clash.stderr.contains("already used in the cluster"), "\(clash.stderr)")

        // containerd on h2 (ctr never passes a name: the container id, "<namespace>-<id>", is it).
        try rt.startContainerd(2)
        let ran = try rt.ctr(2, ["run", "-d", "--cni", rt.image, c2, "sleep", "600"])
        #expect(ran.status == 0, "\(ran.stderr)")
        let ctrName = "dnsd-\(c2)"
        let fromCtr = try rt.ctr(2, ["tasks", "exec", "--exec-id", "q1", c2, "nslookup", "\(web).\(net)", "127.0.0.11"])
        #expect(Self.address(in: fromCtr.stdout, of: web) == "192.168.77.2", "\(fromCtr.stdout)\(fromCtr.stderr)")
        let ctrAddress = try #require(try rt.cluster.dnsd(2, ["ps"]).stdout.split(separator: "\n").first { $0.hasPrefix(ctrName) })
        #expect(ctrAddress.contains("\(net):eth0=192.168.77."))

        // A dnsd sandbox on h2 and the podman container on h1 resolve each other.
        #expect(try rt.cluster.dnsd(2, ["run", "--name", sbx, "--net", net]).status == 0)
        #expect(try rt.cluster.eventually { Self.trimmed(try rt.cluster.exec(sbx, ["dig", "+short", "\(web).\(net)", "@127.0.0.11"])) == "192.168.77.2" })
        let back = try rt.podman(1, ["exec", web, "nslookup", "\(sbx).\(net)"])
        #expect(Self.address(in: back.stdout, of: sbx) != nil, "\(back.stdout)\(back.stderr)")
        let toCtr = try rt.podman(1, ["exec", web, "nslookup", ctrName])
        #expect(Self.address(in: toCtr.stdout, of: ctrName) != nil, "podman on h1 finds ctr's container on h2: \(toCtr.stdout)")

        // podman stop: DEL; the name vanishes on h2.
        #expect(try rt.podman(1, ["stop", "-t", "0", web]).status == 0)
        #expect(try rt.cluster.eventually(5) { try rt.cluster.exec(sbx, ["dig", "\(web).\(net)", "@127.0.0.11"]).stdout.contains("NXDOMAIN") })
        // ctr never calls DEL for a detached task: the daemon notices the process is gone.
        #expect(try rt.ctr(2, ["tasks", "kill", "-s", "KILL", c2]).status == 0)
        #expect(try rt.cluster.eventually(10) { !(try rt.cluster.dnsd(2, ["ps"]).stdout.contains(ctrName)) }, "withdrawn without a DEL")
        #expect(try rt.cluster.eventually(5) { try rt.cluster.exec(sbx, ["dig", "\(ctrName).\(net)", "@127.0.0.11"]).stdout.contains("NXDOMAIN") })
        #expect(try rt.cluster.dnsd(2, ["stop", sbx]).status == 0)
    }

    @Test("podman kill calls DEL; a daemon restart keeps podman containers attached and answering; DEL after it still withdraws")
    func restart() throws {
        // The liveness check would withdraw a dead container within 2 s: slowed down here, so
        // only podman's DEL can make the names go within the test's windows.
        let rt = try RuntimeHarness(hosts: 2, daemonOptions: ["--liveness-interval", "3600"])
        defer {
            let left = rt.finish()
            #expect(left.isEmpty, "\(left)")
        }
        let net = rt.network
        let a = rt.cluster.name("a"), b = rt.cluster.name("b")
        #expect(try rt.podman(1, ["run", "-d", "--name", a, "--network", net, rt.image, "sleep", "600"]).status == 0)
        #expect(try rt.podman(2, ["run", "-d", "--name", b, "--network", net, rt.image, "sleep", "600"]).status == 0)
        func lookup(_ host: Int, from container: String, _ name: String) throws -> String? {
            Self.address(in: try rt.podman(host, ["exec", container, "nslookup", "\(name).\(net)"]).stdout, of: name)
        }
        #expect(try rt.cluster.eventually { try lookup(2, from: b, a) == "192.168.77.2" })

        // podman kill: its cleanup still calls DEL.
        let killed = rt.cluster.name("k1")
        #expect(try rt.podman(1, ["run", "-d", "--name", killed, "--network", net, rt.image, "sleep", "600"]).status == 0)
        #expect(try rt.cluster.eventually(5) { try lookup(2, from: b, killed) != nil })
        #expect(try rt.podman(1, ["kill", killed]).status == 0)
        #expect(try rt.cluster.eventually(8) {
            try rt.podman(2, ["exec", b, "nslookup", "\(killed).\(net)"]).stdout.contains("NXDOMAIN")
        }, "withdrawn by podman's DEL")
        #expect(!(try rt.cluster.dnsd(1, ["ps"]).stdout.contains(killed)))

        // h1's daemon dies without warning and comes back: a keeps its address and its name,
        // and its own resolver answers again.
        rt.cluster.kill(1)
        try rt.cluster.restart(1)
        #expect(try rt.cluster.dnsd(1, ["ps"]).stdout.contains("\(a)"))
        #expect(try rt.cluster.eventually(5) { try lookup(2, from: b, a) == "192.168.77.2" })
        #expect(try rt.cluster.eventually(5) { try lookup(1, from: a, b) == "192.168.77.3" })
        // The journal remembered the container id: podman's DEL after the restart withdraws it.
        #expect(try rt.podman(1, ["stop", "-t", "0", a]).status == 0)
        #expect(try rt.cluster.eventually(5) { try lookup(2, from: b, a) == nil })
        #expect(!(try rt.cluster.dnsd(1, ["ps"]).stdout.contains(a)))
        #expect(try rt.podman(2, ["stop", "-t", "0", b]).status == 0)
    }
}
