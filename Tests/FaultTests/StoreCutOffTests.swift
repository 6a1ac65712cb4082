import ClusterHarness
import Foundation
import TestSupport
import Testing

/// Issue 20: a host cut off from etcd (packets dropped both ways, no reset) while five adopted
/// namespaces vanish. Nothing that needs no store may wait on it, also while writes are waiting
/// on it (a `run` and a CNI `ADD` in flight): `ps`, a CNI `CHECK` and a metrics scrape answer at
/// once, DNS answers every query, the vanished names stop answering on this host (DNS and hosts
/// file) at once while the store still has them (the lease outlives the cut: only the daemon's
/// own withdrawal can remove them), the writes are refused in one line within the store's
/// timeout; once the cut heals, the vanished names leave the other host within 5 s.
@Suite("Faults: a host cut off from the store", .serialized, .timeLimit(.minutes(5)))
struct StoreCutOffTests {
    @Test("h1 cut off from etcd, five adopted namespaces removed: ps and CNI CHECK answer within 100 ms, DNS answers, run refused within 2.5 s; healed, the names leave h2 within 5 s")
    func cutOff() throws {
        // A lease longer than the cut: the names must leave because the daemon withdraws them, not
        // because its lease lapsed. Metrics on, to scrape them during the cut.
        let cluster = try ClusterHarness(hosts: 2, daemonOptions: ["--lease-ttl", "30", "--metrics", "127.0.0.1:9153"])
        defer { cluster.close() }
        let live = cluster.name("live"), witness = cluster.name("w")
        #expect(try cluster.dnsd(1, ["network", "create", "--subnet=10.71.0.0/24", "cnet"]).status == 0)
        #expect(try cluster.dnsd(2, ["run", "--name=\(witness)", "--net=cnet"]).status == 0)
        #expect(try cluster.dnsd(1, ["run", "--name=\(live)", "--net=cnet"]).status == 0)
        let gone = (1...5).map { cluster.name("g\($0)") }
        for name in gone {
            try Shell.check(["ip", "netns", "add", name])
            let attached = try cluster.dnsd(1, ["attach", "--netns", "/run/netns/\(name)", "--name", name, "--net", "cnet"])
            #expect(attached.status == 0, "\(attached.stderr)")
        }
        // A runtime's container (CNI), alive throughout, that CHECK asks about.
        let container = cluster.name("cc")
        try Shell.check(["ip", "netns", "add", container])
        let conf = #"{"cniVersion":"1.0.0","name":"cnet","type":"dnsd","socket":"\#(cluster.socket(1))"}"#
        @Sendable func cni(_ command: String, container: String = container, prevResult: String? = nil) throws -> Shell.Result {
            let plugin = (ClusterHarness.dnsdBinary as NSString).deletingLastPathComponent + "/dnsd-cni"
            let input = prevResult.map { String(conf.dropLast()) + #","prevResult":"# + $0 + "}" } ?? conf
            return try Shell.run(["env", "-i", "CNI_COMMAND=\(command)", "CNI_CONTAINERID=\(container)", "CNI_IFNAME=eth0",
                                  "CNI_NETNS=/run/netns/\(container)", "CNI_PATH=/usr/lib/cni", plugin], input: input)
        }
        let added = try cni("ADD")
        #expect(added.status == 0, "\(added.stdout)")
        #expect(try cni("CHECK", prevResult: added.stdout).status == 0, "CHECK before the cut")
        #expect(try cluster.eventually(5) { try gone.allSatisfy { try cluster.exec(witness, ["dig", "+short", "\($0).cnet", "@127.0.0.11"]).stdout.contains("10.71.0.") } })

        // The cut: everything between h1's host namespace and etcd is dropped, both ways.
        let host = cluster.hosts[0].name
        try Shell.check(["ip", "netns", "exec", host, "nft", "-f", "-"], input: """
            table inet dnsdt_cut {
                chain in { type filter hook input priority 0; ip saddr 198.18.0.254 drop; }
                chain out { type filter hook output priority 0; ip daddr 198.18.0.254 drop; }
            }
            """)
        var healed = false
        func heal() {
            guard !healed else { return }
            healed = true
            _ = try? Shell.run(["ip", "netns", "exec", host, "nft", "delete", "table", "inet", "dnsdt_cut"])
        }
        defer { heal() }
        for name in gone { try Shell.check(["ip", "netns", "del", name]) }
        let cut = Date()

        let probe = try DNSProbe(sandbox: live, thread: cluster.thread)
        defer { probe.close() }
        // Writes that wait on the store, in flight while everything else is sampled.
        let late = cluster.name("cc2")
        try Shell.check(["ip", "netns", "add", late])
        let writes = DispatchGroup()
        let refusals = Refusals()
        func write(_ what: String, _ body: @escaping @Sendable () throws -> Shell.Result) {
            writes.enter()
            Thread.detachNewThread {
                defer { writes.leave() }
                let started = Date()
                guard let result = try? body() else { return }
                refusals.add(what, result, Date().timeIntervalSince(started))
            }
        }
        var samples: [String: [Double]] = ["ps": [], "CHECK": [], "metrics": []]
        var asked = 0, answered = 0, missed: [String] = []
        var withdrawnHere: Double?
        var writesStarted = false
        func timed(_ what: String, _ body: () throws -> Shell.Result) throws -> Shell.Result {
            let started = Date()
            let result = try body()
            samples[what, default: []].append(Date().timeIntervalSince(started))
            return result
        }
        while Date().timeIntervalSince(cut) < 12 {
            if !writesStarted, Date().timeIntervalSince(cut) > 0.5 {
                writesStarted = true
                let runName = cluster.name("during")
                write("run") { try cluster.dnsd(1, ["run", "--name=\(runName)", "--net=cnet"]) }
                write("CNI ADD") { try cni("ADD", container: late) }
            }
            let ps = try timed("ps") { try cluster.dnsd(1, ["ps"]) }
            #expect(ps.status == 0 && ps.stdout.contains(live), "\(ps.stderr)")
            let check = try timed("CHECK") { try cni("CHECK", prevResult: added.stdout) }
            #expect(check.status == 0, "\(check.stdout)")
            let metrics = try timed("metrics") {
                try Shell.run(["nsenter", "--net=/run/netns/\(host)", "curl", "-s", "-m", "2", "http://127.0.0.1:9153/metrics"])
            }
            #expect(metrics.stdout.contains("dnsd_sandboxes"), "\(metrics.stderr)")
            asked += 1
            let answer = probe.lookup("\(witness).cnet", timeoutMilliseconds: 1000)
            if case .addresses(let list) = answer, list.count == 1 { answered += 1 } else if missed.count < 5 { missed.append("\(answer)") }
            if withdrawnHere == nil, gone.allSatisfy({ probe.lookup("\($0).cnet") == .rcode(3) }),
               !gone.contains(where: { cluster.hostsFile(live).contains($0) }) {
                withdrawnHere = Date().timeIntervalSince(cut)
            }
            usleep(100_000)
        }
        #expect(writes.wait(timeout: .now() + 10) == .success, "the writes came back")
        for (what, values) in samples.sorted(by: { $0.key < $1.key }) {
            let sorted = values.sorted()
            figure("store cut off: \(what) max \(ms(sorted.last ?? 0)) (median \(ms(sorted.isEmpty ? 0 : sorted[sorted.count / 2])), \(values.count) calls, writes waiting on the store among them), bar 100 ms")
            #expect(values.count > 20 && (sorted.last ?? 1) < 0.1, "\(what) waited: \(values.map(ms))")
        }
        figure("store cut off: \(answered)/\(asked) DNS queries answered; vanished names gone from h1's DNS and hosts file after \(withdrawnHere.map(ms) ?? "never")")
        #expect(asked > 0 && answered == asked, "\(missed)")
        #expect(withdrawnHere.map { $0 < 3 } == true, "the vanished names still answer on h1")
        for refusal in refusals.all {
            let line = refusal.what == "run" ? refusal.result.stderr : refusal.result.stdout
            figure("store cut off: \(refusal.what) refused after \(ms(refusal.seconds)): \(line.trimmingCharacters(in: .newlines))")
            #expect(refusal.result.status != 0 && line.contains("store unavailable") && refusal.seconds < 2.5, "\(refusal.what): \(line)")
        }
        #expect(refusals.all.count == 2)
        #expect(!cluster.namespaces().contains(cluster.name("during")), "a refused run leaves no namespace")
        #expect(!(try cluster.exec(late, ["ip", "-o", "link"]).stdout.contains("eth0")), "a refused ADD leaves no interface")
        // The store was never told (the lease outlives the cut): h2 still has the names.
        #expect(try gone.allSatisfy { try cluster.exec(witness, ["dig", "+short", "\($0).cnet", "@127.0.0.11"]).stdout.contains("10.71.0.") },
                "h2 still resolves the vanished names before the cut heals")

        heal()
        let back = Date()
        let left = try cluster.eventually(5) {
            try gone.allSatisfy { try cluster.exec(witness, ["dig", "\($0).cnet", "@127.0.0.11"]).stdout.contains("NXDOMAIN") }
        }
        figure("store cut off: healed; the vanished names left h2 after \(ms(Date().timeIntervalSince(back))), bar 5 s")
        #expect(left, "the withdrawals never reached the store")
        #expect(try cluster.etcdList("dnsd/v1/names/").keys.filter { key in gone.contains { key.hasSuffix("/" + $0) } }.isEmpty,
                "the vanished sandboxes' names are released")
        #expect(try cni("DEL").status == 0)
    }

    /// The writes' outcomes, from their threads.
    final class Refusals: @unchecked Sendable {
        private let lock = NSLock()
        private var list: [(what: String, result: Shell.Result, seconds: Double)] = []
        func add(_ what: String, _ result: Shell.Result, _ seconds: Double) { lock.withLock { list.append((what, result, seconds)) } }
        var all: [(what: String, result: Shell.Result, seconds: Double)] { lock.withLock { list } }
    }

    private func ms(_ seconds: Double) -> String { String(format: "%.0f ms", seconds * 1000) }

    private func median(_ values: [Double]) -> Double { values.isEmpty ? 0 : values.sorted()[values.count / 2] }
}
