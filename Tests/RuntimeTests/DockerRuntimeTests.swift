import ClusterHarness
import Foundation
import TestSupport
import Testing

/// Issue 14 with a real dockerd per simulated host (etcd, two hosts): dnsd as Docker's network
/// and IPAM driver.
@Suite("Runtimes: docker run on dnsd networks across hosts", .serialized, .timeLimit(.minutes(5)))
struct DockerRuntimeTests {
    static func address(_ output: String, _ name: String) -> String? { CNIRuntimeTests.address(in: output, of: name) }

    @Test("docker network create -d dnsd on h1, vnet on h2 too; run on both; names by --dns GATEWAY across hosts; stop and kill")
    func story() throws {
        // dnsd's own ways of finding a container gone (the sweep, the liveness check) log each
        // withdrawal; Docker's Leave does not: the log shows which one made a name vanish.
        let rt = try RuntimeHarness(hosts: 2, docker: true, logLevel: "info", daemonOptions: ["--liveness-interval", "3600"])
        defer {
            let left = rt.finish()
            #expect(left.isEmpty, "\(left)")
            #expect(!FileManager.default.fileExists(atPath: rt.dockerDirectory(1)))
        }
        try rt.startDockerd(1)
        try rt.startDockerd(2)
        let net = "d" + rt.network.dropFirst()
        let created = try rt.docker(1, ["network", "create", "-d", "dnsd", "--ipam-driver", "dnsd", "--subnet", "192.168.78.0/24", net])
        #expect(created.status == 0, "\(created.stderr)")
        // Without dnsd's IPAM each host would hand out the same addresses: refused, in dnsd's line
        // (issue 21, item 7).
        let noIPAM = try rt.docker(1, ["network", "create", "-d", "dnsd", "--subnet", "192.168.79.0/24", "x" + net])
        #expect(noIPAM.status != 0 && noIPAM.stderr.contains("--ipam-driver dnsd"), "\(noIPAM.stderr)")
        #expect(!(try rt.docker(1, ["network", "ls"]).stdout.contains("x" + net)))
        // The dnsd network exists in the store, and h2's dockerd has it too.
        #expect(try rt.cluster.eventually(5) { try rt.cluster.dnsd(2, ["network", "ls"]).stdout.contains(net) })
        #expect(try rt.cluster.eventually(5) { try rt.docker(2, ["network", "ls", "--format", "{{.Name}} {{.Driver}}"]).stdout.contains("\(net) dnsd") })
        // A network made with dnsd network create is usable from Docker on every host as well.
        #expect(try rt.cluster.eventually(5) { try rt.docker(1, ["network", "ls"]).stdout.contains(rt.network) })

        let web = try rt.docker(1, ["run", "-d", "--name", "web", "--network", net, "--network-alias", "www", rt.image, "httpd", "-f", "-p", "80", "-h", "/www"])
        #expect(web.status == 0, "\(web.stderr)")
        let dns = ["--dns", "192.168.78.1"]
        let lookup = try rt.docker(2, ["run", "--rm"] + dns + ["--network", net, rt.image, "nslookup", "web"])
        #expect(Self.address(lookup.stdout, "web") == "192.168.78.2", "\(lookup.stdout)\(lookup.stderr)")
        let qualified = try rt.docker(2, ["run", "--rm"] + dns + ["--network", net, rt.image, "nslookup", "web.\(net)"])
        #expect(Self.address(qualified.stdout, "web") == "192.168.78.2", "\(qualified.stdout)")
        let alias = try rt.docker(2, ["run", "--rm"] + dns + ["--network", net, rt.image, "nslookup", "www.\(net)"])
        #expect(Self.address(alias.stdout, "www") == "192.168.78.2", "--network-alias: \(alias.stdout)")
        let page = try rt.docker(2, ["run", "--rm"] + dns + ["--network", net, rt.image, "wget", "-qO-", "http://web.\(net)/"])
        #expect(page.stdout.contains("hello from dnsd-busybox"), "\(page.stdout)\(page.stderr)")
        // Docker's own answer on h1 agrees with dnsd's.
        let local = try rt.docker(1, ["run", "--rm", "--network", net, rt.image, "nslookup", "web"])
        #expect(Self.address(local.stdout, "web") == "192.168.78.2", "\(local.stdout)")

        // Addresses come from the cluster IPAM: --ip honoured, none handed out twice.
        let pinned = try rt.docker(2, ["run", "--rm", "--network", net, "--ip", "192.168.78.50", rt.image, "ip", "-4", "-o", "addr", "show", "eth0"])
        #expect(pinned.stdout.contains("192.168.78.50/24"), "\(pinned.stdout)\(pinned.stderr)")
        let taken = try rt.docker(2, ["run", "--rm", "--network", net, "--ip", "192.168.78.2", rt.image, "true"])
        #expect(taken.status != 0, "web's address is refused on h2: \(taken.stdout)")

        // A dnsd sandbox and a Docker container resolve each other.
        let sbx = rt.cluster.name("sbx")
        #expect(try rt.cluster.dnsd(2, ["run", "--name", sbx, "--net", net]).status == 0)
        #expect(try rt.cluster.eventually { try rt.cluster.exec(sbx, ["dig", "+short", "web.\(net)", "@127.0.0.11"]).stdout.contains("192.168.78.2") })
        let back = try rt.docker(1, ["exec", "web", "nslookup", "\(sbx).\(net)", "192.168.78.1"])
        #expect(Self.address(back.stdout, sbx) != nil, "\(back.stdout)\(back.stderr)")

        // docker stop: the name vanishes on h2; docker kill of another: likewise.
        #expect(try rt.docker(1, ["stop", "-t", "0", "web"]).status == 0)
        #expect(try rt.cluster.eventually(5) { try rt.cluster.exec(sbx, ["dig", "web.\(net)", "@127.0.0.11"]).stdout.contains("NXDOMAIN") })
        #expect(try rt.docker(1, ["run", "-d", "--name", "k1", "--network", net, rt.image, "sleep", "600"]).status == 0)
        #expect(try rt.cluster.eventually { try rt.cluster.exec(sbx, ["dig", "+short", "k1.\(net)", "@127.0.0.11"]).stdout.contains("192.168.78.") })
        #expect(try rt.docker(1, ["kill", "k1"]).status == 0)
        #expect(try rt.cluster.eventually(5) { try rt.cluster.exec(sbx, ["dig", "k1.\(net)", "@127.0.0.11"]).stdout.contains("NXDOMAIN") })
        // docker rm -f of a running container: likewise.
        #expect(try rt.docker(1, ["run", "-d", "--name", "r1", "--network", net, rt.image, "sleep", "600"]).status == 0)
        #expect(try rt.cluster.eventually { try rt.cluster.exec(sbx, ["dig", "+short", "r1.\(net)", "@127.0.0.11"]).stdout.contains("192.168.78.") })
        #expect(try rt.docker(1, ["rm", "-f", "r1"]).status == 0)
        #expect(try rt.cluster.eventually(5) { try rt.cluster.exec(sbx, ["dig", "r1.\(net)", "@127.0.0.11"]).stdout.contains("NXDOMAIN") })
        // Each of the three went by Docker's Leave, not by the sweep or the liveness check.
        let swept = rt.cluster.log(1).split(separator: "\n").filter {
            $0.contains("withdrawing a docker endpoint") && !$0.contains("from the store failed")
        }
        #expect(swept.isEmpty, "\(swept)")
        // Two containers on one host resolve each other through Docker's resolver and dnsd's.
        #expect(try rt.docker(1, ["run", "-d", "--name", "a1", "--network", net, rt.image, "sleep", "600"]).status == 0)
        let sameHost = try rt.docker(1, ["run", "--rm"] + dns + ["--network", net, rt.image, "nslookup", "a1.\(net)"])
        #expect(Self.address(sameHost.stdout, "a1") != nil, "\(sameHost.stdout)")
        #expect(try rt.docker(1, ["rm", "-f", "a1"]).status == 0)
        #expect(try rt.cluster.dnsd(2, ["stop", sbx]).status == 0)

        // docker network rm on h1 removes the dnsd network, unless a container on h2 uses it: Docker
        // ignores a driver's refusal to delete, so h1's copy goes and comes back (dnsd re-creates
        // it in every dockerd while the cluster has the network); then h2's dockerd loses its copy.
        #expect(try rt.docker(2, ["run", "-d", "--name", "c2", "--network", net, rt.image, "sleep", "600"]).status == 0)
        #expect(try rt.cluster.eventually { try rt.cluster.dnsd(1, ["network", "inspect", net]).stdout.contains("\"c2\"") })
        _ = try rt.docker(1, ["network", "rm", net])
        #expect(try rt.cluster.dnsd(1, ["network", "ls"]).stdout.contains(net), "in use on h2: the cluster keeps it")
        #expect(try rt.cluster.eventually(5) { try rt.docker(1, ["network", "ls"]).stdout.contains(net) }, "h1's copy comes back")
        #expect(try rt.docker(2, ["rm", "-f", "c2"]).status == 0)
        let removed = try rt.docker(1, ["network", "rm", net])
        #expect(removed.status == 0, "\(removed.stderr)")
        #expect(!(try rt.cluster.dnsd(2, ["network", "ls"]).stdout.contains(net)))
        #expect(try rt.cluster.eventually(8) { !(try rt.docker(2, ["network", "ls"]).stdout.contains(net)) }, "h2's copy goes")
    }

    @Test("restarts of dnsd, of dockerd, and of both: running containers keep addresses and names; stopped ones leave nothing in the store")
    func restarts() throws {
        let rt = try RuntimeHarness(hosts: 2, docker: true)
        defer {
            let left = rt.finish()
            #expect(left.isEmpty, "\(left)")
        }
        try rt.startDockerd(1)
        try rt.startDockerd(2)
        let net = rt.network  // made by dnsd network create: in both dockerds by the sync
        #expect(try rt.cluster.eventually(5) { try rt.docker(1, ["network", "ls"]).stdout.contains(net) && (try rt.docker(2, ["network", "ls"]).stdout.contains(net)) })
        #expect(try rt.docker(1, ["run", "-d", "--name", "web", "--network", net, rt.image, "httpd", "-f", "-p", "80", "-h", "/www"]).status == 0)
        #expect(try rt.docker(2, ["run", "-d", "--name", "c2", "--network", net, rt.image, "sleep", "600"]).status == 0)
        func lookup(_ name: String) throws -> String? {
            Self.address(try rt.docker(2, ["exec", "c2", "nslookup", "\(name).\(net)", "192.168.77.1"]).stdout, name)
        }
        func storedNames() throws -> [String] {
            let detail = try rt.cluster.dnsd(2, ["network", "inspect", net]).stdout
            return detail.split(separator: "\n").filter { $0.contains("\"name\" :") && !$0.contains(net) }.map { String($0) }
        }
        #expect(try rt.cluster.eventually(5) { try lookup("web") == "192.168.77.2" })

        // dnsd on h1 dies without warning and comes back: web keeps its address and its name.
        rt.cluster.kill(1)
        try rt.cluster.restart(1)
        #expect(try rt.cluster.eventually(5) { try lookup("web") == "192.168.77.2" })
        let page = try rt.docker(2, ["exec", "c2", "wget", "-qO-", "http://192.168.77.2/"])
        #expect(page.stdout.contains("hello from dnsd-busybox"), "\(page.stdout)\(page.stderr)")
        // Past the old lease's TTL (3 s), web is still held and published under the new one.
        usleep(4_500_000)
        #expect(try lookup("web") == "192.168.77.2")
        let names = try storedNames()
        #expect(names.filter { $0.contains("\"web\"") }.count == 1, "\(names)")

        // dockerd on h1 is killed (no Leave for anything) and restarts; web does not come back
        // with it, so its name and address leave the store (the sweep).
        try rt.restartDockerd(1, signal: "KILL")
        #expect(try rt.cluster.eventually(8) { try lookup("web") == nil }, "web withdrawn after dockerd's restart")
        #expect(try rt.cluster.eventually(5) { !(try storedNames().contains { $0.contains("\"web\"") }) })
        // ...and web can start again, same name.
        let again = try rt.docker(1, ["start", "web"])
        #expect(again.status == 0, "\(again.stderr)")
        #expect(try rt.cluster.eventually(5) { try lookup("web") != nil })

        // Both down at once: dockerd stops (web stops with it), dnsd dies before it hears of it,
        // dnsd comes back, then dockerd: web's record from before is withdrawn, nothing stale is
        // left, and web starts again. (Stopped while dnsd is down, dockerd waits ~15 s for the
        // plugin to answer its Leave calls: Docker's own retries.)
        try rt.stopDockerd(1)
        rt.cluster.kill(1)
        try rt.cluster.restart(1)
        try rt.startDockerdAgain(1)
        #expect(try rt.cluster.eventually(8) { !(try storedNames().contains { $0.contains("\"web\"") }) }, "no stale record of web")
        #expect(try lookup("web") == nil)
        let third = try rt.docker(1, ["start", "web"])
        #expect(third.status == 0, "\(third.stderr)")
        #expect(try rt.cluster.eventually(5) { try lookup("web") != nil })
    }

    @Test("a container's whole life (issue 21): two networks, a way out, dead while dockerd is away, an outage at rm, networks judged at create and kept in step")
    func lives() throws {
        let rt = try RuntimeHarness(hosts: 2, docker: true)
        defer {
            let left = rt.finish()
            #expect(left.isEmpty, "\(left)")
        }
        try rt.startDockerd(1)
        try rt.startDockerd(2)
        let net = rt.network  // 192.168.77.0/24, made by dnsd network create
        let net2 = "e" + rt.network.dropFirst()

        // Item 8: what Docker lets a driver judge is judged in CreateNetwork: an overlapping subnet
        // fails `docker network create` with dnsd's line. A name dnsd refuses (Docker never tells
        // a driver the name) is removed again at once.
        let overlapping = try rt.docker(1, ["network", "create", "-d", "dnsd", "--ipam-driver", "dnsd", "--subnet", "192.168.77.128/25", "o" + net])
        #expect(overlapping.status != 0 && overlapping.stderr.contains("overlaps dnsd network '\(net)'"), "\(overlapping.stderr)")
        let underscore = "u_" + net
        _ = try rt.docker(1, ["network", "create", "-d", "dnsd", "--ipam-driver", "dnsd", "--subnet", "192.168.75.0/24", underscore])
        #expect(try rt.cluster.eventually(3) { !(try rt.docker(1, ["network", "ls"]).stdout.contains(underscore)) }, "removed again")
        #expect(rt.cluster.log(1).contains("refused by dnsd"), "the daemon says why")
        #expect(!(try rt.cluster.dnsd(1, ["network", "ls"]).stdout.contains("192.168.75.0/24")))
        let created = try rt.docker(1, ["network", "create", "-d", "dnsd", "--ipam-driver", "dnsd", "--subnet", "192.168.76.0/24", net2])
        #expect(created.status == 0, "\(created.stderr)")
        for n in 1...2 {
            #expect(try rt.cluster.eventually(5) {
                let listed = try rt.docker(n, ["network", "ls"]).stdout
                return listed.contains(net) && listed.contains(net2)
            })
        }

        // A container on h2 on both networks asks dnsd at each network's gateway.
        #expect(try rt.docker(2, ["run", "-d", "--name", "probe", "--network", net, rt.image, "sleep", "600"]).status == 0)
        #expect(try rt.docker(2, ["network", "connect", net2, "probe"]).status == 0)
        func ask(_ name: String, _ network: String) throws -> String {
            let server = network == net ? "192.168.77.1" : "192.168.76.1"
            let reply = try rt.docker(2, ["exec", "probe", "nslookup", "\(name).\(network)", server])
            return reply.stdout + reply.stderr
        }
        func lookup(_ name: String, _ network: String) throws -> String? { Self.address(try ask(name, network), name) }
        /// Answered, and answered NXDOMAIN (not a lookup that failed some other way).
        func vanished(_ name: String, _ network: String) throws -> Bool { try ask(name, network).contains("NXDOMAIN") }
        func stored(_ name: String) throws -> Bool {
            try rt.cluster.etcdList("dnsd/v1/endpoints/").values.contains { String(decoding: $0, as: UTF8.self).contains("\"name\":\"\(name)\"") }
        }

        // Item 4: one container on two dnsd networks has its name on both, until it leaves one.
        #expect(try rt.docker(1, ["run", "-d", "--name", "dual", "--network", net, rt.image, "sleep", "600"]).status == 0)
        #expect(try rt.docker(1, ["network", "connect", net2, "dual"]).status == 0)
        #expect(try rt.cluster.eventually(5) { try lookup("dual", net) != nil && lookup("dual", net2) != nil }, "dual on both networks")
        #expect(try rt.docker(1, ["network", "disconnect", net2, "dual"]).status == 0)
        #expect(try rt.cluster.eventually(5) { try vanished("dual", net2) })
        #expect(try lookup("dual", net) != nil, "still named on the network it stays on")

        // Item 11: a way out: an address on the underlay (h2's), through the overlay's gateway.
        let outside = rt.cluster.hosts[1].address.description
        let ping = try rt.docker(1, ["exec", "dual", "ping", "-c", "1", "-W", "3", outside])
        #expect(ping.status == 0, "egress to \(outside): \(ping.stdout)\(ping.stderr)")
        // ...and no way in: a sandbox on the same gateway bridge (h1's, on another network) that
        // routes the overlay's subnet through the egress leg reaches nothing.
        let leg = try Shell.run(["ip", "-n", "\(rt.cluster.hostID(1))-ov-\(net)", "-4", "-o", "addr", "show", "eg0"]).stdout
        let legAddress = try #require(leg.split(separator: " ").first { $0.hasPrefix("172.18.") }?.split(separator: "/").first.map(String.init))
        let dualAddress = try #require(try lookup("dual", net))
        let intruder = rt.cluster.name("intruder")
        #expect(try rt.cluster.dnsd(1, ["run", "--name", intruder, "--net", net2]).status == 0)
        #expect(try rt.cluster.exec(intruder, ["ip", "route", "add", "192.168.77.0/24", "via", legAddress]).status == 0)
        // The probe works and reaches the leg itself (so its failure below is the filter's doing)...
        let reachesLeg = try rt.cluster.exec(intruder, ["busybox", "ping", "-c", "1", "-W", "2", legAddress])
        #expect(reachesLeg.status == 0, "the intruder reaches the egress leg: \(reachesLeg.stdout)\(reachesLeg.stderr)")
        let intrusion = try rt.cluster.exec(intruder, ["busybox", "ping", "-c", "2", "-W", "2", dualAddress])
        #expect(intrusion.status != 0 && intrusion.stdout.contains("2 packets transmitted, 0 packets received"),
                "no way in through the egress leg: \(intrusion.stdout)\(intrusion.stderr)")
        #expect(try rt.cluster.dnsd(1, ["stop", intruder]).status == 0)

        // Item 5: a container that dies while dockerd is away loses its name (its namespace is
        // empty: no dockerd needed to tell).
        #expect(try rt.docker(1, ["run", "-d", "--name", "doomed", "--network", net, rt.image, "sleep", "600"]).status == 0)
        #expect(try rt.cluster.eventually(5) { try lookup("doomed", net) != nil })
        let pid = try rt.docker(1, ["inspect", "-f", "{{.State.Pid}}", "doomed"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(Int32(pid) ?? 0 > 1, "pid '\(pid)'")
        // Two rounds of the liveness check (every second) see its process: a namespace no
        // process was ever seen in gets 30 s of grace (a container still starting).
        Thread.sleep(forTimeInterval: 2.5)
        try rt.stopDockerd(1, signal: "KILL")
        _ = try Shell.run(["kill", "-9", pid])
        #expect(try rt.cluster.eventually(8) { try vanished("doomed", net) && !stored("doomed") }, "withdrawn without dockerd")
        #expect(try lookup("dual", net) != nil, "a living container keeps its name")
        try rt.startDockerdAgain(1)

        // Items 2 and 10: the store is away while a container is removed: its name goes when the
        // store is back, and so does its address (released for Docker, retried by dnsd); the next
        // container with that address keeps its veth and its name past a sweep.
        #expect(try rt.docker(1, ["run", "-d", "--name", "gone", "--network", net, "--ip", "192.168.77.40", rt.image, "sleep", "600"]).status == 0)
        #expect(try rt.cluster.eventually(5) { try lookup("gone", net) != nil })
        rt.cluster.stopStore()
        _ = try rt.docker(1, ["rm", "-f", "gone"], timeout: 120)
        try rt.cluster.startStore()
        #expect(try rt.cluster.eventually(10) { try vanished("gone", net) && !stored("gone") }, "gone's name withdrawn once the store is back")
        #expect(try rt.cluster.eventually(10) { try rt.cluster.etcdList("dnsd/v1/ipam/\(net)/192.168.77.40").isEmpty }, "its address released")
        let next = try rt.docker(1, ["run", "-d", "--name", "next", "--network", net, "--ip", "192.168.77.40", rt.image, "sleep", "600"])
        #expect(next.status == 0, "\(next.stderr)")
        #expect(try rt.cluster.eventually(5) { try lookup("next", net) == "192.168.77.40" })
        usleep(4_000_000)  // past a sweep (every 3 s)
        #expect(try lookup("next", net) == "192.168.77.40")
        #expect(try rt.docker(2, ["exec", "probe", "ping", "-c", "1", "-W", "3", "192.168.77.40"]).status == 0, "next's veth is whole")

        // Item 9: a Docker copy of a network whose dnsd network was made again with another subnet
        // (while this dockerd was down) is replaced.
        #expect(try rt.docker(2, ["network", "disconnect", net2, "probe"]).status == 0)
        try rt.stopDockerd(2)
        #expect(try rt.cluster.dnsd(1, ["network", "rm", net2]).status == 0)
        #expect(try rt.cluster.dnsd(1, ["network", "create", "--subnet=192.168.74.0/24", net2]).status == 0)
        try rt.startDockerdAgain(2)
        #expect(try rt.cluster.eventually(20) {
            try rt.docker(2, ["network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}}{{end}}", net2]).stdout.contains("192.168.74.0/24")
        }, "h2's copy has the new subnet")
        #expect(try rt.cluster.dnsd(1, ["network", "ls"]).stdout.contains("192.168.74.0/24"), "removing the stale copy left the cluster's network alone")
        for name in ["dual", "next", "doomed"] { _ = try rt.docker(1, ["rm", "-f", name]) }
        _ = try rt.docker(2, ["rm", "-f", "probe"])
    }
}
