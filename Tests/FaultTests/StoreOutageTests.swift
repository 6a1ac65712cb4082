import ClusterHarness
import Foundation
import TestSupport
import Testing

@Suite("Faults: the store goes away", .serialized, .timeLimit(.minutes(5)))
struct StoreOutageTests {
    /// How long etcd stays down. DNSD_OUTAGE_SECONDS shortens it while working on the test.
    static let outage = Double(ProcessInfo.processInfo.environment["DNSD_OUTAGE_SECONDS"] ?? "") ?? 30

    @Test("etcd down 30 s under 3 hosts and 100 sandboxes: every query answered, hosts files unchanged, run fails fast; after, watches resume and catch up within 2 s")
    func etcdOutage() throws {
        let cluster = try ClusterHarness(hosts: 3)
        defer { cluster.close() }
        let fleet = try Fleet(cluster, network: "onet", subnet: "10.61.0.0/24", count: 100)
        #expect(try fleet.converged(within: 10, witnesses: fleet.witnesses))
        let hostsBefore = Dictionary(uniqueKeysWithValues: fleet.members.map { ($0.name, cluster.hostsFile($0.name)) })

        // Every sandbox asks for another member's name, round-robin, for the whole outage.
        let probes = try fleet.members.map { try DNSProbe(sandbox: $0.name, thread: cluster.thread) }
        defer { probes.forEach { $0.close() } }
        var asked = 0, correct = 0, wrong: [String] = []
        func askRound(_ round: Int) {
            for (i, probe) in probes.enumerated() {
                let target = fleet.members[(i + round * 7 + 1) % fleet.members.count]
                let name = round.isMultiple(of: 2) ? target.name : "\(target.name).onet"
                asked += 1
                let answer = probe.lookup(name, timeoutMilliseconds: 1000)
                if answer == .addresses([target.address]) { correct += 1 } else if wrong.count < 5 { wrong.append("\(probe.sandbox) -> \(name): \(answer)") }
            }
        }

        cluster.stopStore()
        let down = Date()
        var runFailure: Shell.Result?
        var runSeconds = 0.0
        var round = 0
        while Date().timeIntervalSince(down) < Self.outage {
            askRound(round)
            round += 1
            if runFailure == nil, Date().timeIntervalSince(down) > 2 {
                // A change while the store is down is refused at once, in one line, and leaves nothing.
                let started = Date()
                runFailure = try cluster.dnsd(2, ["run", "--name=\(cluster.name("during"))", "--net=onet"])
                runSeconds = Date().timeIntervalSince(started)
            }
            usleep(50_000)
        }
        figure("store outage: \(correct)/\(asked) queries answered correctly during \(Int(Self.outage)) s without etcd (\(round) rounds over \(probes.count) sandboxes)")
        #expect(asked > 0 && correct == asked, "\(wrong)")
        let refused = try #require(runFailure)
        figure("store outage: dnsd run refused after \(String(format: "%.0f", runSeconds * 1000)) ms: \(refused.stderr.trimmingCharacters(in: .newlines))")
        #expect(refused.status != 0 && refused.stderr.split(separator: "\n").count == 1 && refused.stderr.contains("store"), "\(refused.stderr)")
        #expect(runSeconds < 5)
        #expect(!cluster.namespaces().contains(cluster.name("during")), "a refused run leaves no namespace")
        for member in fleet.members {
            #expect(cluster.hostsFile(member.name) == hostsBefore[member.name], "\(member.name)'s hosts file changed during the outage")
        }

        // etcd comes back with its data: leases survive, nothing is republished or lost.
        try cluster.startStore()
        let back = Date()
        // A change on h2 as soon as the store takes writes; h1 and h3 see it within 2 s.
        let late = cluster.name("late")
        var lateAddress: String?
        while lateAddress == nil, Date().timeIntervalSince(back) < 10 {
            lateAddress = try? Fleet.run(cluster, host: 2, name: late, network: "onet")
            if lateAddress == nil { usleep(20_000) }
        }
        let address = try #require(lateAddress)
        let written = Date()
        let witnesses = [fleet.on(1)[0].name, fleet.on(3)[0].name]
        let seen = try cluster.eventually(5) {
            try witnesses.allSatisfy { witness in
                try cluster.exec(witness, ["dig", "+short", "\(late).onet", "@127.0.0.11"]).stdout.contains(address)
                    && cluster.hostsFile(witness).contains("\(address)\t\(late) \(late).onet")
            }
        }
        let catchUp = Date().timeIntervalSince(written)
        figure("store outage: first write \(String(format: "%.0f", written.timeIntervalSince(back) * 1000)) ms after etcd returned; other hosts had it \(String(format: "%.0f", catchUp * 1000)) ms later")
        #expect(seen && catchUp < 2)

        // One host cut off from the store (connections refused) while another host changes things:
        // its watch resumes from its revision and it catches up within 2 s.
        let gone = fleet.on(2)[1]
        // (An open socket would keep a stopped sandbox's namespace alive.)
        probes.forEach { $0.close() }
        let h3 = cluster.hosts[2].name
        try Shell.check(["ip", "netns", "exec", h3, "nft", "-f", "-"], input: """
            table inet dnsdt_cut {
                chain out {
                    type filter hook output priority 0;
                    ip daddr 198.18.0.254 tcp dport \(cluster.etcdPort) reject with tcp reset
                }
            }
            """)
        defer { _ = try? Shell.run(["ip", "netns", "exec", h3, "nft", "delete", "table", "inet", "dnsdt_cut"]) }
        usleep(300_000)
        let cutOff = cluster.name("cutoff")
        let cutOffAddress = try Fleet.run(cluster, host: 1, name: cutOff, network: "onet")
        #expect(try cluster.dnsd(2, ["stop", gone.name]).status == 0)
        usleep(500_000)
        try Shell.check(["ip", "netns", "exec", h3, "nft", "delete", "table", "inet", "dnsdt_cut"])
        let healed = Date()
        let witness = fleet.on(3)[0].name
        let probe = try DNSProbe(sandbox: witness, thread: cluster.thread)
        defer { probe.close() }
        let caughtUp = cluster.eventually(5) {
            let names = cluster.hostsNames(witness)
            return probe.lookup("\(cutOff).onet") == .addresses([cutOffAddress]) && probe.lookup("\(gone.name).onet") == .rcode(3)
                && names[cutOff] == cutOffAddress && names[gone.name] == nil
        }
        let healedIn = Date().timeIntervalSince(healed)
        figure("store outage: a host cut off from etcd for 0.8 s caught up \(String(format: "%.0f", healedIn * 1000)) ms after it was reachable again")
        #expect(caughtUp && healedIn < 2)

        // Nothing was lost: every other member still resolves on every host.
        let remaining = fleet.members.filter { $0 != gone }
        for member in remaining {
            let probe = try DNSProbe(sandbox: member.name, thread: cluster.thread)
            defer { probe.close() }
            for target in remaining.prefix(20) {
                #expect(probe.lookup("\(target.name).onet") == .addresses([target.address]), "\(member.name) -> \(target.name)")
            }
        }
    }

    @Test("a daemon restarted while etcd is down answers DNS from what it knew; commands are refused in one line; when etcd is back it rejoins, republishes and watches")
    func restartWithoutStore() throws {
        let cluster = try ClusterHarness(hosts: 2)
        defer { cluster.close() }
        let fleet = try Fleet(cluster, network: "cnet", subnet: "10.65.0.0/24", count: 10)
        #expect(try fleet.converged(within: 10, witnesses: fleet.witnesses))
        sleep(2)  // the cache is written at most once a second
        let witness = fleet.on(1)[0]
        let hostsBefore = cluster.hostsFile(witness.name)

        cluster.stopStore()
        cluster.kill(1)
        let started = Date()
        try cluster.startDaemon(1)
        let probe = try DNSProbe(sandbox: witness.name, thread: cluster.thread)
        defer { probe.close() }
        var answering: Double?
        while answering == nil, Date().timeIntervalSince(started) < 10 {
            if fleet.members.allSatisfy({ $0.name == witness.name || probe.lookup("\($0.name).cnet", timeoutMilliseconds: 50) == .addresses([$0.address]) }) {
                answering = Date().timeIntervalSince(started)
            }
        }
        let after = try #require(answering, "h1 did not answer without the store: \(cluster.log(1).suffix(1500))")
        figure("start without the store: every name of both hosts answered from the cache \(String(format: "%.0f", after * 1000)) ms after the daemon started")
        #expect(after < 2)
        #expect(cluster.hostsFile(witness.name) == hostsBefore, "hosts file unchanged")
        let refused = try cluster.dnsd(1, ["run", "--name=\(cluster.name("x"))", "--net=cnet"])
        #expect(refused.status != 0 && refused.stderr.split(separator: "\n").count == 1 && refused.stderr.contains("store unavailable"), "\(refused.stderr)")
        #expect(try cluster.dnsd(1, ["ps"]).stdout.contains(witness.name), "ps works without the store")

        // etcd returns: h1 rejoins (lease, watch), its names are published, changes flow both ways.
        try cluster.startStore()
        let back = Date()
        var late: String?
        while late == nil, Date().timeIntervalSince(back) < 10 {
            late = try? Fleet.run(cluster, host: 1, name: cluster.name("late1"), network: "cnet")
            if late == nil { usleep(100_000) }
        }
        let rejoined = Date().timeIntervalSince(back)
        let address = try #require(late, "h1 never took commands again: \(cluster.log(1).suffix(1500))")
        figure("start without the store: h1 took commands again \(String(format: "%.2f", rejoined)) s after etcd returned")
        let h2Witness = fleet.on(2)[0].name
        #expect(try cluster.eventually(5) {
            try cluster.exec(h2Witness, ["dig", "+short", "\(cluster.name("late1")).cnet", "@127.0.0.11"]).stdout.contains(address)
        })
        let addressB = try Fleet.run(cluster, host: 2, name: cluster.name("late2"), network: "cnet")
        #expect(cluster.eventually(3) { probe.lookup("\(cluster.name("late2")).cnet") == .addresses([addressB]) })
        // h1's own sandboxes stay resolvable on h2 past the old lease's TTL (republished under the new one).
        sleep(4)
        for member in fleet.on(1) {
            #expect(try cluster.exec(h2Witness, ["dig", "+short", "\(member.name).cnet", "@127.0.0.11"]).stdout.contains(member.address), "\(member.name)")
        }
    }
}
