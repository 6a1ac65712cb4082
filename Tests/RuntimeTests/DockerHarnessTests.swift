import ClusterHarness
import Foundation
import TestSupport
import Testing

/// The ground issue 14 (the Docker network plugin) stands on: a real dockerd per simulated host,
/// confined with `nsenter --net` and a mount namespace of its own, in which its
/// /run/docker/plugins is that host's directory: each host's dockerd discovers only its own
/// host's plugin sockets, as on real machines. No iptables, no bridge: it cannot touch the
/// machine's firewall.
@Suite("Runtimes: dockerd on simulated hosts", .serialized, .timeLimit(.minutes(3)))
struct DockerHarnessTests {
    @Test("two dockerds start, load the test's image, run containers, and each sees only its own plugin directory")
    func twoHosts() throws {
        let rt = try RuntimeHarness(hosts: 2)
        defer {
            let left = rt.finish()
            #expect(left.isEmpty, "\(left)")
            #expect(!FileManager.default.fileExists(atPath: rt.dockerDirectory(1)) && !FileManager.default.fileExists(atPath: rt.dockerDirectory(2)))
        }
        try rt.startDockerd(1)
        try rt.startDockerd(2)
        let hello = try rt.docker(1, ["run", "--rm", "--network", "none", rt.image, "echo", "hello"])
        #expect(hello.status == 0 && hello.stdout.contains("hello"), "\(hello.stderr)")
        // A plugin socket in h1's directory: visible to h1's dockerd only.
        let marker = rt.dockerDirectory(1) + "/plugins/marker.sock"
        #expect(FileManager.default.createFile(atPath: marker, contents: Data()))
        let pid = try String(contentsOfFile: rt.dockerDirectory(1) + "/dockerd.pid", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let pid2 = try String(contentsOfFile: rt.dockerDirectory(2) + "/dockerd.pid", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(try Shell.check(["nsenter", "-t", pid, "-m", "ls", "/run/docker/plugins"]).contains("marker.sock"))
        #expect(!(try Shell.check(["nsenter", "-t", pid2, "-m", "ls", "/run/docker/plugins"]).contains("marker.sock")))
        #expect(!((try? FileManager.default.contentsOfDirectory(atPath: "/run/docker/plugins")) ?? []).contains("marker.sock"))
        // dockerd runs in its host's network namespace (its containers' veths would land there).
        let netns = try Shell.check(["stat", "-L", "-c", "%i", "/proc/\(pid)/ns/net"])
        #expect(netns == (try Shell.check(["stat", "-L", "-c", "%i", "/run/netns/\(rt.cluster.hosts[0].name)"])))
        #expect(try rt.docker(2, ["run", "-d", "--network", "none", rt.image, "sleep", "60"]).status == 0)
    }
}
