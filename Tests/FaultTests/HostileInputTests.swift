import ClusterHarness
import Foundation
import TestSupport
import Testing

@Suite("Faults: hostile input", .serialized, .timeLimit(.minutes(5)))
struct HostileInputTests {
    @Test("values written by hand into etcd (corrupt JSON, wrong types, huge, unknown keys, injection attempts) are skipped and logged; everything else keeps working")
    func handWrittenStoreValues() throws {
        let cluster = try ClusterHarness(hosts: 2)
        defer { cluster.close() }
        let a = cluster.name("a"), b = cluster.name("b"), c = cluster.name("c")
        #expect(try cluster.dnsd(1, ["network", "create", "--subnet=192.168.130.0/24", "hnet"]).status == 0)
        let addressB = try Fleet.run(cluster, host: 2, name: b, network: "hnet")
        _ = try Fleet.run(cluster, host: 1, name: a, network: "hnet")

        // b's own record, explicitly (not whichever a dictionary lists first).
        let good = try #require(try cluster.etcdList("dnsd/v1/endpoints/hnet/")["dnsd/v1/endpoints/hnet/\(cluster.hostID(2))-\(b)"])
        // An injection attempt that passes every check but the name's: its own id matching its
        // key, a free address in the subnet, a real VTEP; only the name carries a newline.
        var object = try #require(try JSONSerialization.jsonObject(with: Data(good)) as? [String: Any])
        object["id"] = "evil"
        object["name"] = "x\n6.6.6.6 evil"
        object["ipv4"] = "192.168.130.99"
        object["aliases"] = ["fine"]
        let evil = String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
        let bad: [(String, [UInt8])] = [
            ("dnsd/v1/endpoints/hnet/corrupt", Array("{not json".utf8)),
            ("dnsd/v1/endpoints/hnet/types", Array(#"{"id":5,"network":[],"name":{},"ipv4":true,"aliases":"x"}"#.utf8)),
            ("dnsd/v1/endpoints/hnet/huge", Array(("{\"id\":\"" + String(repeating: "h", count: 1_000_000) + "\"}").utf8)),
            ("dnsd/v1/endpoints/hnet/deep/er/key", good),
            ("dnsd/v1/endpoints/hnet/evil", Array(evil.utf8)),
            ("dnsd/v1/endpoints/hnet/nested", Array((String(repeating: "[", count: 5000) + String(repeating: "]", count: 5000)).utf8)),
            ("dnsd/v1/endpoints/hnet/empty", []),
            ("dnsd/v1/networks/badnet", Array("[]".utf8)),
            ("dnsd/v1/networks/evilnet", Array(#"{"name":"evilnet","driver":"overlay","subnet":"300.0.0.0/8","gateway":"1.2.3.4","vni":1}"#.utf8)),
            ("dnsd/v1/networks/Upper_Net", Array(#"{"name":"Upper_Net","driver":"bridge","subnet":"10.0.0.0/8","gateway":"10.0.0.1","vni":0}"#.utf8)),
            ("dnsd/v1/names/\(c)", Array("garbage".utf8)),
            ("dnsd/v1/hosts/h9", Array("\u{0}\u{1}".utf8)),
            ("dnsd/v1/unknown/thing", Array("{}".utf8)),
        ]
        var phases: [String] = []
        var mark = Date()
        func phase(_ name: String) { phases.append("\(name) \(String(format: "%.2f", Date().timeIntervalSince(mark))) s"); mark = Date() }
        for (key, value) in bad { try cluster.etcdPut(key, value) }
        phase("puts")

        // Both daemons are alive and say why they skipped what they skipped.
        #expect(try cluster.eventually(3) { cluster.log(1).contains("skipping an unreadable endpoint record") })
        phase("logged")
        for host in 1...2 { #expect(try cluster.dnsd(host, ["ps"]).status == 0, "h\(host) still answers") }
        phase("ps")
        let networks = try cluster.dnsd(2, ["network", "ls"])
        #expect(networks.status == 0 && networks.stdout.contains("hnet") && !networks.stdout.contains("badnet")
                && !networks.stdout.contains("evilnet") && !networks.stdout.contains("Upper_Net"), "\(networks.stdout)\(networks.stderr)")
        // Names still resolve; nothing injected reaches DNS or a hosts file.
        #expect(try cluster.exec(a, ["dig", "+short", "\(b).hnet", "@127.0.0.11"]).stdout.contains(addressB))
        #expect(!(try cluster.exec(a, ["dig", "+short", "evil", "@127.0.0.11"]).stdout.contains("6.6.6.6")))
        #expect(try cluster.exec(a, ["dig", "+short", "fine.hnet", "@127.0.0.11"]).stdout.isEmpty, "the injected record was applied")
        #expect(!cluster.hostsFile(a).contains("evil") && !cluster.hostsFile(a).contains("6.6.6.6") && !cluster.hostsFile(a).contains("192.168.130.99"))
        #expect(cluster.log(1).contains("dnsd/v1/endpoints/hnet/evil"), "the injection was not the record skipped")
        // New work goes through: a new sandbox (its name's garbage claim does not count as a claim
        // by a host, but the name is taken: it is refused cleanly), another one on h2 is seen on h1.
        let refused = try cluster.dnsd(2, ["run", "--name=\(c)", "--net=hnet"])
        #expect(refused.status != 0 && refused.stderr.split(separator: "\n").count == 1, "\(refused.stderr)")
        phase("checks")
        let d = cluster.name("d")
        let addressD = try Fleet.run(cluster, host: 2, name: d, network: "hnet")
        phase("run d")
        let started = Date()
        let seen = try cluster.eventually(5) { try cluster.exec(a, ["dig", "+short", "\(d).hnet", "@127.0.0.11"]).stdout.contains(addressD) }
        #expect(seen, "after \(Date().timeIntervalSince(started)) s; phases \(phases); h1: \(cluster.log(1).suffix(3000))")
        // A daemon restarting with all that in the store recovers as usual.
        cluster.kill(1)
        try cluster.restart(1)
        #expect(try cluster.eventually(3) { try cluster.exec(a, ["dig", "+short", "\(d).hnet", "@127.0.0.11"]).stdout.contains(addressD) })
        #expect(try cluster.dnsd(1, ["ps"]).stdout.contains(a))
        phase("restart")
        figure("hostile store values: \(bad.count) hand-written keys skipped; DNS, run, watch and restart unaffected (\(phases.joined(separator: ", ")))")
    }

    @Test("bad CLI input: one clear line on stderr, a non-zero exit, nothing changed (store, sandboxes, namespaces, links)")
    func badCommandLines() throws {
        let cluster = try ClusterHarness(hosts: 1)
        defer { cluster.close() }
        let s1 = cluster.name("s1")
        #expect(try cluster.dnsd(1, ["network", "create", "--subnet=192.168.120.0/24", "cnet"]).status == 0)
        let taken = try Fleet.run(cluster, host: 1, name: s1, network: "cnet")
        func snapshot() throws -> [String] {
            let store = try cluster.etcdList("dnsd/v1/").filter { !$0.key.hasPrefix("dnsd/v1/hosts/") }
                .map { "\($0.key)=\(String(decoding: $0.value, as: UTF8.self))" }.sorted()
            let links = try Shell.check(["ip", "-n", cluster.hosts[0].name, "-o", "link"]).split(separator: "\n")
                .map { String($0.split(separator: ":")[1]) }.sorted()
            return store + [try cluster.dnsd(1, ["ps"]).stdout, try cluster.dnsd(1, ["network", "ls"]).stdout]
                + cluster.namespaces() + links
        }
        let before = try snapshot()
        let long = String(repeating: "a", count: 64)
        let invocations: [[String]] = [
            ["run", "--name=-bad"], ["run", "--name=under_score"], ["run", "--name=\(long)"], ["run", "--name="],
            ["run", "--name=dot.ted"], ["run", "--name=ok1", "--hostname=-x"], ["run", "--name=ok1", "--alias=bad alias", "--net=cnet"],
            ["run", "--name=ok1", "--net=nosuch"], ["run", "--name=ok1", "--net=cnet", "--ip=10.0.0.5"],
            ["run", "--name=ok1", "--net=cnet", "--ip=192.168.120.1"], ["run", "--name=ok1", "--net=cnet", "--ip=192.168.120.255"],
            ["run", "--name=ok1", "--net=cnet", "--ip=not-an-ip"], ["run", "--name=ok1", "--net=cnet", "--ip=\(taken)"],
            ["run", "--name=\(s1)", "--net=cnet"], ["run"], ["run", "--name=ok1", "--bogus"],
            ["network", "create", "--subnet=10.0.0.0/33", "x1"], ["network", "create", "--subnet=300.1.1.0/24", "x1"],
            ["network", "create", "--subnet=10.0.0.0", "x1"], ["network", "create", "--subnet=10.9.0.0/24", "cnet"],
            ["network", "create", "--subnet=10.9.0.0/24", "--driver=weird", "x1"], ["network", "create", "--subnet=10.9.0.0/24", "Bad_Net"],
            ["network", "create", "--subnet=10.9.0.0/24", "--gateway=1.2.3.4", "x1"], ["network", "create", "--subnet=10.9.0.0/24", "bridge"],
            ["network", "create", "x1"], ["network", "rm", "nosuch"], ["network", "rm", "cnet"], ["network", "inspect", "nosuch"],
            ["network", "connect", "nosuch", s1], ["network", "connect", "cnet", "nosuch"], ["network", "connect", "cnet", s1],
            ["network", "disconnect", "cnet", "nosuch"], ["network", "disconnect", "othernet", s1],
            ["stop", "nosuch"], ["stop", "-bad"], ["exec", "nosuch", "--", "true"],
            ["attach", "--netns", "/nonexistent", "--name", "x2", "--net", "cnet"],
            ["attach", "--netns", "/etc/hostname", "--name", "x2", "--net", "cnet"],
            ["frobnicate"], ["network", "frob"],
            ["daemon", "--store", "bogus://x", "--sock", cluster.work + "/x.sock"],
            ["daemon", "--advertise", "not-an-ip", "--sock", cluster.work + "/x.sock"],
            ["daemon", "--dns-mode", "weird", "--sock", cluster.work + "/x.sock"],
            ["daemon", "--upstream", "1.2.3", "--sock", cluster.work + "/x.sock"],
            ["daemon", "--log-level", "loud", "--sock", cluster.work + "/x.sock"],
            ["daemon", "--lease-ttl", "0", "--sock", cluster.work + "/x.sock"],
            ["daemon", "--host-id", "bad_id", "--sock", cluster.work + "/x.sock"],
        ]
        var lines: [String] = []
        for arguments in invocations {
            let result = try cluster.dnsd(1, arguments)
            let errorLines = result.stderr.split(separator: "\n")
            #expect(result.status != 0 && errorLines.count == 1 && errorLines[0].hasPrefix("Error: ") && result.stdout.isEmpty,
                    "dnsd \(arguments.joined(separator: " ")): exit \(result.status), stderr \(result.stderr.debugDescription), stdout \(result.stdout.debugDescription)")
            lines.append("dnsd \(arguments.joined(separator: " ").prefix(60)) -> \(errorLines.first ?? "")")
        }
        #expect(try snapshot() == before, "something changed")
        print(lines.joined(separator: "\n"))
        figure("bad CLI input: \(invocations.count) invocations refused, each with one line and a non-zero exit; store, sandboxes, namespaces and links unchanged")
    }
}
