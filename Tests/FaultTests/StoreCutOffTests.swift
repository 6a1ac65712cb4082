import ClusterHarness
import Foundation
import TestSupport
import Testing

/// Issue 20: a host cut off from etcd (packets dropped both ways, no reset) while five adopted
/// namespaces vanish. Nothing that needs no store may wait on it: `ps` and a CNI `CHECK` answer
/// at once, DNS answers every query, the vanished names stop answering on this host at once,
/// a `run` is refused in one line within the store's timeout; once the cut heals, the vanished
/// names leave the other host within 5 s.
@Suite("Faults: a host cut off from the store", .serialized, .timeLimit(.minutes(5)))
struct StoreCutOffTests {
    @Test("h1 cut off from etcd, five adopted namespaces removed: ps and CNI CHECK answer within 100 ms, DNS answers, run refused within 2.5 s; healed, the names leave h2 within 5 s")
    func cutOff() throws {
        let cluster = try ClusterHarness(hosts: 2)
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
        func cni(_ command: String, prevResult: String? = nil) throws -> Shell.Result {
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
        var psTimes: [Double] = [], checkTimes: [Double] = []
        var asked = 0, answered = 0, missed: [String] = []
        var withdrawnHere: Double?
        var runRefusal: (result: Shell.Result, seconds: Double)?
        func timed(_ body: () throws -> Shell.Result) rethrows -> (Shell.Result, Double) {
            let started = Date()
            let result = try body()
            return (result, Date().timeIntervalSince(started))
        }
        while Date().timeIntervalSince(cut) < 12 {
            let (ps, psTime) = try timed { try cluster.dnsd(1, ["ps"]) }
            #expect(ps.status == 0 && ps.stdout.contains(live), "\(ps.stderr)")
            psTimes.append(psTime)
            let (check, checkTime) = try timed { try cni("CHECK", prevResult: added.stdout) }
            #expect(check.status == 0, "\(check.stdout)")
            checkTimes.append(checkTime)
            asked += 1
            let answer = probe.lookup("\(witness).cnet", timeoutMilliseconds: 1000)
            if case .addresses(let list) = answer, list.count == 1 { answered += 1 } else if missed.count < 5 { missed.append("\(answer)") }
            if withdrawnHere == nil, gone.allSatisfy({ probe.lookup("\($0).cnet") == .rcode(3) }) {
                withdrawnHere = Date().timeIntervalSince(cut)
            }
            if runRefusal == nil, Date().timeIntervalSince(cut) > 1 {
                let (run, seconds) = try timed { try cluster.dnsd(1, ["run", "--name=\(cluster.name("during"))", "--net=cnet"]) }
                runRefusal = (run, seconds)
            }
            usleep(100_000)
        }
        let psMax = psTimes.max() ?? 0, checkMax = checkTimes.max() ?? 0
        figure("store cut off: dnsd ps max \(ms(psMax)) (median \(ms(median(psTimes))), \(psTimes.count) calls), CNI CHECK max \(ms(checkMax)) (median \(ms(median(checkTimes)))), bar 100 ms")
        #expect(psMax < 0.1, "ps waited: \(psTimes.map(ms))")
        #expect(checkMax < 0.1, "CHECK waited: \(checkTimes.map(ms))")
        figure("store cut off: \(answered)/\(asked) DNS queries answered; vanished names NXDOMAIN on h1 after \(withdrawnHere.map(ms) ?? "never")")
        #expect(asked > 0 && answered == asked, "\(missed)")
        #expect(withdrawnHere.map { $0 < 3 } == true, "the vanished names still answer on h1")
        let refusal = try #require(runRefusal)
        figure("store cut off: dnsd run refused after \(ms(refusal.seconds)): \(refusal.result.stderr.trimmingCharacters(in: .newlines))")
        #expect(refusal.result.status != 0 && refusal.result.stderr.split(separator: "\n").count == 1 && refusal.result.stderr.contains("store"),
                "\(refusal.result.stderr)")
        #expect(refusal.seconds < 2.5)
        #expect(!cluster.namespaces().contains(cluster.name("during")), "a refused run leaves no namespace")

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

    private func ms(_ seconds: Double) -> String { String(format: "%.0f ms", seconds * 1000) }

    private func median(_ values: [Double]) -> Double { values.isEmpty ? 0 : values.sorted()[values.count / 2] }
}
