import ClusterHarness
import Foundation
import TestSupport
import Testing

/// Per-network interest (issue 22) with real daemons on three simulated hosts and etcd: a host
/// receives the endpoint changes only of the networks it has something on, joins a network with
/// every name it already has, stops receiving its changes when it leaves, and keeps this through
/// a restart and a start from its cache while etcd is away.
@Suite("Per-network interest: a host pays only for its own networks", .serialized, .timeLimit(.minutes(5)))
struct InterestTests {
    /// One daemon's counter or gauge, scraped from its metrics endpoint in its host's namespace.
    static func metric(_ cluster: ClusterHarness, _ n: Int, _ name: String) throws -> Double {
        let text = try Shell.check(["nsenter", "--net=/run/netns/\(cluster.hosts[n - 1].name)", "curl", "-s", "-m", "5",
                                    "http://127.0.0.1:9153/metrics"], timeout: 15)
        let parsed = try #require(MetricsTests.parse(text), "metrics text parses")
        return MetricsTests.value(parsed.samples, name) ?? 0
    }

    @Test("events only of its networks; joining sees every name; leaving stops them; restart and cache keep it so")
    func interest() throws {
        let cluster = try ClusterHarness(hosts: 3, daemonOptions: ["--metrics", "127.0.0.1:9153"])
        defer { cluster.close() }
        let a1 = cluster.name("a1"), a2 = cluster.name("a2"), b2 = cluster.name("b2"), b3 = cluster.name("b3"), late = cluster.name("late")
        #expect(try cluster.dnsd(1, ["network", "create", "--subnet=192.168.110.0/24", "neta"]).status == 0)
        #expect(try cluster.dnsd(2, ["network", "create", "--subnet=192.168.111.0/24", "netb"]).status == 0)
        // h1 on neta only; h2 on both; h3 on netb only.
        for (n, name, net) in [(1, a1, "neta"), (2, a2, "neta"), (2, b2, "netb"), (3, b3, "netb")] {
            let run = try cluster.dnsd(n, ["run", "--name", name, "--net", net])
            #expect(run.status == 0, "\(run.stderr)")
        }
        func answers(_ sandbox: String, _ name: String) throws -> String {
            try cluster.exec(sandbox, ["dig", "+short", "+time=1", "+tries=1", name, "@127.0.0.11"]).stdout
                .trimmingCharacters(in: .whitespacesAndNewlines)
        }
        #expect(try cluster.eventually(5) { try !answers(a1, "\(a2).neta").isEmpty && !answers(b3, "\(b2).netb").isEmpty })
        #expect(try Self.metric(cluster, 1, "dnsd_watched_networks") == 1)
        #expect(try Self.metric(cluster, 2, "dnsd_watched_networks") == 2)

        // Churn on netb (h3 runs and stops sandboxes): h2 and h3 receive it, h1 none of it.
        func churn(_ rounds: Int) throws {
            for round in 0..<rounds {
                let name = cluster.name("c\(round)")
                #expect(try cluster.dnsd(3, ["run", "--name", name, "--net", "netb"]).status == 0)
                #expect(try cluster.dnsd(3, ["stop", name]).status == 0)
            }
        }
        let before = try (1...3).map { try Self.metric(cluster, $0, "dnsd_store_events_total") }
        try churn(8)
        // Then one change on neta, which h1 receives.
        let a4 = cluster.name("a4")
        #expect(try cluster.dnsd(2, ["run", "--name", a4, "--net", "neta"]).status == 0)
        #expect(try cluster.eventually(5) { try !answers(a1, "\(a4).neta").isEmpty })
        // Each run and stop on netb is an endpoint and a claim written, then deleted: 32 events;
        // once h2 and h3 have them all, h1 would have had them too (its own streams, as fast).
        var received: [Double] = []
        #expect(try cluster.eventually(10) {
            received = zip(try (1...3).map { try Self.metric(cluster, $0, "dnsd_store_events_total") }, before).map { $0 - $1 }
            return received[2] >= 32 && received[1] >= 32
        }, "hosts on netb receive its churn: \(received)")
        usleep(300_000)
        received[0] = try Self.metric(cluster, 1, "dnsd_store_events_total") - before[0]
        #expect(received[0] <= 4, "h1 receives only neta's change (its endpoint and claim): \(received)")

        // Joining later: a sandbox on h1 joins netb and sees every name it already has at once.
        #expect(try cluster.dnsd(1, ["run", "--name", late, "--net", "netb"]).status == 0)
        #expect(try answers(late, "\(b2).netb") == "192.168.111.2" || !answers(late, "\(b2).netb").isEmpty, "existing names answer at once")
        #expect(try !answers(late, "\(b3).netb").isEmpty)
        #expect(cluster.hostsNames(late)["\(b3).netb"] != nil, "and are in its hosts file: \(cluster.hostsFile(late))")
        #expect(try Self.metric(cluster, 1, "dnsd_watched_networks") == 2)

        // Leaving: the last sandbox on netb stops; h1 drops it within a few seconds, and netb's
        // churn no longer reaches it.
        #expect(try cluster.dnsd(1, ["stop", late]).status == 0)
        #expect(try cluster.eventually(6) { try Self.metric(cluster, 1, "dnsd_watched_networks") == 1 }, "netb dropped")
        let quiet = try Self.metric(cluster, 1, "dnsd_store_events_total")
        try churn(3)
        let a5 = cluster.name("a5")
        #expect(try cluster.dnsd(2, ["run", "--name", a5, "--net", "neta"]).status == 0)
        #expect(try cluster.eventually(5) { try !answers(a1, "\(a5).neta").isEmpty })
        #expect(try Self.metric(cluster, 1, "dnsd_store_events_total") - quiet <= 4, "netb's changes stopped at h1")

        // A restart: h1 lists neta again (its sandbox, recovered), still not netb.
        cluster.kill(1)
        try cluster.restart(1)
        let a6 = cluster.name("a6")
        #expect(try cluster.dnsd(2, ["run", "--name", a6, "--net", "neta"]).status == 0)
        #expect(try cluster.eventually(5) { try !answers(a1, "\(a6).neta").isEmpty }, "after a restart, neta's changes arrive")
        #expect(try !answers(a1, "\(a2).neta").isEmpty)
        #expect(try Self.metric(cluster, 1, "dnsd_watched_networks") == 1)
        let restarted = try Self.metric(cluster, 1, "dnsd_store_events_total")
        try churn(2)
        let a8 = cluster.name("a8")
        #expect(try cluster.dnsd(2, ["run", "--name", a8, "--net", "neta"]).status == 0)
        #expect(try cluster.eventually(5) { try !answers(a1, "\(a8).neta").isEmpty })
        usleep(300_000)
        #expect(try Self.metric(cluster, 1, "dnsd_store_events_total") - restarted <= 4, "after a restart, still none of netb's changes")

        // From the cache while etcd is away: neta's names answer; when etcd is back, neta is
        // watched again and its changes arrive.
        cluster.kill(1)
        cluster.stopStore()
        try cluster.restart(1)
        #expect(try !answers(a1, "\(a2).neta").isEmpty, "served from the cache")
        try cluster.startStore()
        let a7 = cluster.name("a7")
        #expect(try cluster.eventually(20) { try cluster.dnsd(2, ["run", "--name", a7, "--net", "neta"]).status == 0 })
        #expect(try cluster.eventually(10) { try !answers(a1, "\(a7).neta").isEmpty }, "joined again once the store is back")
        #expect(try Self.metric(cluster, 1, "dnsd_watched_networks") == 1)
    }
}
