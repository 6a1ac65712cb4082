import Addressing
import ClusterState
import Foundation
import HostsWriter
import Logging
@testable import Node
import Resolver
import Store
import Synchronization
import TestSupport
import Testing

/// The reconciler on its own (issue 12): the local store as its input, the real record table
/// and hosts writer, and recording stand-ins for the kernel's peers and the network teardown:
/// no daemon, no binary, no namespace.
@Suite("Reconciler: store -> watch -> projections", .serialized, .timeLimit(.minutes(5)))
struct ReconcilerTests {
    /// Records what the kernel would have been asked to do.
    final class Peers: PeerProjection, @unchecked Sendable {
        private let lock = NSLock()
        private(set) var calls: [String] = []
        var log: [String] { lock.withLock { calls } }
        func addPeer(_ addresses: [IPAddress], vtep: IPv4Address, on network: HostLabel) throws {
            lock.withLock { calls.append("add \(addresses.map(\.description).joined(separator: " ")) via \(vtep) on \(network)") }
        }
        func removePeer(_ addresses: [IPAddress], vtep: IPv4Address, on network: HostLabel) throws {
            lock.withLock { calls.append("remove \(addresses.map(\.description).joined(separator: " ")) via \(vtep) on \(network)") }
        }
    }

    /// Lines seen by an events subscriber.
    final class Seen: @unchecked Sendable {
        private let lock = NSLock()
        private var lines: [String] = []
        func append(_ line: String) { lock.withLock { lines.append(line) } }
        var all: [String] { lock.withLock { lines } }
    }

    final class Teardown: NetworkTeardown, @unchecked Sendable {
        let left = Mutex<[String]>([])
        func networkLeft(_ record: NetworkRecord) { left.withLock { $0.append(record.name) } }
    }

    /// The networks h1 is on, as a test sets them.
    final class Used: @unchecked Sendable {
        private let lock = NSLock()
        private var set: Set<String> = ["vnet"]
        var networks: Set<String> {
            get { lock.withLock { set } }
            set { lock.withLock { set = newValue } }
        }
    }

    /// One reconciler for host h1 over a fresh local store, with a sandbox `s1` on `vnet`.
    final class Fixture: @unchecked Sendable {
        let directory = TestRun.temporaryPath("reconciler")
        let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
        let store: LocalStore
        let registry: ClusterRegistry
        let records = RecordStore()
        let hosts: HostsWriter
        let peers = Peers()
        let teardown = Teardown()
        let events = EventHub()
        let seen = Seen()
        let reconciler: Reconciler
        let files: HostsWriter.Files
        /// The networks something on h1 is on (the reconciler's `inUse`): s1's.
        let used = Used()

        init() throws {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            store = try LocalStore(directory: directory + "/store", logger: logger)
            registry = ClusterRegistry(store: store, logger: logger)
            hosts = HostsWriter(mode: .dns, hostResolvConf: ResolvConf(nameservers: ["198.18.0.53"], search: []), logger: logger)
            files = HostsWriter.Files(hosts: directory + "/s1/hosts", resolvConf: directory + "/s1/resolv.conf")
            try FileManager.default.createDirectory(atPath: directory + "/s1", withIntermediateDirectories: true)
            try hosts.addSandbox("s1", files: files, hostname: try HostLabel("s1"))
            _ = hosts.attach("s1", to: try HostLabel("vnet"), ownAddresses: [IPv4Address(192, 168, 0, 2)])
            reconciler = Reconciler(hostID: "h1", registry: registry, records: records, hosts: hosts, peers: peers, teardown: teardown,
                                    cache: nil, events: events, logger: logger, inUse: { [used] in used.networks })
            _ = events.subscribe { [seen] line in
                let object = (try? JSONSerialization.jsonObject(with: line) as? [String: Any]) ?? [:]
                let what = "\(object["kind"] ?? "?") \(object["action"] ?? "?") \(object["name"] as? String ?? object["network"] as? String ?? "?")"
                seen.append(what)
                return true
            }
        }

        func endpoint(_ name: String, _ last: UInt8, host: String, network: String = "vnet") -> EndpointState {
            EndpointState(id: "\(host)-\(name)", network: network, name: name, aliases: [], ipv4: "192.168.0.\(last)",
                          mac: "02:42:c0:a8:00:\(String(last, radix: 16))", host: host, vtep: host == "h1" ? "198.18.0.1" : "198.18.0.2")
        }

        func hostsText() -> String { (try? String(contentsOfFile: files.hosts, encoding: .utf8)) ?? "" }
        func zones() -> [String] { records.table.zones.map(\.name.text).sorted() }

        func close() {
            reconciler.stop()
            try? FileManager.default.removeItem(atPath: directory)
        }
    }

    private func eventually(timeout: Double = 2, _ condition: () -> Bool) -> Bool {
        for _ in 0..<Int(timeout * 100) {
            if condition() { return true }
            usleep(10_000)
        }
        return condition()
    }

    @Test("a listing projects networks and endpoints: zones, hosts lines, one peer per remote endpoint, events")
    func listing() throws {
        let fx = try Fixture()
        defer { fx.close() }
        _ = try fx.registry.createNetwork(name: try HostLabel("vnet"), driver: .overlay, subnet: try IPv4Subnet(parsing: "192.168.0.0/24"),
                                          gateway: nil, host: nil)
        _ = try fx.registry.createNetwork(name: try HostLabel("empty"), driver: .overlay, subnet: try IPv4Subnet(parsing: "10.40.0.0/24"),
                                          gateway: nil, host: nil)
        try fx.registry.publish(fx.endpoint("a", 2, host: "h1"), lease: nil)
        try fx.registry.publish(fx.endpoint("b", 3, host: "h2"), lease: nil)
        try fx.reconciler.start()
        #expect(fx.zones() == ["empty", "vnet"], "an empty network is in scope too")
        #expect(fx.hostsText().contains("192.168.0.3\tb b.vnet") || fx.hostsText().contains("192.168.0.3 b b.vnet"), "\(fx.hostsText())")
        #expect(fx.peers.log == ["add 192.168.0.3 via 198.18.0.2 on vnet"], "only the remote endpoint is a peer: \(fx.peers.log)")
        #expect(Set(fx.seen.all) == ["network add vnet", "network add empty", "endpoint add a", "endpoint add b"],
                "\(fx.seen.all)")
    }

    @Test("the watch: an endpoint that arrives or leaves reaches every projection")
    func watch() throws {
        let fx = try Fixture()
        defer { fx.close() }
        _ = try fx.registry.createNetwork(name: try HostLabel("vnet"), driver: .overlay, subnet: try IPv4Subnet(parsing: "192.168.0.0/24"),
                                          gateway: nil, host: nil)
        try fx.reconciler.start()
        try fx.registry.publish(fx.endpoint("c", 4, host: "h2"), lease: nil)
        #expect(eventually { fx.peers.log == ["add 192.168.0.4 via 198.18.0.2 on vnet"] && fx.hostsText().contains("c.vnet") })
        try fx.registry.withdraw(endpoint: "h2-c", network: try HostLabel("vnet"))
        #expect(eventually { fx.peers.log.last == "remove 192.168.0.4 via 198.18.0.2 on vnet" && !fx.hostsText().contains("c.vnet") },
                "\(fx.peers.log) \(fx.hostsText())")
        #expect(fx.seen.all.suffix(2) == ["endpoint add c", "endpoint remove c"])
    }

    @Test("a network removed from the store: its zone goes and the teardown is told")
    func networkRemoved() throws {
        let fx = try Fixture()
        defer { fx.close() }
        _ = try fx.registry.createNetwork(name: try HostLabel("gone"), driver: .overlay, subnet: try IPv4Subnet(parsing: "10.41.0.0/24"),
                                          gateway: nil, host: nil)
        try fx.reconciler.start()
        #expect(fx.zones() == ["gone"])
        try fx.registry.deleteNetwork(try HostLabel("gone"))
        #expect(eventually { fx.zones().isEmpty && fx.teardown.left.withLock { $0 } == ["gone"] })
    }

    @Test("an endpoint whose network is not known yet goes to the peer table at once (the driver programs it when the network is made)")
    func networkArrivesLater() throws {
        let fx = try Fixture()
        defer { fx.close() }
        fx.used.networks = ["vnet", "later"]
        try fx.registry.publish(fx.endpoint("d", 5, host: "h2", network: "later"), lease: nil)
        try fx.reconciler.start()
        #expect(fx.peers.log == ["add 192.168.0.5 via 198.18.0.2 on later"], "\(fx.peers.log)")
        _ = try fx.registry.createNetwork(name: try HostLabel("later"), driver: .overlay, subnet: try IPv4Subnet(parsing: "192.168.0.0/24"),
                                          gateway: nil, host: nil)
        #expect(!eventually(timeout: 0.3) { fx.peers.log.count > 1 }, "the network's arrival adds nothing twice: \(fx.peers.log)")
    }

    // MARK: per-network interest (issue 22)

    /// Overlays "vnet" (192.168.0.0/24) and "other" (192.168.1.0/24) in the store.
    private func twoNetworks(_ fx: Fixture) throws {
        for (name, subnet) in [("vnet", "192.168.0.0/24"), ("other", "192.168.1.0/24")] {
            _ = try fx.registry.createNetwork(name: try HostLabel(name), driver: .overlay, subnet: try IPv4Subnet(parsing: subnet), gateway: nil, host: nil)
        }
    }

    /// The records the table has on `network` (by name), from the DNS projection.
    private func names(_ fx: Fixture, on network: String) -> Set<String> {
        Set(fx.reconciler.known().endpoints.filter { $0.network == network }.map(\.name))
    }

    @Test("a host watches the endpoints only of the networks it is on: another network's names, peers and events never reach it")
    func onlyItsNetworks() throws {
        let fx = try Fixture()
        defer { fx.close() }
        try twoNetworks(fx)
        try fx.registry.publish(fx.endpoint("b", 3, host: "h2"), lease: nil)
        try fx.registry.publish(fx.endpoint("x", 4, host: "h2", network: "other"), lease: nil)
        try fx.reconciler.start()
        #expect(fx.zones() == ["other", "vnet"], "every network is in DNS scope")
        #expect(names(fx, on: "vnet") == ["b"] && names(fx, on: "other").isEmpty)
        #expect(fx.peers.log == ["add 192.168.0.3 via 198.18.0.2 on vnet"], "\(fx.peers.log)")
        #expect(fx.reconciler.watchedNetworks() == ["vnet"])
        let before = fx.reconciler.eventsReceived.load(ordering: .relaxed)
        // Churn on the other network, then one change on vnet: once vnet's arrived, the other's
        // would have (one watch, in store order).
        for round in 0..<5 {
            try fx.registry.publish(fx.endpoint("y\(round)", UInt8(10 + round), host: "h2", network: "other"), lease: nil)
        }
        try fx.registry.publish(fx.endpoint("c", 5, host: "h2"), lease: nil)
        #expect(eventually { names(fx, on: "vnet") == ["b", "c"] })
        #expect(fx.reconciler.eventsReceived.load(ordering: .relaxed) - before == 1, "only vnet's change was received")
        #expect(names(fx, on: "other").isEmpty)
        #expect(!fx.seen.all.contains { $0.hasPrefix("endpoint add y") || $0 == "endpoint add x" }, "\(fx.seen.all)")
    }

    @Test("joining a network lists every name it has and watches from there; leaving drops them quietly and stops their changes")
    func joinAndLeave() throws {
        let fx = try Fixture()
        defer { fx.close() }
        try twoNetworks(fx)
        try fx.registry.publish(fx.endpoint("x", 4, host: "h2", network: "other"), lease: nil)
        _ = try fx.registry.allocateAddress(on: try fx.registry.network(try HostLabel("other")), family: .v4,
                                            requested: IPAddress(IPv4Address(192, 168, 1, 9)), host: "h2", lease: nil)
        try fx.reconciler.start()
        #expect(names(fx, on: "other").isEmpty && fx.reconciler.claimedAddresses(on: "other").isEmpty)
        // A command attaching here: the network is listed before its body runs, and watched after.
        let seenInside = try fx.reconciler.using("other") { names(fx, on: "other") }
        #expect(seenInside == ["x"], "the existing name, before the command's body")
        #expect(fx.reconciler.claimedAddresses(on: "other") == [IPAddress(IPv4Address(192, 168, 1, 9))], "and the claims an address is picked around")
        #expect(fx.peers.log.contains("add 192.168.0.4 via 198.18.0.2 on other"), "\(fx.peers.log)")
        fx.used.networks = ["vnet", "other"]
        try fx.registry.publish(fx.endpoint("z", 6, host: "h2", network: "other"), lease: nil)
        #expect(eventually { names(fx, on: "other") == ["x", "z"] }, "changes after the listing arrive")
        try fx.reconciler.settleInterest()
        #expect(fx.reconciler.watchedNetworks() == ["vnet", "other"], "in use: kept")
        // A command attaching holds it, whatever the rounds say.
        fx.used.networks = ["vnet"]
        try fx.reconciler.using("other") {
            for _ in 0..<3 { try fx.reconciler.settleInterest() }
            #expect(fx.reconciler.watchedNetworks() == ["vnet", "other"], "held while a command attaches")
        }
        // Idle rounds count only in a row: unused, used again, unused: still watched.
        fx.used.networks = ["vnet", "other"]
        try fx.reconciler.settleInterest()
        fx.used.networks = ["vnet"]
        try fx.reconciler.settleInterest()
        #expect(fx.reconciler.watchedNetworks() == ["vnet", "other"], "one idle round keeps it (a command between claim and record)")
        fx.used.networks = ["vnet", "other"]
        try fx.reconciler.settleInterest()
        fx.used.networks = ["vnet"]
        try fx.reconciler.settleInterest()
        #expect(fx.reconciler.watchedNetworks() == ["vnet", "other"], "idle rounds not in a row")
        // Nothing here is on it any more: dropped after two rounds in a row.
        try fx.reconciler.settleInterest()
        #expect(fx.reconciler.watchedNetworks() == ["vnet"])
        #expect(names(fx, on: "other").isEmpty && fx.reconciler.claimedAddresses(on: "other").isEmpty)
        #expect(fx.peers.log.contains("remove 192.168.0.4 via 198.18.0.2 on other"), "its peers leave the table: \(fx.peers.log)")
        #expect(!fx.seen.all.contains("endpoint remove x"), "nothing left the cluster: no remove event: \(fx.seen.all)")
        let before = fx.reconciler.eventsReceived.load(ordering: .relaxed)
        try fx.registry.publish(fx.endpoint("w", 7, host: "h2", network: "other"), lease: nil)
        try fx.registry.publish(fx.endpoint("c", 5, host: "h2"), lease: nil)
        #expect(eventually { names(fx, on: "vnet") == ["c"] })
        #expect(fx.reconciler.eventsReceived.load(ordering: .relaxed) - before == 1, "the left network's changes no longer arrive")
        #expect(names(fx, on: "other").isEmpty)
        // Joining again (a sandbox recovered while the store was away: the round joins it).
        fx.used.networks = ["vnet", "other"]
        try fx.reconciler.settleInterest()
        #expect(names(fx, on: "other") == ["x", "z", "w"])
        try fx.registry.publish(fx.endpoint("v", 8, host: "h2", network: "other"), lease: nil)
        #expect(eventually { names(fx, on: "other") == ["x", "z", "w", "v"] }, "and watched again")
    }

    @Test("a restart of the watch (compaction, a new lease) lists again exactly the networks it watches")
    func restartKeepsInterest() throws {
        let fx = try Fixture()
        defer { fx.close() }
        for (name, subnet) in [("vnet", "192.168.0.0/24"), ("other", "192.168.1.0/24"), ("third", "192.168.2.0/24")] {
            _ = try fx.registry.createNetwork(name: try HostLabel(name), driver: .overlay, subnet: try IPv4Subnet(parsing: subnet), gateway: nil, host: nil)
        }
        fx.used.networks = ["vnet", "other"]
        try fx.reconciler.start()
        try fx.registry.publish(fx.endpoint("b", 3, host: "h2"), lease: nil)
        try fx.registry.publish(fx.endpoint("x", 4, host: "h2", network: "other"), lease: nil)
        try fx.registry.publish(fx.endpoint("t", 5, host: "h2", network: "third"), lease: nil)
        #expect(eventually { names(fx, on: "vnet") == ["b"] && names(fx, on: "other") == ["x"] })
        try fx.reconciler.start()
        #expect(fx.reconciler.watchedNetworks() == ["vnet", "other"])
        let before = fx.reconciler.eventsReceived.load(ordering: .relaxed)
        try fx.registry.publish(fx.endpoint("u", 7, host: "h2", network: "third"), lease: nil)
        try fx.registry.withdraw(endpoint: "h2-x", network: try HostLabel("other"))
        try fx.registry.publish(fx.endpoint("c", 6, host: "h2"), lease: nil)
        #expect(eventually { names(fx, on: "vnet") == ["b", "c"] && names(fx, on: "other").isEmpty }, "the new watch carries both")
        #expect(names(fx, on: "third").isEmpty)
        usleep(200_000)
        #expect(fx.reconciler.eventsReceived.load(ordering: .relaxed) - before == 2, "only the watched networks' changes, once each (the old watch is gone)")
    }
}
