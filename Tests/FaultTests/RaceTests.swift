import ClusterHarness
import Foundation
import Synchronization
import TestSupport
import Testing

@Suite("Faults: races", .serialized, .timeLimit(.minutes(5)))
struct RaceTests {
    static let names = 300

    @Test("3 hosts race to start and stop 300 names on one network: no duplicate name or address, and after every stop no stale record in the store, any hosts file or DNS")
    func startStopRace() throws {
        let cluster = try ClusterHarness(hosts: 3)
        defer { cluster.close() }
        let network = "rnet"
        #expect(try cluster.dnsd(1, ["network", "create", "--subnet=10.64.0.0/23", network]).status == 0)
        let witnesses = try (1...3).map { host -> String in
            let name = cluster.name("w\(host)")
            _ = try Fleet.run(cluster, host: host, name: name, network: network)
            return name
        }
        let raced = (0..<Self.names).map { cluster.name("n\($0)") }

        // Each host tries 200 of the names, in its own order, so every name is contested by two
        // hosts; every third sandbox a host gets, it stops its oldest one. A name another host
        // holds is refused: that is the race.
        struct Outcome { var live: [String: (host: Int, address: String)] = [:]; var started = 0, refused = 0, stopped = 0; var errors: [String] = [] }
        let outcome = Mutex(Outcome())
        let began = Date()
        DispatchQueue.concurrentPerform(iterations: 3) { index in
            let host = index + 1
            let window = (0..<200).map { raced[(index * 100 + $0) % raced.count] }
            let order = index == 1 ? window.reversed() : window
            var mine: [String] = [], gotten = 0
            for name in order {
                let result: Shell.Result
                do { result = try cluster.dnsd(host, ["run", "--name=\(name)", "--net=\(network)"]) } catch {
                    outcome.withLock { $0.errors.append("spawning run \(name) on h\(host): \(error)") }
                    continue
                }
                if result.status == 0, let address = Fleet.address(in: result.stdout, network: network) {
                    mine.append(name)
                    gotten += 1
                    outcome.withLock {
                        if let holder = $0.live[name] { $0.errors.append("\(name) started on h\(host) while h\(holder.host) has it") }
                        if let other = $0.live.first(where: { $0.value.address == address }) {
                            $0.errors.append("\(name) got \(address), which \(other.key) has")
                        }
                        $0.live[name] = (host, address)
                        $0.started += 1
                    }
                    if gotten.isMultiple(of: 3) {
                        let oldest = mine.removeFirst()
                        // Forget it first: once the stop returns another host may take the name.
                        outcome.withLock { $0.live[oldest] = nil }
                        let stopped = try? cluster.dnsd(host, ["stop", oldest])
                        outcome.withLock {
                            if stopped?.status == 0 { $0.stopped += 1 } else { $0.errors.append("stop \(oldest): \(stopped?.stderr ?? "")") }
                        }
                    }
                } else if result.stderr.contains("already used in the cluster") {
                    outcome.withLock { $0.refused += 1 }
                } else {
                    outcome.withLock { $0.errors.append("run \(name) on h\(host): \(result.stderr)") }
                }
            }
        }
        let raceSeconds = Date().timeIntervalSince(began)
        let result = outcome.withLock { $0 }
        figure("race: \(result.started) starts, \(result.stopped) stops, \(result.refused) refusals (name held elsewhere) from 3 hosts in \(String(format: "%.1f", raceSeconds)) s; \(result.live.count) live")
        #expect(result.errors.isEmpty, "\(result.errors.prefix(5))")
        // The race happened: names were contested (refused because another host held them) and
        // every attempt was accounted for.
        #expect(result.refused >= 20, "only \(result.refused) refusals: the hosts did not contend")
        #expect(result.started + result.refused == 600, "\(result.started) starts + \(result.refused) refusals of 600 attempts")
        let addresses = result.live.values.map(\.address)
        #expect(Set(addresses).count == addresses.count, "duplicate addresses among live sandboxes")

        // What every host's daemon reports is exactly the live set, each name on one host.
        var reported: [String: Int] = [:]
        for host in 1...3 {
            for line in try cluster.dnsd(host, ["ps"]).stdout.split(separator: "\n").dropFirst() {
                let name = String(line.split(separator: " ")[0])
                guard raced.contains(name) else { continue }
                #expect(reported[name] == nil, "\(name) on h\(reported[name] ?? 0) and h\(host)")
                reported[name] = host
            }
        }
        #expect(reported == result.live.mapValues(\.host))
        // The store holds one name claim and one endpoint per live sandbox, nothing else.
        let liveNames = Set(result.live.keys).union(witnesses)
        let claims = try cluster.etcdList("dnsd/v1/names/").keys.map { String($0.dropFirst("dnsd/v1/names/".count)) }
        #expect(Set(claims) == liveNames)
        let endpoints = try cluster.etcdList("dnsd/v1/endpoints/\(network)/")
        #expect(endpoints.count == liveNames.count)
        let ipam = try cluster.etcdList("dnsd/v1/ipam/\(network)/").keys.map { String($0.split(separator: "/").last!) }
        #expect(Set(ipam).isSuperset(of: addresses) && ipam.count == liveNames.count, "\(ipam.count) addresses held for \(liveNames.count) sandboxes")
        // Every host's DNS and hosts files agree.
        let converged = try cluster.eventually(10) { try witnessesAgree(cluster, witnesses, network: network, expected: Self.expected(raced, live: result.live)) }
        #expect(converged)

        // Everyone stops everything, concurrently.
        DispatchQueue.concurrentPerform(iterations: 3) { index in
            for (name, holder) in result.live where holder.host == index + 1 {
                let stopped = try? cluster.dnsd(holder.host, ["stop", name])
                if stopped?.status != 0 { outcome.withLock { $0.errors.append("final stop \(name): \(stopped?.stderr ?? "")") } }
            }
        }
        #expect(outcome.withLock { $0.errors }.isEmpty, "\(outcome.withLock { $0.errors }.prefix(5))")
        let stoppedAt = Date()
        let clean = try cluster.eventually(10) { try witnessesAgree(cluster, witnesses, network: network, expected: Self.expected(raced, live: [:])) }
        figure("race: after all stops, no name left in DNS or hosts files on 3 hosts \(String(format: "%.0f", Date().timeIntervalSince(stoppedAt) * 1000)) ms after the last stop")
        #expect(clean)
        #expect(Set(try cluster.etcdList("dnsd/v1/names/").keys.map { String($0.dropFirst("dnsd/v1/names/".count)) }) == Set(witnesses))
        #expect(try cluster.etcdList("dnsd/v1/endpoints/\(network)/").count == 3)
        #expect(try cluster.etcdList("dnsd/v1/ipam/\(network)/").count == 3)
        #expect(cluster.namespaces().filter { name in raced.contains(name) }.isEmpty, "namespaces left")
    }

    /// Every raced name: its address if live, nil if not.
    static func expected(_ all: [String], live: [String: (host: Int, address: String)]) -> [String: String?] {
        Dictionary(uniqueKeysWithValues: all.map { ($0, live[$0]?.address) })
    }
}
