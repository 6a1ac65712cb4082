import ClusterHarness
import Foundation
import Synchronization
import TestSupport
import Testing

@Suite("End to end: stores, hosts mode, races", .serialized, .timeLimit(.minutes(5)))
struct VariantTests {
    @Test("one host, no store given: the local store; names resolve and vanish")
    func localStore() throws {
        let cluster = try ClusterHarness(hosts: 1, store: "local")
        defer { cluster.close() }
        let a = cluster.name("a"), b = cluster.name("b")
        #expect(try cluster.dnsd(1, ["network", "create", "--driver=bridge", "--subnet=192.168.50.0/24", "lnet"]).status == 0)
        #expect(try cluster.dnsd(1, ["run", "--name=\(a)", "--net=lnet"]).status == 0)
        #expect(try cluster.dnsd(1, ["run", "--name=\(b)", "--net=lnet", "--alias=db"]).status == 0)
        // A user-defined bridge network gets names like an overlay does.
        #expect(try cluster.eventually { try cluster.exec(a, ["dig", "+short", "db.lnet", "@127.0.0.11"]).stdout.contains("192.168.50.3") })
        #expect(try cluster.exec(a, ["getent", "hosts", b]).stdout.hasPrefix("192.168.50.3"))
        #expect(try cluster.exec(a, ["busybox", "ping", "-A", "-c", "3", "-w", "3", b]).status == 0)
        #expect(try cluster.dnsd(1, ["stop", b]).status == 0)
        #expect(try cluster.eventually { try cluster.exec(a, ["dig", "db.lnet", "@127.0.0.11"]).stdout.contains("NXDOMAIN") })
    }

    @Test("hosts mode: no responder, the hosts files alone resolve every name across hosts")
    func hostsMode() throws {
        let cluster = try ClusterHarness(hosts: 2, dnsMode: "hosts")
        defer { cluster.close() }
        let a = cluster.name("a"), b = cluster.name("b")
        #expect(try cluster.dnsd(1, ["network", "create", "--subnet=192.168.60.0/24", "hnet"]).status == 0)
        #expect(try cluster.dnsd(1, ["run", "--name=\(a)", "--net=hnet"]).status == 0)
        #expect(try cluster.dnsd(2, ["run", "--name=\(b)", "--net=hnet"]).status == 0)
        #expect(try cluster.eventually { try cluster.exec(a, ["getent", "hosts", "\(b).hnet"]).stdout.hasPrefix("192.168.60.3") })
        #expect(try cluster.exec(a, ["busybox", "ping", "-A", "-c", "3", "-w", "3", b]).status == 0)
        let resolv = try cluster.exec(a, ["cat", "/etc/resolv.conf"]).stdout
        #expect(!resolv.contains("127.0.0.11"))
        // Nothing answers at 127.0.0.11 in hosts mode.
        #expect(try cluster.exec(a, ["dig", "+time=1", "+tries=1", "\(b).hnet", "@127.0.0.11"]).stdout.contains("connection refused")
                || (try cluster.exec(a, ["dig", "+time=1", "+tries=1", "\(b).hnet", "@127.0.0.11"]).status != 0))
        #expect(try cluster.dnsd(2, ["stop", b]).status == 0)
        #expect(try cluster.eventually { try cluster.exec(a, ["getent", "hosts", "\(b).hnet"]).status == 2 })
    }

    @Test("two hosts racing to start 50 sandboxes each on one network: 100 distinct addresses, all resolvable from every host")
    func race() throws {
        let cluster = try ClusterHarness(hosts: 2)
        defer { cluster.close() }
        #expect(try cluster.dnsd(1, ["network", "create", "--subnet=10.99.0.0/24", "rnet"]).status == 0)
        let collected = Mutex<[[String]]>([[], []])
        DispatchQueue.concurrentPerform(iterations: 2) { h in
            var mine: [String] = []
            for i in 0..<50 {
                var result = try? cluster.dnsd(h + 1, ["run", "--name=\(cluster.name("r\(h)n\(i)"))", "--net=rnet"])
                // A store that answered too late on this loaded 2-core machine is a refusal that
                // changed nothing (503): a client tries again, as a runtime would.
                if let refused = result, refused.status != 0, refused.stderr.contains("store unavailable") {
                    result = try? cluster.dnsd(h + 1, ["run", "--name=\(cluster.name("r\(h)n\(i)"))", "--net=rnet"])
                }
                mine.append(result?.status == 0 ? result!.stdout : "FAILED: \(result?.stderr ?? "")")
            }
            collected.withLock { $0[h] = mine }
        }
        let all = collected.withLock { $0 }.flatMap { $0 }
        try #require(all.allSatisfy { !$0.hasPrefix("FAILED") }, "\(all.filter { $0.hasPrefix("FAILED") }.prefix(3))")
        let addresses = all.compactMap { line in line.split(separator: " ").first { $0.hasPrefix("rnet:eth0=") }.map { String($0.dropFirst(10)) } }
        #expect(addresses.count == 100 && Set(addresses).count == 100)
        // Every name resolves from a sandbox on each host, to the address its host reported.
        let probe1 = cluster.name("r0n0"), probe2 = cluster.name("r1n0")
        for (h, line) in all.enumerated() {
            let name = String(line.split(separator: " ").first!)
            let address = addresses[h]
            for probe in [probe1, probe2] {
                let answered = try cluster.eventually(5) {
                    try cluster.exec(probe, ["dig", "+short", "\(name).rnet", "@127.0.0.11"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines) == address
                }
                #expect(answered, "\(name) from \(probe)")
            }
        }
    }
}

@Suite("End to end: runtimes, Consul, dead hosts", .serialized, .timeLimit(.minutes(5)))
struct MoreVariantTests {
    @Test("dnsd attach adopts a namespace made by a runtime, keeps its own hosts file, never deletes it")
    func attachRuntimeNamespace() throws {
        let cluster = try ClusterHarness(hosts: 2)
        defer { cluster.close() }
        let runtime = cluster.name("rt"), peer = cluster.name("peer")
        try Shell.check(["ip", "netns", "add", runtime])
        let hostsFile = cluster.work + "/runtime-hosts"
        try "10.0.0.9 runtime-line\n".write(toFile: hostsFile, atomically: false, encoding: .utf8)
        #expect(try cluster.dnsd(1, ["network", "create", "--subnet=192.168.70.0/24", "anet"]).status == 0)
        let attached = try cluster.dnsd(1, ["attach", "--netns", "/run/netns/\(runtime)", "--name", runtime, "--net", "anet", "--hosts-file", hostsFile])
        #expect(attached.status == 0 && attached.stdout.contains("anet:eth0=192.168.70.2"), "\(attached.stdout)\(attached.stderr)")
        #expect(try cluster.dnsd(2, ["run", "--name=\(peer)", "--net=anet"]).status == 0)
        #expect(try cluster.eventually { try String(contentsOfFile: hostsFile, encoding: .utf8).contains("\(peer) \(peer).anet") })
        #expect(try String(contentsOfFile: hostsFile, encoding: .utf8).hasPrefix("10.0.0.9 runtime-line"))
        #expect(try cluster.exec(runtime, ["dig", "+short", "\(peer).anet", "@127.0.0.11"]).stdout.contains("192.168.70.3"))
        #expect(try cluster.exec(runtime, ["busybox", "ping", "-A", "-c", "3", "-w", "3", "192.168.70.3"]).status == 0)
        #expect(try cluster.dnsd(1, ["stop", runtime]).status == 0)
        #expect(NamedNamespacesList.contains(runtime), "the runtime's namespace stays")
        #expect(!(try Shell.check(["ip", "-n", runtime, "-o", "link"]).contains("eth0")), "dnsd's interface left")
    }

    @Test("the story's core on the Consul double: names across hosts appear and vanish")
    func consul() throws {
        let cluster = try ClusterHarness(hosts: 2, store: "consul")
        defer { cluster.close() }
        let a = cluster.name("a"), b = cluster.name("b")
        #expect(try cluster.dnsd(1, ["network", "create", "--subnet=192.168.80.0/24", "cnet"]).status == 0)
        #expect(try cluster.dnsd(1, ["run", "--name=\(a)", "--net=cnet"]).status == 0)
        #expect(try cluster.dnsd(2, ["run", "--name=\(b)", "--net=cnet"]).status == 0)
        #expect(try cluster.eventually(5) { try cluster.exec(a, ["dig", "+short", "\(b).cnet", "@127.0.0.11"]).stdout.contains("192.168.80.3") })
        #expect(try cluster.exec(a, ["busybox", "ping", "-A", "-c", "3", "-w", "3", b]).status == 0)
        let duplicate = try cluster.dnsd(2, ["run", "--name=\(a)", "--net=cnet"])
        #expect(duplicate.stderr.contains("already used in the cluster"))
        #expect(try cluster.dnsd(2, ["stop", b]).status == 0)
        #expect(try cluster.eventually(5) { try cluster.exec(a, ["dig", "\(b).cnet", "@127.0.0.11"]).stdout.contains("NXDOMAIN") })
    }

    @Test("a host that dies: its names vanish from the other hosts within the lease TTL (3 s) + 2 s")
    func deadHost() throws {
        let cluster = try ClusterHarness(hosts: 2)
        defer { cluster.close() }
        let a = cluster.name("a"), b = cluster.name("b")
        #expect(try cluster.dnsd(1, ["network", "create", "--subnet=192.168.90.0/24", "dnet"]).status == 0)
        #expect(try cluster.dnsd(1, ["run", "--name=\(a)", "--net=dnet"]).status == 0)
        #expect(try cluster.dnsd(2, ["run", "--name=\(b)", "--net=dnet"]).status == 0)
        #expect(try cluster.eventually { try cluster.exec(a, ["dig", "+short", "\(b).dnet", "@127.0.0.11"]).stdout.contains("192.168.90.3") })
        cluster.kill(2)
        let killed = Date()
        let gone = try cluster.eventually(5) {
            try cluster.exec(a, ["dig", "\(b).dnet", "@127.0.0.11"]).stdout.contains("NXDOMAIN")
                && !(try String(contentsOfFile: "/etc/netns/\(a)/hosts", encoding: .utf8).contains(b))
        }
        #expect(gone, "gone after \(Date().timeIntervalSince(killed)) s")
    }
}

@Suite("End to end: daemon restart", .serialized, .timeLimit(.minutes(5)))
struct RestartTests {
    @Test("kill -9 and restart: surviving sandboxes keep their addresses and names, DNS answers again, orphans are withdrawn")
    func restart() throws {
        let cluster = try ClusterHarness(hosts: 2)
        defer { cluster.close() }
        let a = cluster.name("a"), b = cluster.name("b"), gone = cluster.name("gone")
        #expect(try cluster.dnsd(1, ["network", "create", "--subnet=192.168.100.0/24", "knet"]).status == 0)
        #expect(try cluster.dnsd(1, ["run", "--name=\(a)", "--net=knet"]).status == 0)
        #expect(try cluster.dnsd(2, ["run", "--name=\(b)", "--net=knet", "--alias=svc"]).status == 0)
        #expect(try cluster.dnsd(2, ["run", "--name=\(gone)", "--net=knet"]).status == 0)
        #expect(try cluster.eventually { try cluster.exec(a, ["dig", "+short", "svc.knet", "@127.0.0.11"]).stdout.contains("192.168.100.3") })
        cluster.kill(2)
        // While h2's daemon is down, one of its sandboxes disappears.
        try Shell.check(["ip", "netns", "del", gone])
        try cluster.restart(2)
        let ps = try cluster.dnsd(2, ["ps"]).stdout
        #expect(ps.contains("\(b)") && ps.contains("knet:eth0=192.168.100.3"), "\(ps)")
        #expect(!ps.contains(gone))
        // b answers DNS again inside, and a still sees b after the old lease (3 s) has lapsed.
        #expect(try cluster.eventually { try cluster.exec(b, ["dig", "+short", "\(a).knet", "@127.0.0.11"]).stdout.contains("192.168.100.2") })
        sleep(4)
        #expect(try cluster.exec(a, ["dig", "+short", "svc.knet", "@127.0.0.11"]).stdout.contains("192.168.100.3"))
        #expect(try cluster.exec(a, ["busybox", "ping", "-A", "-c", "3", "-w", "3", b]).status == 0)
        #expect(try cluster.exec(a, ["dig", "\(gone).knet", "@127.0.0.11"]).stdout.contains("NXDOMAIN"), "the orphan is withdrawn")
        // The name is still b's: nobody else may take it.
        #expect(try cluster.dnsd(1, ["run", "--name=\(b)", "--net=knet"]).stderr.contains("already used"))
    }
}

@Suite("End to end: exposure", .serialized, .timeLimit(.minutes(5)))
struct ExposureTests {
    @Test("the control socket refuses non-root users; nothing listens on the underlay but VXLAN; DNS only inside sandboxes")
    func exposure() throws {
        let cluster = try ClusterHarness(hosts: 1)
        defer { cluster.close() }
        let a = cluster.name("a")
        #expect(try cluster.dnsd(1, ["network", "create", "--subnet=192.168.110.0/24", "xnet"]).status == 0)
        #expect(try cluster.dnsd(1, ["run", "--name=\(a)", "--net=xnet"]).status == 0)
        // A non-root user cannot reach the control API.
        let socket = cluster.socket(1)
        let attributes = try FileManager.default.attributesOfItem(atPath: socket)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        let asNobody = try Shell.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                      "env", "DNSD_SOCK=\(socket)", ClusterHarness.dnsdBinary, "ps"])
        #expect(asNobody.status != 0 && asNobody.stderr.contains("cannot reach the dnsd daemon"), "\(asNobody.stderr)")
        #expect(asNobody.stderr.split(separator: "\n").count == 1)
        // In the host namespace: the only listening sockets are the VXLAN port (UDP 4789).
        let host = cluster.hosts[0].name
        let listening = try Shell.check(["ip", "netns", "exec", host, "ss", "-H", "-lntu"])
        let ports = listening.split(separator: "\n").compactMap { line -> String? in
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            return fields.count >= 5 ? String(fields[4]) : nil
        }
        #expect(!ports.isEmpty && ports.allSatisfy { $0.hasSuffix(":4789") }, "listening in the host namespace: \(ports)")
        // Inside the sandbox, the responder at 127.0.0.11:53 (UDP and TCP) and nothing else.
        let inside = try Shell.check(["ip", "netns", "exec", a, "ss", "-H", "-lntu"])
        let insidePorts = Set(inside.split(separator: "\n").compactMap { line -> String? in
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            return fields.count >= 5 ? String(fields[4]) : nil
        })
        #expect(insidePorts == ["127.0.0.11:53"], "\(insidePorts)")
    }
}
