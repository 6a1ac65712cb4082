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
        let rt = try RuntimeHarness(hosts: 2, docker: true)
        defer {
            rt.close()
            #expect(rt.leftovers().isEmpty, "\(rt.leftovers())")
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
            rt.close()
            #expect(rt.leftovers().isEmpty, "\(rt.leftovers())")
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
}
