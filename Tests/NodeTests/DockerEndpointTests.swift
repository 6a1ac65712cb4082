import Addressing
import ClusterState
import Foundation
@testable import Node
import OverlayNet
import TestSupport
import Testing

/// Docker's endpoints over their whole life as the core sees them (issue 21, items 2-5, 10): the
/// driver's calls made on an embedded daemon whose store can be made to refuse writes of one key.
/// The same calls with a real dockerd are in RuntimeTests.
@Suite("Docker endpoints: identity, shared names, restarts, dead containers", .serialized, .timeLimit(.minutes(3)))
struct DockerEndpointTests {
    typealias Fixture = OwnerTests.Fixture

    /// An endpoint id as Docker makes them (64 hex digits), distinct per `n`.
    static func endpointID(_ n: Int) -> String { String(format: "%02x", n) + String(repeating: "ab12", count: 15) + "cd" }

    static func overlay(_ fx: Fixture, _ name: String, _ subnet: String) throws -> NetworkRecord {
        guard case .network(let record) = try fx.perform(API.createNetwork(NetworkCreation(name: name, driver: "overlay", subnet: subnet, gateway: nil)))
        else { throw NodeError.failed("no network") }
        return record
    }

    /// RequestAddress (optionally a given one), CreateEndpoint, Join: as dockerd calls them.
    @discardableResult
    static func join(_ fx: Fixture, _ id: String, pool: String, address: IPv4Address? = nil, sandboxKey: String? = nil) throws -> IPv4Address {
        guard case .dockerAddress(let text) = try fx.daemon.perform(.dockerRequestAddress(pool: try IPSubnet(parsing: pool), requested: address.map(IPAddress.init), gateway: false)),
              let given = IPv4Address(String(text.split(separator: "/")[0]))
        else { throw NodeError.failed("no address") }
        _ = try fx.daemon.perform(.dockerCreateEndpoint(try DockerEndpointID(id), address: given, address6: nil))
        _ = try fx.daemon.perform(.dockerJoin(try DockerEndpointID(id), sandboxKey: sandboxKey))
        return given
    }

    static func leave(_ fx: Fixture, _ id: String) throws {
        _ = try fx.daemon.perform(.dockerLeave(try DockerEndpointID(id), delete: false))
        _ = try fx.daemon.perform(.dockerLeave(try DockerEndpointID(id), delete: true))
    }

    /// Whether the overlay namespace of `network` has a link named `name`.
    static func link(_ fx: Fixture, _ network: NetworkRecord, _ name: String) throws -> Bool {
        let namespace = fx.daemon.overlay.overlayNamespaceName(try network.label)
        return try Shell.run(["ip", "-n", namespace, "link", "show", name]).status == 0
    }

    static func published(_ fx: Fixture, _ name: String, on network: String) throws -> Bool {
        try fx.store.inner.list(prefix: "dnsd/v1/endpoints/\(network)/").entries.contains { $0.text.contains("\"name\":\"\(name)\"") }
    }

    @Test("a stale endpoint of an address never touches the next container's: Leave cleans up here whatever the store says; the sweep and the release retry go by identity")
    func identity() throws {
        let fx = try Fixture()
        defer { fx.close() }
        let network = try Self.overlay(fx, "dki", "192.168.96.0/24")
        let first = Self.endpointID(1), second = Self.endpointID(2)
        let address = try Self.join(fx, first, pool: "192.168.96.0/24")
        try fx.daemon.dockerPublish(first, name: "alpha", aliases: [])
        #expect(try Self.published(fx, "alpha", on: "dki"))

        // The store refuses alpha's withdrawal and the address's release: Leave and DeleteEndpoint
        // still clean up here (veth, table; the name stops answering), the withdrawal is queued;
        // ReleaseAddress reports the error to Docker and is retried.
        let record = fx.daemon.dockerRecordID(first)
        fx.store.fail(record, true)
        fx.store.fail(address.description, true)
        try Self.leave(fx, first)
        #expect(fx.daemon.docker[first] == nil)
        #expect(!(try Self.link(fx, network, OverlayDriver.hostVethPortName(forEndpoint: first))))
        #expect(!fx.daemon.reconciler.known().endpoints.contains { $0.name == "alpha" }, "withdrawn here at once")
        #expect(fx.daemon.metricsSample().pendingWithdrawals == 1)
        #expect(throws: (any Error).self) { try fx.daemon.perform(.dockerReleaseAddress(pool: try IPSubnet(parsing: "192.168.96.0/24"), IPAddress(address))) }
        #expect(try fx.store.inner.get("dnsd/v1/ipam/dki/\(address)") != nil)
        fx.store.fail(address.description, false)
        fx.daemon.dockerRetryReleases()
        #expect(try fx.store.inner.get("dnsd/v1/ipam/dki/\(address)") == nil, "released by the retry")

        // The address goes to a new container; then alpha's withdrawal runs (and a sweep, which
        // finds nothing of alpha's: Leave cleaned up here already).
        #expect(try Self.join(fx, second, pool: "192.168.96.0/24", address: address) == address)
        try fx.daemon.dockerPublish(second, name: "beta", aliases: [])
        fx.store.fail(record, false)
        #expect(try fx.eventually(5) { !(try Self.published(fx, "alpha", on: "dki")) && fx.daemon.metricsSample().pendingWithdrawals == 0 })
        fx.daemon.dockerSweep(running: [second], grace: 0)
        #expect(try Self.link(fx, network, OverlayDriver.hostVethPortName(forEndpoint: second)), "the new container's veth stays")
        #expect(try fx.store.inner.get("dnsd/v1/ipam/dki/\(address)") != nil, "its claim stays")
        #expect(try Self.published(fx, "beta", on: "dki"))

        // A dockerd that died never says Leave for its container; back, it releases the address,
        // which goes to a new container here; then the sweep retires the stale endpoint: by its
        // id, so the new one's veth and claim stay.
        let stale = Self.endpointID(7), fresh = Self.endpointID(8)
        let reused = try Self.join(fx, stale, pool: "192.168.96.0/24")
        try fx.daemon.dockerPublish(stale, name: "gamma", aliases: [])
        _ = try fx.daemon.perform(.dockerReleaseAddress(pool: try IPSubnet(parsing: "192.168.96.0/24"), IPAddress(reused)))
        #expect(try Self.join(fx, fresh, pool: "192.168.96.0/24", address: reused) == reused)
        try fx.daemon.dockerPublish(fresh, name: "delta", aliases: [])
        fx.daemon.dockerSweep(running: [second, fresh], grace: 0)
        #expect(try fx.daemon.docker[stale] == nil && !Self.published(fx, "gamma", on: "dki"), "the stale one retired")
        #expect(!(try Self.link(fx, network, OverlayDriver.hostVethPortName(forEndpoint: stale))))
        #expect(try Self.link(fx, network, OverlayDriver.hostVethPortName(forEndpoint: fresh)), "the fresh one's veth stays")
        #expect(try fx.store.inner.get("dnsd/v1/ipam/dki/\(reused)") != nil, "its claim stays")
        #expect(try Self.published(fx, "delta", on: "dki"))

        for id in [second, fresh] { try Self.leave(fx, id) }
        for released in [address, reused] {
            _ = try fx.daemon.perform(.dockerReleaseAddress(pool: try IPSubnet(parsing: "192.168.96.0/24"), IPAddress(released)))
        }
        _ = try fx.perform(API.removeNetwork("dki"))
    }

    @Test("one container on two networks: its name on both, held until it leaves the last")
    func sharedName() throws {
        let fx = try Fixture()
        defer { fx.close() }
        _ = try Self.overlay(fx, "dka", "192.168.97.0/24")
        _ = try Self.overlay(fx, "dkb", "192.168.98.0/24")
        let onA = Self.endpointID(3), onB = Self.endpointID(4)
        let a = try Self.join(fx, onA, pool: "192.168.97.0/24")
        let b = try Self.join(fx, onB, pool: "192.168.98.0/24")
        try fx.daemon.dockerPublish(onA, name: "dual", aliases: [])
        try fx.daemon.dockerPublish(onB, name: "dual", aliases: [])
        #expect(try Self.published(fx, "dual", on: "dka") && Self.published(fx, "dual", on: "dkb"))
        try Self.leave(fx, onB)
        #expect(try fx.store.inner.get("dnsd/v1/names/dual") != nil, "still held for dka")
        #expect(try Self.published(fx, "dual", on: "dka") && !(try Self.published(fx, "dual", on: "dkb")))
        try Self.leave(fx, onA)
        #expect(try fx.store.inner.get("dnsd/v1/names/dual") == nil, "released with the last")
        _ = try fx.daemon.perform(.dockerReleaseAddress(pool: try IPSubnet(parsing: "192.168.97.0/24"), IPAddress(a)))
        _ = try fx.daemon.perform(.dockerReleaseAddress(pool: try IPSubnet(parsing: "192.168.98.0/24"), IPAddress(b)))
        _ = try fx.perform(API.removeNetwork("dka"))
        _ = try fx.perform(API.removeNetwork("dkb"))
    }

    @Test("after a restart the sweep never withdraws a running container's record before it is taken back")
    func sweepSparesRunning() throws {
        let fx = try Fixture()
        defer { fx.close() }
        let network = try Self.overlay(fx, "dkr", "192.168.99.0/24")
        // What an earlier run of this daemon left: a running container's record and name.
        let running = Self.endpointID(5)
        let state = EndpointState(id: fx.daemon.dockerRecordID(running), network: "dkr", name: "kept", aliases: [], ipv4: "192.168.99.7",
                                  mac: MACAddress(derivedFrom: IPv4Address(192, 168, 99, 7)).description, host: "h1", vtep: "198.18.0.1", runtime: "docker")
        try fx.daemon.registry.claimName(try HostLabel("kept"), host: "h1", lease: nil)
        try fx.daemon.registry.publish(state, lease: nil)
        // As recovery notes it at start: the network of a record from before stays watched
        // until the sweep has judged it (nothing here is on dkr).
        fx.daemon.docker.rememberRecordNetworks(["dkr"], for: 60)
        #expect(fx.eventually { fx.daemon.reconciler.known().endpoints.contains { $0.name == "kept" } })
        fx.daemon.dockerSweep(running: [running], grace: 0)
        #expect(try Self.published(fx, "kept", on: "dkr"), "running, not taken back yet: kept")
        #expect(try fx.store.inner.get("dnsd/v1/names/kept") != nil)
        // Not judged yet (its container may still die before it is taken back): still watched.
        for _ in 0..<3 { try fx.daemon.reconciler.settleInterest() }
        #expect(fx.daemon.reconciler.watchedNetworks().contains("dkr"), "a record waiting to be taken back keeps its network watched")
        fx.daemon.dockerSweep(running: [], grace: 0)
        #expect(!(try Self.published(fx, "kept", on: "dkr")), "not running: withdrawn")
        #expect(try fx.store.inner.get("dnsd/v1/names/kept") == nil)
        for _ in 0..<2 { try fx.daemon.reconciler.settleInterest() }
        #expect(!fx.daemon.reconciler.watchedNetworks().contains("dkr"), "judged: no longer watched")
        _ = network
        _ = try fx.perform(API.removeNetwork("dkr"))
    }

    @Test("a container whose namespace went (its veth with it) is withdrawn, with no dockerd and no SandboxKey to watch")
    func vethGoneWithNamespace() throws {
        let fx = try Fixture()
        defer { fx.close() }
        let network = try Self.overlay(fx, "dkv", "192.168.101.0/24")
        let namespace = fx.name("dkvns")
        try Shell.check(["ip", "netns", "add", namespace])
        let id = Self.endpointID(9)
        _ = try Self.join(fx, id, pool: "192.168.101.0/24")
        try fx.daemon.dockerPublish(id, name: "moved", aliases: [])
        // As Docker does: the host end into the container's namespace; then the namespace goes.
        try Shell.check(["ip", "-n", fx.hostName, "link", "set", "dnsd" + String(id.prefix(11)), "netns", namespace])
        usleep(1_500_000)
        #expect(fx.daemon.docker[id] != nil, "alive while its namespace is")
        try Shell.check(["ip", "netns", "del", namespace])
        #expect(try fx.eventually(5) { try fx.daemon.docker[id] == nil && !Self.published(fx, "moved", on: "dkv") }, "withdrawn")
        #expect(!(try Self.link(fx, network, OverlayDriver.hostVethPortName(forEndpoint: id))))
    }

    @Test("a container whose processes all exited is withdrawn by its namespace, with no dockerd to ask")
    func deadContainerWithoutDockerd() throws {
        let fx = try Fixture()
        defer { fx.close() }
        _ = try Self.overlay(fx, "dkd", "192.168.100.0/24")
        let namespace = fx.name("dkns")
        try Shell.check(["ip", "netns", "add", namespace])
        let process = try ChildProcess(["ip", "netns", "exec", namespace, "sleep", "120"])
        defer { process.stop() }
        let id = Self.endpointID(6)
        let address = try Self.join(fx, id, pool: "192.168.100.0/24", sandboxKey: "/run/netns/\(namespace)")
        try fx.daemon.dockerPublish(id, name: "doomed", aliases: [])
        // Seen with its process for a couple of rounds: it stays.
        #expect(fx.eventually(4) { fx.daemon.docker[id]?.namespaceInode != nil })
        usleep(2_500_000)
        #expect(try fx.daemon.docker[id] != nil && Self.published(fx, "doomed", on: "dkd"), "alive: kept")
        process.stop()
        #expect(try fx.eventually(6) { try fx.daemon.docker[id] == nil && !Self.published(fx, "doomed", on: "dkd") },
                "its processes gone: withdrawn")
        #expect(try fx.store.inner.get("dnsd/v1/names/doomed") == nil)
        #expect(try fx.store.inner.get("dnsd/v1/ipam/dkd/\(address)") != nil, "the address is left to Docker's IPAM release")
        _ = try fx.daemon.perform(.dockerReleaseAddress(pool: try IPSubnet(parsing: "192.168.100.0/24"), IPAddress(address)))
        _ = try fx.perform(API.removeNetwork("dkd"))
    }
}
