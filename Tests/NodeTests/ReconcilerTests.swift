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
        func addPeer(_ address: IPv4Address, vtep: IPv4Address, on network: HostLabel) throws {
            lock.withLock { calls.append("add \(address) via \(vtep) on \(network)") }
        }
        func removePeer(_ address: IPv4Address, vtep: IPv4Address, on network: HostLabel) throws {
            lock.withLock { calls.append("remove \(address) via \(vtep) on \(network)") }
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
                                    cache: nil, events: events, logger: logger)
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
        try fx.registry.publish(fx.endpoint("d", 5, host: "h2", network: "later"), lease: nil)
        try fx.reconciler.start()
        #expect(fx.peers.log == ["add 192.168.0.5 via 198.18.0.2 on later"], "\(fx.peers.log)")
        _ = try fx.registry.createNetwork(name: try HostLabel("later"), driver: .overlay, subnet: try IPv4Subnet(parsing: "192.168.0.0/24"),
                                          gateway: nil, host: nil)
        #expect(!eventually(timeout: 0.3) { fx.peers.log.count > 1 }, "the network's arrival adds nothing twice: \(fx.peers.log)")
    }
}
