import ClusterHarness
import Foundation
import TestSupport
import Testing

@Suite("Faults: hosts and daemons die", .serialized, .timeLimit(.minutes(5)))
struct HostFailureTests {
    @Test("a host dies (kill -9, machine removed): its 20 names vanish from every other host within TTL + 2 s; a killed daemon restarted after its lease lapsed gets its sandboxes' names and addresses back")
    func hostDeath() throws {
        let cluster = try ClusterHarness(hosts: 3)
        defer { cluster.close() }
        let fleet = try Fleet(cluster, network: "dnet", subnet: "10.62.0.0/24", count: 60)
        #expect(try fleet.converged(within: 10, witnesses: fleet.witnesses))

        // h3 dies with its sandboxes.
        let dead = fleet.on(3)
        cluster.removeHost(3, sandboxes: dead.map(\.name))
        let died = Date()
        let survivors = [fleet.on(1)[0].name, fleet.on(2)[0].name]
        let gone = try cluster.eventually(8) { try fleet.vanished(dead, from: survivors) }
        let vanishedAfter = Date().timeIntervalSince(died)
        figure("host death: \(dead.count) names of a dead host gone from DNS and hosts files on 2 hosts \(String(format: "%.2f", vanishedAfter)) s after kill -9 (lease TTL 3 s)")
        #expect(gone && vanishedAfter < 5)

        // h2's daemon dies and stays down past its lease: its names vanish too...
        cluster.kill(2)
        #expect(try cluster.eventually(8) { try fleet.vanished(fleet.on(2), from: [fleet.on(1)[0].name]) })
        // ...and come back with the same addresses when it restarts.
        let restarted = Date()
        try cluster.restart(2)
        let ps = try cluster.dnsd(2, ["ps"]).stdout
        for member in fleet.on(2) {
            let line = ps.split(separator: "\n").first { $0.hasPrefix(member.name + " ") }.map(String.init) ?? ""
            #expect(Fleet.address(in: line, network: "dnet") == member.address, "\(member.name): \(line)")
        }
        let back = try cluster.eventually(5) {
            try Fleet(reading: fleet, only: fleet.on(1) + fleet.on(2)).converged(within: 0, witnesses: [fleet.on(1)[0].name, fleet.on(2)[0].name])
        }
        figure("host death: a daemon restarted after its lease lapsed: \(fleet.on(2).count) names back on every host \(String(format: "%.2f", Date().timeIntervalSince(restarted))) s after it started")
        #expect(back)
    }

    @Test("kill -9 and restart a daemon with 200 sandboxes: no leaked namespace, link, address or mount; DNS back within 1 s; no address changes")
    func restartAtScale() throws {
        let cluster = try ClusterHarness(hosts: 2, logLevel: "info")
        defer { cluster.close() }
        let fleet = try Fleet(cluster, network: "knet", subnet: "10.63.0.0/23", count: 200, onHosts: [1], clients: 2)
        _ = try Fleet.run(cluster, host: 2, name: cluster.name("witness"), network: "knet")
        #expect(try fleet.converged(within: 15, witnesses: [fleet.members[0].name, cluster.name("witness")]))
        let before = try KernelSnapshot(cluster)
        let psBefore = try cluster.dnsd(1, ["ps"]).stdout

        cluster.kill(1)
        // The sandbox recovery reaches last asks for the name of another.
        let probe = try DNSProbe(sandbox: fleet.members[fleet.members.count - 1].name, thread: cluster.thread)
        defer { probe.close() }
        let target = fleet.members[fleet.members.count - 2]
        #expect(probe.lookup("\(target.name).knet", timeoutMilliseconds: 100) == .timeout, "nothing answers while the daemon is down")
        let started = Date()
        try cluster.startDaemon(1)
        var answering: Double?
        while answering == nil, Date().timeIntervalSince(started) < 10 {
            if probe.lookup("\(target.name).knet", timeoutMilliseconds: 20) == .addresses([target.address]) {
                answering = Date().timeIntervalSince(started)
            }
        }
        let answeredAfter = try #require(answering, "DNS never came back: \(cluster.log(1).suffix(2000))")
        figure("daemon restart with 200 sandboxes: DNS answering \(String(format: "%.0f", answeredAfter * 1000)) ms after the daemon was started")
        #expect(answeredAfter < 1, "\(cluster.log(1).split(separator: "\n").filter { !$0.contains("recovered sandbox") }.suffix(12).joined(separator: "\n"))")

        #expect(try cluster.eventually(5) { (try? cluster.dnsd(1, ["ps"]))?.stdout == psBefore }, "same sandboxes, same addresses")
        #expect(try fleet.converged(within: 8, witnesses: [fleet.members[0].name, cluster.name("witness")]))
        let after = try KernelSnapshot(cluster)
        #expect(before.differences(from: after).isEmpty, "\(before.differences(from: after).prefix(10))")
        figure("daemon restart with 200 sandboxes: \(after.namespaces.count) namespaces, \(after.linkCount) links, \(after.addressCount) addresses, \(after.mounts.count) netns mounts before and after")
    }
}

extension Fleet {
    /// The same network with a subset of its members (to check only those).
    init(reading fleet: Fleet, only members: [Member]) {
        self = fleet
        self.members = members
    }
}

/// What the kernel holds for a cluster: its namespaces, the links and addresses in each, and
/// the netns mounts; two snapshots must be equal when nothing leaked.
struct KernelSnapshot {
    var namespaces: [String]
    var links: [String: [String]]
    var addresses: [String: [String]]
    var mounts: [String]

    init(_ cluster: ClusterHarness) throws {
        namespaces = cluster.namespaces()
        links = [:]
        addresses = [:]
        for namespace in namespaces {
            links[namespace] = try Shell.check(["ip", "-n", namespace, "-o", "link", "show"]).split(separator: "\n").map { line in
                String(line.split(separator: ":")[1].split(separator: "@")[0]).trimmingCharacters(in: .whitespaces)
            }.sorted()
            addresses[namespace] = try Shell.check(["ip", "-n", namespace, "-o", "addr", "show"]).split(separator: "\n").map { line in
                line.split(separator: " ", omittingEmptySubsequences: true).prefix(4).dropFirst().joined(separator: " ")
            }.sorted()
        }
        // (Through cat: Foundation reads only the first page of a /proc file.)
        mounts = try Shell.check(["cat", "/proc/self/mountinfo"]).split(separator: "\n")
            .compactMap { line in line.split(separator: " ").dropFirst(4).first.map(String.init) }
            .filter { $0.contains(cluster.prefix) }.sorted()
    }

    var linkCount: Int { links.values.map(\.count).reduce(0, +) }
    var addressCount: Int { addresses.values.map(\.count).reduce(0, +) }

    func differences(from other: KernelSnapshot) -> [String] {
        var found: [String] = []
        if namespaces != other.namespaces { found.append("namespaces: \(Set(namespaces).symmetricDifference(other.namespaces))") }
        for (namespace, list) in links where other.links[namespace] != list {
            found.append("links in \(namespace): \(list) -> \(other.links[namespace] ?? [])")
        }
        for (namespace, list) in addresses where other.addresses[namespace] != list {
            found.append("addresses in \(namespace): \(list) -> \(other.addresses[namespace] ?? [])")
        }
        if mounts != other.mounts { found.append("mounts: \(Set(mounts).symmetricDifference(other.mounts))") }
        return found
    }
}
