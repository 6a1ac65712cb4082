import ClusterHarness
import Foundation
import TestSupport
import Testing

/// The dnsd CNI plugin against one daemon (local store), executed as runtimes execute it: the
/// `dnsd-cni` binary with CNI_* variables and the configuration on stdin.
@Suite("CNI plugin protocol", .serialized, .timeLimit(.minutes(3)))
struct CNIPluginTests {
    struct Invocation {
        var status: Int32
        var json: [String: Any]
        var raw: String
    }

    final class Fixture {
        let cluster: ClusterHarness
        init() throws {
            cluster = try ClusterHarness(hosts: 1, store: "local")
            let created = try cluster.dnsd(1, ["network", "create", "--subnet=192.168.60.0/24", "pnet"])
            guard created.status == 0 else { throw ShellError(command: "network create", status: created.status, stderr: created.stderr) }
        }

        /// A namespace for a "container" (removed by the harness).
        func namespace(_ base: String) throws -> String {
            let name = cluster.name(base)
            try Shell.check(["ip", "netns", "add", name])
            return name
        }

        func config(_ extra: [String: Any] = [:], network: String = "pnet") -> String {
            var object: [String: Any] = ["cniVersion": "1.0.0", "name": network, "type": "dnsd", "socket": cluster.socket(1)]
            object.merge(extra) { $1 }
            return String(decoding: try! JSONSerialization.data(withJSONObject: object), as: UTF8.self)
        }

        func cni(_ command: String, id: String, netns: String? = nil, ifname: String = "eth0", args: String? = nil,
                 stdin: String) throws -> Invocation {
            var environment = ["CNI_COMMAND=\(command)", "CNI_CONTAINERID=\(id)", "CNI_IFNAME=\(ifname)", "CNI_PATH=/usr/lib/cni"]
            if let netns { environment.append("CNI_NETNS=\(netns)") }
            if let args { environment.append("CNI_ARGS=\(args)") }
            let plugin = (ClusterHarness.dnsdBinary as NSString).deletingLastPathComponent + "/dnsd-cni"
            let result = try Shell.run(["env", "-i"] + environment + [plugin], input: stdin)
            let json = (try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8))) as? [String: Any] ?? [:]
            return Invocation(status: result.status, json: json, raw: result.stdout + result.stderr)
        }

        func ps() throws -> String { try cluster.dnsd(1, ["ps"]).stdout }
        func close() { cluster.close() }
    }

    static func code(_ invocation: Invocation) -> Int? { invocation.json["code"] as? Int }

    @Test("ADD returns a 1.0.0 result, the name answers in the namespace, CHECK passes, DEL is idempotent")
    func lifecycle() throws {
        let f = try Fixture()
        defer { f.close() }
        let ns = try f.namespace("c1")
        let version = try f.cni("VERSION", id: "x", stdin: f.config())
        #expect(version.status == 0 && (version.json["supportedVersions"] as? [String])?.contains("1.0.0") == true, "\(version.raw)")

        let add = try f.cni("ADD", id: "cid-1", netns: "/run/netns/\(ns)", args: "IgnoreUnknown=1;K8S_POD_NAME=\(f.cluster.prefix)_festive_hopper",
                            stdin: f.config(["runtimeConfig": ["aliases": ["pnet": ["www", "cid1short"]]]]))
        #expect(add.status == 0, "\(add.raw)")
        let ips = try #require(add.json["ips"] as? [[String: Any]])
        #expect(ips.first?["address"] as? String == "192.168.60.2/24" && ips.first?["gateway"] as? String == "192.168.60.1")
        #expect(ips.first?["interface"] as? Int == 0)
        #expect(ips.first?["address"] as? String == "192.168.60.2/24")
        let interfaces = try #require(add.json["interfaces"] as? [[String: Any]])
        #expect(interfaces.first?["name"] as? String == "eth0" && interfaces.first?["sandbox"] as? String == "/run/netns/\(ns)")
        // On an overlay the container also gets its way out: a leg on the gateway bridge with the
        // default route, in the result and in the kernel.
        #expect(interfaces.count == 2 && interfaces.last?["name"] as? String == "dnsgw0", "\(interfaces)")
        // The leg's address is not one of the container's on this network (issue 21, item 13: a
        // runtime reports `ips` as the container's addresses, podman writes them into its hosts file).
        #expect(ips.count == 1, "\(ips)")
        #expect((add.json["routes"] as? [[String: Any]])?.first?["gw"] as? String == "172.18.0.1")
        #expect(try f.cluster.exec(ns, ["ip", "route", "show", "default"]).stdout.contains("via 172.18.0.1 dev dnsgw0"))
        let dns = try #require(add.json["dns"] as? [String: Any])
        #expect(dns["nameservers"] as? [String] == ["127.0.0.11"] && dns["search"] as? [String] == ["pnet"])
        // podman's generated name (with '_') becomes a DNS label; the aliases answer too.
        let name = "\(f.cluster.prefix)-festive-hopper"
        #expect(try f.ps().contains(name))
        #expect(try f.cluster.exec(ns, ["dig", "+short", "\(name).pnet", "@127.0.0.11"]).stdout.contains("192.168.60.2"))
        #expect(try f.cluster.exec(ns, ["dig", "+short", "www", "@127.0.0.11"]).stdout.contains("192.168.60.2"))
        #expect(try f.cluster.exec(ns, ["ip", "-o", "-4", "addr", "show", "eth0"]).stdout.contains("192.168.60.2/24"))

        // CHECK against the ADD result; against a different address it fails.
        let previous = ["prevResult": add.json]
        #expect(try f.cni("CHECK", id: "cid-1", netns: "/run/netns/\(ns)", stdin: f.config(previous)).status == 0)
        var wrong = add.json
        wrong["ips"] = [["address": "192.168.60.99/24", "interface": 0]]
        let mismatch = try f.cni("CHECK", id: "cid-1", netns: "/run/netns/\(ns)", stdin: f.config(["prevResult": wrong]))
        #expect(mismatch.status != 0 && Self.code(mismatch) == 100, "\(mismatch.raw)")
        // The interface exists: a second ADD is refused and changes nothing.
        let again = try f.cni("ADD", id: "cid-1", netns: "/run/netns/\(ns)", stdin: f.config())
        #expect(again.status != 0 && Self.code(again) != nil, "\(again.raw)")

        // DEL, twice, the second without CNI_NETNS (as ctr sends it): both succeed.
        #expect(try f.cni("DEL", id: "cid-1", netns: "/run/netns/\(ns)", stdin: f.config(previous)).status == 0)
        #expect(!(try f.ps().contains(name)))
        let links = try f.cluster.exec(ns, ["ip", "link"]).stdout
        #expect(!links.contains("eth0") && !links.contains("dnsgw0"), "the interfaces left the namespace")
        #expect(try f.cni("DEL", id: "cid-1", stdin: f.config(previous)).status == 0)
        let gone = try f.cni("CHECK", id: "cid-1", netns: "/run/netns/\(ns)", stdin: f.config(previous))
        #expect(gone.status != 0 && Self.code(gone) == 3, "\(gone.raw)")
    }

    @Test("dual-stack: ADD on a network with an IPv6 prefix reports both addresses (version 6 before 1.0), IP= and runtimeConfig.ips of each family, CHECK sees both")
    func dualStack() throws {
        let f = try Fixture()
        defer { f.close() }
        #expect(try f.cluster.dnsd(1, ["network", "create", "--subnet=192.168.61.0/24", "--subnet=fd00:61::/64", "pnet6"]).status == 0)
        let ns1 = try f.namespace("d1"), ns2 = try f.namespace("d2")
        // CNI 1.0: runtimeConfig.ips of both families (podman's --ip and --ip6).
        let add = try f.cni("ADD", id: "cid-d1", netns: "/run/netns/\(ns1)", args: "K8S_POD_NAME=\(f.cluster.prefix)d1",
                            stdin: f.config(["runtimeConfig": ["ips": ["192.168.61.40/24", "fd00:61::40/64"]]], network: "pnet6"))
        #expect(add.status == 0, "\(add.raw)")
        let ips = try #require(add.json["ips"] as? [[String: Any]])
        #expect(ips.map { $0["address"] as? String } == ["192.168.61.40/24", "fd00:61::40/64"], "\(ips)")
        #expect(ips.allSatisfy { $0["version"] == nil } && ips.last?["gateway"] == nil && ips.last?["interface"] as? Int == 0, "\(ips)")
        #expect(try f.cluster.exec(ns1, ["ip", "-6", "addr", "show", "dev", "eth0"]).stdout.contains("inet6 fd00:61::40/64 scope global"))
        // CNI 0.4.0 with IP= naming an IPv6 address (podman's one --ip6): the IPv4 one from the IPAM.
        let config04 = f.config(["cniVersion": "0.4.0"], network: "pnet6")
        let add2 = try f.cni("ADD", id: "cid-d2", netns: "/run/netns/\(ns2)", args: "IgnoreUnknown=1;K8S_POD_NAME=\(f.cluster.prefix)d2;IP=fd00:61::41",
                             stdin: config04)
        #expect(add2.status == 0, "\(add2.raw)")
        let ips2 = try #require(add2.json["ips"] as? [[String: Any]])
        #expect(ips2.map { $0["address"] as? String } == ["192.168.61.2/24", "fd00:61::41/64"], "\(ips2)")
        #expect(ips2.map { $0["version"] as? String } == ["4", "6"])
        // Each container answers the other's AAAA at 127.0.0.11, and reaches it over IPv6.
        #expect(try f.cluster.eventually {
            try f.cluster.exec(ns2, ["dig", "+short", "AAAA", "\(f.cluster.prefix)d1.pnet6", "@127.0.0.11"]).stdout.contains("fd00:61::40")
        })
        #expect(try f.cluster.exec(ns2, ["busybox", "ping", "-6", "-c", "1", "-w", "3", "fd00:61::40"]).status == 0)
        // CHECK: both addresses must be there; with the IPv6 one gone from the interface it fails.
        let previous: [String: Any] = ["cniVersion": "1.0.0", "ips": ips, "interfaces": add.json["interfaces"] ?? []]
        let checkConfig = f.config(["prevResult": previous], network: "pnet6")
        #expect(try f.cni("CHECK", id: "cid-d1", netns: "/run/netns/\(ns1)", stdin: checkConfig).status == 0)
        try Shell.check(["ip", "-n", ns1, "addr", "del", "fd00:61::40/64", "dev", "eth0"])
        let failed = try f.cni("CHECK", id: "cid-d1", netns: "/run/netns/\(ns1)", stdin: checkConfig)
        #expect(failed.status != 0 && (failed.json["msg"] as? String)?.contains("fd00:61::40") == true, "\(failed.raw)")
        // DEL: both claims go.
        for (id, ns) in [("cid-d1", ns1), ("cid-d2", ns2)] {
            #expect(try f.cni("DEL", id: id, netns: "/run/netns/\(ns)", stdin: f.config(network: "pnet6")).status == 0)
        }
        #expect(try f.cluster.dnsd(1, ["network", "rm", "pnet6"]).status == 0, "no claim of either family left")
        // An IPv6-only network: the result has the one IPv6 address, and CHECK passes on it.
        #expect(try f.cluster.dnsd(1, ["network", "create", "--subnet=fd00:62::/64", "pnet6o"]).status == 0)
        let ns3 = try f.namespace("d3")
        let add3 = try f.cni("ADD", id: "cid-d3", netns: "/run/netns/\(ns3)", args: "K8S_POD_NAME=\(f.cluster.prefix)d3", stdin: f.config(network: "pnet6o"))
        let ips3 = try #require(add3.json["ips"] as? [[String: Any]], "\(add3.raw)")
        #expect(ips3.map { $0["address"] as? String } == ["fd00:62::2/64"] && ips3.first?["gateway"] == nil, "\(ips3)")
        let previous3: [String: Any] = ["cniVersion": "1.0.0", "ips": ips3, "interfaces": add3.json["interfaces"] ?? []]
        #expect(try f.cni("CHECK", id: "cid-d3", netns: "/run/netns/\(ns3)", stdin: f.config(["prevResult": previous3], network: "pnet6o")).status == 0)
        #expect(try f.cni("DEL", id: "cid-d3", netns: "/run/netns/\(ns3)", stdin: f.config(network: "pnet6o")).status == 0)
        #expect(try f.cluster.dnsd(1, ["network", "rm", "pnet6o"]).status == 0)
    }

    @Test("errors: CNI codes on stdout, one line each, nothing changed")
    func errors() throws {
        let f = try Fixture()
        defer { f.close() }
        let ns = try f.namespace("c2")
        let path = "/run/netns/\(ns)"
        let notJSON = try f.cni("ADD", id: f.cluster.name("a"), netns: path, stdin: "{not json")
        #expect(notJSON.status != 0 && Self.code(notJSON) == 6, "\(notJSON.raw)")
        let version = try f.cni("ADD", id: f.cluster.name("a"), netns: path, stdin: f.config(["cniVersion": "0.2.0"]))
        #expect(Self.code(version) == 1, "\(version.raw)")
        let noNetwork = try f.cni("ADD", id: f.cluster.name("a"), netns: path, stdin: f.config(network: "nosuch"))
        #expect(Self.code(noNetwork) == 7 && (noNetwork.json["msg"] as? String)?.contains("nosuch") == true, "\(noNetwork.raw)")
        let noNetns = try f.cni("ADD", id: f.cluster.name("a"), stdin: f.config())
        #expect(Self.code(noNetns) == 4, "\(noNetns.raw)")
        let badID = try f.cni("ADD", id: f.cluster.name("a/../b"), netns: path, stdin: f.config())
        #expect(badID.status != 0 && Self.code(badID) != nil, "\(badID.raw)")
        let badAlias = try f.cni("ADD", id: f.cluster.name("a"), netns: path, stdin: f.config(["runtimeConfig": ["aliases": ["pnet": ["bad_alias!"]]]]))
        #expect(Self.code(badAlias) == 7, "\(badAlias.raw)")
        let badIP = try f.cni("ADD", id: f.cluster.name("a"), netns: path, args: "IP=10.9.9.9", stdin: f.config())
        #expect(badIP.status != 0 && Self.code(badIP) != nil, "\(badIP.raw)")
        let unreachable = try f.cni("ADD", id: f.cluster.name("a"), netns: path, stdin: f.config(["socket": "/nonexistent/dnsd.sock"]))
        #expect(Self.code(unreachable) == 11, "\(unreachable.raw)")
        for invocation in [notJSON, version, noNetwork, noNetns, badID, badAlias, badIP, unreachable] {
            #expect((invocation.json["msg"] as? String)?.contains("\n") == false)
        }
        #expect(!(try f.ps().contains(f.cluster.name("a"))), "nothing was attached")
        #expect(!(try f.cluster.exec(ns, ["ip", "link"]).stdout.contains("eth0")))
        // Nothing was claimed either: the same container's ADD takes its name and the network's
        // first address (a claim left by a refused ADD would take either).
        let fine = try f.cni("ADD", id: f.cluster.name("a"), netns: path, stdin: f.config())
        #expect(fine.status == 0 && fine.raw.contains("192.168.60.2/24"), "\(fine.raw)")
        #expect(try f.cni("DEL", id: f.cluster.name("a"), netns: path, stdin: f.config()).status == 0)
        // The daemon refuses an id the plugin would never send, itself (the plugin is one client):
        // `a/../b` cannot be a path segment (the route does not decode %2F: refused for its '%').
        for bad in ["a%2F..%2Fb", "a..b~", String(repeating: "x", count: 129)] {
            let body = #"{"containerID":"\#(bad)","netns":"\#(path)","interface":"eth0","network":"pnet"}"#
            let reply = try Shell.run(["curl", "-s", "-w", "\n%{http_code}", "--unix-socket", f.cluster.socket(1), "-X", "POST",
                                       "-H", "Content-Type: application/json", "-d", body, "http://dnsd/v1/containers/\(bad)/networks"])
            #expect(reply.stdout.hasSuffix("\n400") && reply.stdout.contains("invalid container id"), "\(bad): \(reply.stdout)")
        }
        #expect(!(try f.ps().contains("pnet:eth0")), "nothing attached by the refused calls")
        // A namespace already adopted by `dnsd attach` is not adopted twice.
        #expect(try f.cluster.dnsd(1, ["attach", "--netns", path, "--name", f.cluster.name("byhand"), "--net", "pnet"]).status == 0)
        let twice = try f.cni("ADD", id: f.cluster.name("b"), netns: path, ifname: "net1", stdin: f.config())
        #expect(twice.status != 0 && (twice.json["msg"] as? String)?.contains("already managed") == true, "\(twice.raw)")
    }

    @Test("a container on two networks, a requested address, a long id, hostsDir, chaining after another plugin")
    func variants() throws {
        let f = try Fixture()
        defer { f.close() }
        #expect(try f.cluster.dnsd(1, ["network", "create", "--subnet=192.168.61.0/24", "qnet"]).status == 0)
        let ns = try f.namespace("c3")
        let path = "/run/netns/\(ns)"
        let id = String(repeating: "ab", count: 32)
        // Named by the short id, which carries no test prefix: its files go whatever happens.
        defer { try? FileManager.default.removeItem(atPath: "/etc/netns/abababababab") }
        let hostsDir = f.cluster.work + "/hosts"
        let first = try f.cni("ADD", id: id, netns: path, args: "IP=192.168.60.77", stdin: f.config(["hostsDir": hostsDir]))
        #expect(first.status == 0 && (first.json["ips"] as? [[String: Any]])?.first?["address"] as? String == "192.168.60.77/24", "\(first.raw)")
        // A 64-hex-digit id names the container by its 12-digit short form.
        #expect(try f.ps().contains("abababababab "))
        #expect(try String(contentsOfFile: hostsDir + "/abababababab", encoding: .utf8).contains("192.168.60.77"))
        // The same container joins a second network as net1: one sandbox, two networks.
        let chained: [String: Any] = ["cniVersion": "1.0.0", "interfaces": [["name": "lo0"]], "ips": [["address": "10.1.1.1/32", "interface": 0]],
                                      "dns": ["nameservers": ["10.1.1.53"]]]
        let second = try f.cni("ADD", id: id, netns: path, ifname: "net1", stdin: f.config(["prevResult": chained], network: "qnet"))
        #expect(second.status == 0, "\(second.raw)")
        let interfaces = (second.json["interfaces"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
        #expect(interfaces == ["lo0", "net1"], "the previous plugin's result is kept")
        let ips = second.json["ips"] as? [[String: Any]] ?? []
        #expect(ips.count == 2 && ips.last?["interface"] as? Int == 1)
        #expect((second.json["dns"] as? [String: Any])?["nameservers"] as? [String] == ["127.0.0.11", "10.1.1.53"])
        let listed = try f.ps()
        #expect(listed.contains("pnet:eth0=192.168.60.77") && listed.contains("qnet:net1=192.168.61."), "\(listed)")
        // DEL of one network keeps the other; DEL of the last withdraws the sandbox.
        #expect(try f.cni("DEL", id: id, netns: path, ifname: "net1", stdin: f.config(network: "qnet")).status == 0)
        #expect(try f.ps().contains("pnet:eth0=192.168.60.77") && !(try f.ps().contains("qnet")))
        #expect(try f.cni("DEL", id: id, netns: path, stdin: f.config()).status == 0)
        #expect(!(try f.ps().contains("abababababab")))
    }

    @Test("Kubernetes' pod names: the same pod name in two namespaces is two containers, named POD-NAMESPACE")
    func kubernetesNamespaces() throws {
        let f = try Fixture()
        defer { f.close() }
        let first = try f.namespace("k1"), second = try f.namespace("k2")
        let one = try f.cni("ADD", id: f.cluster.name("pod1"), netns: "/run/netns/\(first)",
                            args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=team-a;K8S_POD_NAME=web", stdin: f.config())
        let two = try f.cni("ADD", id: f.cluster.name("pod2"), netns: "/run/netns/\(second)",
                            args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=team-b;K8S_POD_NAME=web", stdin: f.config())
        #expect(one.status == 0 && two.status == 0, "\(one.raw) \(two.raw)")
        let listed = try f.ps()
        #expect(listed.contains("web-team-a") && listed.contains("web-team-b"), "\(listed)")
        let answer = try f.cluster.exec(first, ["dig", "+short", "web-team-b.pnet", "@127.0.0.11"]).stdout
        #expect(answer.hasPrefix("192.168.60."), "\(answer)")
        // Without a namespace (podman), the pod name alone.
        let third = try f.namespace("k3")
        #expect(try f.cni("ADD", id: f.cluster.name("pod3"), netns: "/run/netns/\(third)", args: "IgnoreUnknown=1;K8S_POD_NAME=web",
                          stdin: f.config()).status == 0)
        #expect(try f.ps().split(separator: "\n").contains { $0.hasPrefix("web ") })
        for (id, ns) in [("pod1", first), ("pod2", second), ("pod3", third)] {
            #expect(try f.cni("DEL", id: f.cluster.name(id), netns: "/run/netns/\(ns)", stdin: f.config()).status == 0)
        }
    }

    @Test("a bridge network: the container's default route through the network's gateway, in the result and the kernel")
    func bridgeNetworkRoute() throws {
        let f = try Fixture()
        defer { f.close() }
        #expect(try f.cluster.dnsd(1, ["network", "create", "--driver=bridge", "--subnet=192.168.62.0/24", "bnet"]).status == 0)
        let ns = try f.namespace("c5")
        let add = try f.cni("ADD", id: "\(f.cluster.prefix)-c5", netns: "/run/netns/\(ns)", stdin: f.config(network: "bnet"))
        #expect(add.status == 0, "\(add.raw)")
        let routes = add.json["routes"] as? [[String: Any]] ?? []
        #expect(routes.contains { $0["dst"] as? String == "0.0.0.0/0" && $0["gw"] as? String == "192.168.62.1" }, "\(routes)")
        #expect(try f.cluster.exec(ns, ["ip", "route", "show", "default"]).stdout.contains("via 192.168.62.1 dev eth0"))
        #expect(((add.json["interfaces"] as? [[String: Any]]) ?? []).count == 1, "no egress leg on a bridge network")
        #expect(try f.cni("DEL", id: "\(f.cluster.prefix)-c5", netns: "/run/netns/\(ns)", stdin: f.config(network: "bnet")).status == 0)
    }

    @Test("protocol edges: DEL of a network name dnsd could never have succeeds; CHECK under 0.3.x is refused as the version's")
    func protocolEdges() throws {
        let f = try Fixture()
        defer { f.close() }
        let ns = try f.namespace("c6")
        let bad = #"{"cniVersion":"1.0.0","name":"not_a_label","type":"dnsd","socket":"\#(f.cluster.socket(1))"}"#
        let del = try f.cni("DEL", id: "\(f.cluster.prefix)-c6", netns: "/run/netns/\(ns)", stdin: bad)
        #expect(del.status == 0, "\(del.raw)")
        let add = try f.cni("ADD", id: "\(f.cluster.prefix)-c6", netns: "/run/netns/\(ns)", stdin: f.config())
        #expect(add.status == 0, "\(add.raw)")
        var old = add.json
        old["cniVersion"] = "0.3.1"
        let check = try f.cni("CHECK", id: "\(f.cluster.prefix)-c6", netns: "/run/netns/\(ns)",
                              stdin: f.config(["cniVersion": "0.3.1", "prevResult": old]))
        #expect(check.status != 0 && Self.code(check) == 1, "\(check.raw)")
        #expect(try f.cni("DEL", id: "\(f.cluster.prefix)-c6", netns: "/run/netns/\(ns)", stdin: f.config()).status == 0)
    }

    @Test("a restart as podman does it (DEL, a new namespace, ADD), its process joining 1.5 s late: the name never stops answering (issue 21, item 1)")
    func restartJoinsLate() throws {
        let f = try Fixture()
        defer { f.close() }
        let id = "\(f.cluster.prefix)-rs", name = "\(f.cluster.prefix)-rs"
        let witness = f.cluster.name("wit")
        #expect(try f.cluster.dnsd(1, ["run", "--name=\(witness)", "--net=pnet"]).status == 0)
        let first = try f.namespace("rs1")
        #expect(try f.cni("ADD", id: id, netns: "/run/netns/\(first)", stdin: f.config()).status == 0)
        // Its first life: a process in it long enough for the liveness check to have seen it.
        let process = try ChildProcess(["ip", "netns", "exec", first, "sleep", "300"])
        sleep(3)
        process.stop()
        #expect(try f.cni("DEL", id: id, netns: "/run/netns/\(first)", stdin: f.config()).status == 0)
        let second = try f.namespace("rs2")
        #expect(try f.cni("ADD", id: id, netns: "/run/netns/\(second)", stdin: f.config()).status == 0)
        let restarted = Date()
        var late: ChildProcess?
        defer { late?.stop() }
        var answered = 0, asked = 0
        while Date().timeIntervalSince(restarted) < 4.5 {
            if late == nil, Date().timeIntervalSince(restarted) > 1.5 {
                late = try ChildProcess(["ip", "netns", "exec", second, "sleep", "300"])
            }
            asked += 1
            if try f.cluster.exec(witness, ["dig", "+short", "+time=1", "+tries=1", "\(name).pnet", "@127.0.0.11"]).stdout.contains("192.168.60.") {
                answered += 1
            }
            usleep(200_000)
        }
        #expect(asked > 10 && answered == asked, "answered \(answered) of \(asked) after the restart")
        #expect(try f.ps().contains(name))
        #expect(try f.cni("DEL", id: id, netns: "/run/netns/\(second)", stdin: f.config()).status == 0)
    }

    @Test("ctr's /proc/PID/ns/net: kept across a daemon restart, withdrawn when the process exits")
    func processNamespace() throws {
        let f = try Fixture()
        defer { f.close() }
        let holder = try ChildProcess(["unshare", "--net", "sleep", "300"])
        defer { holder.stop() }
        var path = ""
        #expect(f.cluster.eventually { path = "/proc/\(holder.pid)/ns/net"; return (try? String(contentsOfFile: "/proc/\(holder.pid)/comm", encoding: .utf8)) == "sleep\n" })
        let add = try f.cni("ADD", id: "\(f.cluster.prefix)-c9", netns: path, stdin: f.config())
        #expect(add.status == 0, "\(add.raw)")
        f.cluster.kill(1)
        try f.cluster.restart(1)
        #expect(try f.ps().contains("\(f.cluster.prefix)-c9"), "adopted again from the journal after the restart")
        kill(holder.pid, SIGKILL)
        #expect(try f.cluster.eventually(6) { !(try f.ps().contains("\(f.cluster.prefix)-c9")) }, "withdrawn without a DEL")
    }
}
