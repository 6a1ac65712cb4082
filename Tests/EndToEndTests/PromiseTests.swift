import ClusterHarness
import Foundation
import Netns
import TestSupport
import Testing

/// README promises that had no test (issue 16): command success paths, what SIGTERM leaves,
/// refusals while the store is down, a first start without the store, serve-dns reloads.
@Suite("End to end: promises of the README", .serialized, .timeLimit(.minutes(5)))
struct PromiseTests {
    @Test("network inspect, connect, disconnect, exec and rm do what they say")
    func successPaths() throws {
        let cluster = try ClusterHarness(hosts: 2)
        defer { cluster.close() }
        let a = cluster.name("a"), b = cluster.name("b")
        #expect(try cluster.dnsd(1, ["network", "create", "--subnet=192.168.86.0/24", "pnet"]).status == 0)
        #expect(try cluster.dnsd(1, ["network", "create", "--subnet=192.168.87.0/24", "qnet"]).status == 0)
        #expect(try cluster.dnsd(1, ["run", "--name=\(a)", "--net=pnet"]).status == 0)
        #expect(try cluster.dnsd(2, ["run", "--name=\(b)", "--net=pnet"]).status == 0)
        // inspect: the network and both endpoints, as JSON.
        let inspect = try cluster.dnsd(2, ["network", "inspect", "pnet"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(inspect.stdout.utf8)) as? [String: Any], "\(inspect)")
        #expect((object["network"] as? [String: Any])?["subnet"] as? String == "192.168.86.0/24")
        #expect(Set(((object["endpoints"] as? [[String: Any]]) ?? []).compactMap { $0["name"] as? String }) == [a, b])
        // connect: a second interface on qnet, its name there, seen from a sandbox on qnet.
        let c = cluster.name("c")
        #expect(try cluster.dnsd(2, ["run", "--name=\(c)", "--net=qnet"]).status == 0)
        let connected = try cluster.dnsd(1, ["network", "connect", "--alias=web", "qnet", a])
        #expect(connected.status == 0 && connected.stdout.contains("qnet:eth"), "\(connected.stderr)")
        #expect(try cluster.exec(a, ["ip", "-o", "-4", "addr"]).stdout.contains("192.168.87."))
        #expect(try cluster.eventually(3) { try cluster.exec(c, ["dig", "+short", "web.qnet", "@127.0.0.11"]).stdout.contains("192.168.87.") })
        // exec: a command inside the sandbox, with its hosts file.
        let exec = try cluster.dnsd(1, ["exec", a, "--", "getent", "hosts", "\(b).pnet"])
        #expect(exec.status == 0 && exec.stdout.hasPrefix("192.168.86."), "\(exec.stdout)\(exec.stderr)")
        // disconnect: the interface and the name go.
        let interfacesBefore = try cluster.exec(a, ["ip", "-o", "link"]).stdout.split(separator: "\n").count
        #expect(try cluster.dnsd(1, ["network", "disconnect", "qnet", a]).status == 0)
        #expect(try cluster.exec(a, ["ip", "-o", "link"]).stdout.split(separator: "\n").count == interfacesBefore - 1)
        #expect(!(try cluster.exec(a, ["ip", "-o", "-4", "addr"]).stdout.contains("192.168.87.")))
        #expect(try cluster.eventually(3) { try cluster.exec(c, ["dig", "web.qnet", "@127.0.0.11"]).stdout.contains("NXDOMAIN") })
        // rm: the sandbox, its namespace and its name go; rm of a name no longer here is fine.
        #expect(try cluster.dnsd(1, ["rm", a]).status == 0)
        #expect(!NamedNamespaces().exists(a))
        #expect(try !cluster.dnsd(1, ["ps"]).stdout.contains(a))
        #expect(try cluster.eventually(3) { try cluster.exec(b, ["dig", "\(a).pnet", "@127.0.0.11"]).stdout.contains("NXDOMAIN") })
        #expect(try cluster.dnsd(1, ["rm", a]).status == 0)
    }

    @Test("SIGTERM leaves sandboxes, interfaces and hosts files in place; a restart serves them again")
    func termLeavesSandboxes() throws {
        let cluster = try ClusterHarness(hosts: 1, store: "local")
        defer { cluster.close() }
        let a = cluster.name("a"), b = cluster.name("b")
        #expect(try cluster.dnsd(1, ["network", "create", "--driver=bridge", "--subnet=192.168.88.0/24", "tnet"]).status == 0)
        #expect(try cluster.dnsd(1, ["run", "--name=\(a)", "--net=tnet"]).status == 0)
        #expect(try cluster.dnsd(1, ["run", "--name=\(b)", "--net=tnet"]).status == 0)
        let links = try cluster.exec(a, ["ip", "-o", "-4", "addr"]).stdout
        let hosts = cluster.hostsFile(a)
        let daemon = try #require(cluster.daemon(1))
        kill(daemon.pid, SIGTERM)
        #expect(daemon.waitForExit(seconds: 10))
        #expect(daemon.ending == "exit 0", "\(daemon.ending)")
        #expect(NamedNamespaces().exists(a) && NamedNamespaces().exists(b))
        #expect(try cluster.exec(a, ["ip", "-o", "-4", "addr"]).stdout == links)
        #expect(cluster.hostsFile(a) == hosts && hosts.contains(b))
        try cluster.restart(1)
        #expect(try cluster.dnsd(1, ["ps"]).stdout.contains(b))
        #expect(try cluster.eventually(3) { try cluster.exec(a, ["dig", "+short", "\(b).tnet", "@127.0.0.11"]).stdout.contains("192.168.88.") })
    }

    @Test("while the store is down: connect and stop are refused in one line and change nothing")
    func refusedWhileStoreDown() throws {
        let cluster = try ClusterHarness(hosts: 1)
        defer { cluster.close() }
        let a = cluster.name("a")
        #expect(try cluster.dnsd(1, ["network", "create", "--subnet=192.168.89.0/24", "snet"]).status == 0)
        #expect(try cluster.dnsd(1, ["network", "create", "--subnet=192.168.90.0/24", "s2net"]).status == 0)
        #expect(try cluster.dnsd(1, ["run", "--name=\(a)", "--net=snet"]).status == 0)
        let ps = try cluster.dnsd(1, ["ps"]).stdout
        let links = try cluster.exec(a, ["ip", "-o", "link"]).stdout
        cluster.stopStore()
        for command in [["network", "connect", "s2net", a], ["stop", a], ["rm", a]] {
            let refused = try cluster.dnsd(1, command)
            #expect(refused.status != 0 && refused.stderr.split(separator: "\n").count == 1 && refused.stderr.contains("store"),
                    "\(command): \(refused.stderr)")
        }
        #expect(try cluster.dnsd(1, ["ps"]).stdout == ps)
        #expect(try cluster.exec(a, ["ip", "-o", "link"]).stdout == links)
        #expect(NamedNamespaces().exists(a))
        try cluster.startStore()
        #expect(try cluster.eventually(10) { try cluster.dnsd(1, ["stop", a]).status == 0 })
    }

    @Test("a first start without the store and without a cache is refused in one line")
    func firstStartWithoutStore() throws {
        let cluster = try ClusterHarness(hosts: 1, store: "local")
        defer { cluster.close() }
        let state = cluster.work + "/fresh-state"
        let result = try Shell.run(["nsenter", "--net=/run/netns/\(cluster.hosts[0].name)", ClusterHarness.dnsdBinary, "daemon",
                                    "--store", "etcd://198.18.0.250:2379", "--host-id", "lonely", "--advertise", "198.18.0.1",
                                    "--state-dir", state, "--sock", cluster.work + "/lonely.sock", "--log-level", "critical"], timeout: 60)
        #expect(result.status != 0)
        #expect(result.stderr.split(separator: "\n").count == 1 && result.stderr.hasPrefix("Error: cannot start") && result.stderr.contains("store"),
                "\(result.stderr)")
    }

    @Test("serve-dns: SIGHUP reloads the records file; a bad file is refused and the old records stay")
    func serveDNSReload() throws {
        let thread = try NamespaceThread(name: "serve-dns-test")
        defer { thread.shutdown() }
        let namespace = "\(TestRun.namePrefix)sd"
        try NamedNamespaces().create(namespace, on: thread)
        defer { try? NamedNamespaces().delete(namespace) }
        let work = TestRun.temporaryPath("serve-dns")
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let records = work + "/vnet.hosts"
        try "192.168.0.2 c01\n".write(toFile: records, atomically: true, encoding: .utf8)
        let server = try ChildProcess([ClusterHarness.dnsdBinary, "serve-dns", "--netns", namespace, "--network", "vnet",
                                       "--records", records, "--upstream", "127.0.0.1:9"], output: work + "/log")
        defer { server.stop() }
        func dig(_ name: String) throws -> String {
            try Shell.run(["ip", "netns", "exec", namespace, "dig", "+short", "+time=1", "+tries=1", name, "@127.0.0.11"], timeout: 10).stdout
                .trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let ready = Date().addingTimeInterval(5)
        while try dig("c01.vnet") != "192.168.0.2", Date() < ready { usleep(50_000) }
        #expect(try dig("c01.vnet") == "192.168.0.2")
        try "192.168.0.2 c01\n192.168.0.3 c02 web\n".write(toFile: records, atomically: true, encoding: .utf8)
        kill(server.pid, SIGHUP)
        let reloaded = Date().addingTimeInterval(3)
        while try dig("web.vnet") != "192.168.0.3", Date() < reloaded { usleep(50_000) }
        #expect(try dig("web.vnet") == "192.168.0.3")
        try "192.168.0.9 bad\nnot an address line\n".write(toFile: records, atomically: true, encoding: .utf8)
        kill(server.pid, SIGHUP)
        let logged = Date().addingTimeInterval(3)
        func log() -> String { (try? String(contentsOfFile: work + "/log", encoding: .utf8)) ?? "" }
        while !log().contains("reload refused"), Date() < logged { usleep(50_000) }
        #expect(log().contains("reload refused"), "\(log())")
        #expect(try dig("web.vnet") == "192.168.0.3" && dig("bad.vnet").isEmpty)
        #expect(server.isRunning)
    }
}
