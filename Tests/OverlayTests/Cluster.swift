import Addressing
import Foundation
import Logging
import Netns
import OverlayNet
import TestSupport
import Testing

/// Simulated hosts: namespaces `hN` with `eth0` = 198.18.0.N/24 on a private underlay bridge
/// (itself in its own namespace, so parallel tests never share a segment), each with its own
/// overlay driver, plus sandboxes made on them.
final class Cluster: @unchecked Sendable {
    let fixture: NamespaceFixture
    let underlay: SimulatedUnderlay
    private(set) var hosts: [(name: String, handle: NamespaceHandle, driver: OverlayDriver, address: IPv4Address)] = []
    private(set) var sandboxes: [Sandbox] = []
    let factory: SandboxFactory

    init(hosts count: Int, fixture: NamespaceFixture) throws {
        self.fixture = fixture
        factory = try SandboxFactory(thread: fixture.thread)
        underlay = try SimulatedUnderlay(prefix: fixture.prefix, thread: fixture.thread)
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        for _ in 1...count {
            let host = try underlay.addHost()
            let driver = try OverlayDriver(host: .init(id: host.name, advertise: host.address, namespace: host.namespace),
                                           thread: fixture.thread, logger: logger)
            hosts.append((host.name, host.namespace, driver, host.address))
        }
    }

    func driver(_ n: Int) -> OverlayDriver { hosts[n - 1].driver }
    func vtep(_ n: Int) -> IPv4Address { hosts[n - 1].address }

    /// A sandbox (container namespace) — in tests all sandboxes live in the machine's netns
    /// directory with the test prefix, whichever simulated host "runs" them.
    func sandbox(_ role: String) throws -> Sandbox {
        let sandbox = try factory.create(fixture.prefix + role)
        sandboxes.append(sandbox)
        return sandbox
    }

    func close() {
        for sandbox in sandboxes { try? factory.delete(sandbox) }
        for host in hosts {
            for name in fixture.namespaces.list() where name.hasPrefix(host.name + "-ov-") { try? fixture.namespaces.delete(name) }
        }
        hosts.removeAll()
        underlay.remove()
    }
}

/// Runs `body` on a fresh cluster, tears it down, and fails if anything it made is left.
/// The machine's namespace as the leak checks see it: every `withCluster` holds it shared; the
/// test that proves the check fires (by leaving driver-named links there on purpose) holds it
/// alone, so no other test's check ever sees those links.
final class MachineNamespaceLock: @unchecked Sendable {
    static let shared = MachineNamespaceLock()
    private var lock = pthread_rwlock_t()
    private init() { pthread_rwlock_init(&lock, nil) }
    func reading<T>(_ body: () throws -> T) rethrows -> T {
        pthread_rwlock_rdlock(&lock)
        defer { pthread_rwlock_unlock(&lock) }
        return try body()
    }
    func alone<T>(_ body: () throws -> T) rethrows -> T {
        pthread_rwlock_wrlock(&lock)
        defer { pthread_rwlock_unlock(&lock) }
        return try body()
    }
}

func withCluster<T>(hosts: Int, _ body: (Cluster) throws -> T) throws -> T {
    try MachineNamespaceLock.shared.reading { try withClusterChecked(hosts: hosts, body) }
}

func withClusterChecked<T>(hosts: Int, _ body: (Cluster) throws -> T) throws -> T {
    var prefix = ""
    let result: T = try withNamespaces { fx in
        prefix = fx.prefix
        #expect(MachineState.now().ours(prefix) == MachineState(namespaces: [], hostLinks: [], mounts: []))
        let cluster = try Cluster(hosts: hosts, fixture: fx)
        defer { cluster.close() }
        return try body(cluster)
    }
    let after = MachineState.now().ours(prefix)
    if after != MachineState(namespaces: [], hostLinks: [], mounts: []) {
        throw LeakError(after: after)
    }
    return result
}

struct LeakError: Error, CustomStringConvertible {
    var after: MachineState
    var description: String { "leaked: namespaces \(after.namespaces), links \(after.hostLinks), mounts \(after.mounts)" }
}

/// `busybox ping` from inside a sandbox; true when any of up to three echoes got a reply
/// within 3 s (the first may be lost to neighbour resolution on a loaded machine).
func ping(from sandbox: Sandbox, _ address: IPv4Address) throws -> Bool {
    try Shell.run(["ip", "netns", "exec", sandbox.name, "busybox", "ping", "-A", "-c", "3", "-w", "3", "\(address)"]).status == 0
}
