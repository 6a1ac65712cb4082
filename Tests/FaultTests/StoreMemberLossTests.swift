import ClusterHarness
import Foundation
import TestSupport
import Testing

/// Issue 11, item 14: the etcd member a daemon's watch reads from vanishes without a reset
/// (power loss, partition: packets dropped, no RST). The daemon must notice and resume its
/// watch on another member from the last revision, within 15 s.
@Suite("Faults: a store member vanishes without a reset", .serialized, .timeLimit(.minutes(5)))
struct StoreMemberLossTests {
    @Test("a blackholed etcd member: the watch resumes on another member; a new name reaches the other host within 15 s")
    func blackholedMember() throws {
        let cluster = try ClusterHarness(hosts: 2, store: "etcd-cluster")
        defer { cluster.close() }
        let a = cluster.name("a"), b = cluster.name("b"), c = cluster.name("c")
        #expect(try cluster.dnsd(1, ["network", "create", "--subnet=192.168.84.0/24", "bnet"]).status == 0)
        #expect(try cluster.dnsd(1, ["run", "--name=\(a)", "--net=bnet"]).status == 0)
        #expect(try cluster.dnsd(2, ["run", "--name=\(b)", "--net=bnet"]).status == 0)
        #expect(try cluster.eventually(5) { try cluster.exec(a, ["dig", "+short", "\(b).bnet", "@127.0.0.11"]).stdout.contains("192.168.84.") })
        // Every daemon's watch reads from the first member listed: drop everything it sends and
        // receives (no reset reaches anyone).
        let member = cluster.storeMembers[0].host.name
        try Shell.check(["ip", "netns", "exec", member, "nft", "-f", "-"], input: """
            table inet dnsdt_hole {
                chain in { type filter hook input priority 0; policy drop; }
                chain out { type filter hook output priority 0; policy drop; }
            }
            """)
        let holed = Date()
        let run = try cluster.dnsd(2, ["run", "--name=\(c)", "--net=bnet"])
        #expect(run.status == 0, "\(run.stderr)")
        let started = Date()
        let address = run.stdout.split(separator: " ").first { $0.hasPrefix("bnet:eth0=") }.map { String($0.dropFirst(10)) } ?? "?"
        let seen = try cluster.eventually(25) {
            try cluster.exec(a, ["dig", "+short", "+time=1", "+tries=1", "\(c).bnet", "@127.0.0.11"]).stdout
                .trimmingCharacters(in: .whitespacesAndNewlines) == address
        }
        let after = Date().timeIntervalSince(started)
        #expect(seen, "h1 never saw \(c): its watch stayed on the dead member")
        #expect(after < 15, "seen \(after) s after the run")
        #expect(cluster.eventually(3) { cluster.hostsNames(a)[c] == address })
        figure("blackholed etcd member: a new name reached the other host \(String(format: "%.1f", after)) s after its run (\(String(format: "%.1f", started.timeIntervalSince(holed))) s for the run itself), bar 15 s")
    }
}
