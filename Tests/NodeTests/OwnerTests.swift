import Addressing
import ClusterState
import Foundation
import Logging
import Netns
@testable import Node
import Resolver
import Store
import Synchronization
import TestSupport
import Testing

/// The core's owners on their own (issue 20): the per-sandbox order, the address picker, the
/// ticker; and the daemon composed of them on a store that can be made to hang, to show that
/// nothing but the commands that need the store ever wait on it.
@Suite("Owners: no lock across the store", .serialized, .timeLimit(.minutes(5)))
struct OwnerTests {
    /// The local store, counting requests, with a gate: a write whose keys mention a held name
    /// waits until the name is let go (a store that does not answer, for that request only).
    final class GatedStore: KeyValueStore, @unchecked Sendable {
        let inner: LocalStore
        let commits = Atomic<Int>(0)
        let reads = Atomic<Int>(0)
        private let condition = NSCondition()
        private var held: Set<String> = []
        let waiting = Atomic<Int>(0)

        init(_ inner: LocalStore) { self.inner = inner }

        func hold(_ name: String) { condition.withLock { _ = held.insert(name) } }
        func letGo(_ name: String) {
            condition.withLock {
                held.remove(name)
                condition.broadcast()
            }
        }

        private func gate(_ keys: [String]) {
            condition.withLock {
                guard keys.contains(where: { key in held.contains { key.hasSuffix("/" + $0) } }) else { return }
                waiting.add(1, ordering: .relaxed)
                while keys.contains(where: { key in held.contains { key.hasSuffix("/" + $0) } }) { condition.wait() }
                waiting.subtract(1, ordering: .relaxed)
            }
        }

        func get(_ key: String) throws -> KeyValue? {
            reads.add(1, ordering: .relaxed)
            return try inner.get(key)
        }
        func list(prefix: String) throws -> (entries: [KeyValue], revision: Int64) {
            reads.add(1, ordering: .relaxed)
            return try inner.list(prefix: prefix)
        }
        func put(_ key: String, _ value: [UInt8], lease: LeaseID?) throws -> Int64 {
            gate([key])
            return try inner.put(key, value, lease: lease)
        }
        func delete(_ key: String) throws -> Bool { try inner.delete(key) }
        func create(_ key: String, _ value: [UInt8], lease: LeaseID?) throws -> Bool {
            gate([key])
            commits.add(1, ordering: .relaxed)
            return try inner.create(key, value, lease: lease)
        }
        func compareAndSwap(_ key: String, expected: Int64, _ value: [UInt8], lease: LeaseID?) throws -> Bool {
            try inner.compareAndSwap(key, expected: expected, value, lease: lease)
        }
        func delete(_ key: String, ifUnchangedSince expected: Int64) throws -> Bool { try inner.delete(key, ifUnchangedSince: expected) }
        func commit(_ conditions: [KeyCondition], puts: [(key: String, value: [UInt8])], unleasedPuts: [(key: String, value: [UInt8])],
                    deletes: [String], lease: LeaseID?) throws -> Bool {
            gate(puts.map(\.key) + deletes)
            commits.add(1, ordering: .relaxed)
            return try inner.commit(conditions, puts: puts, unleasedPuts: unleasedPuts, deletes: deletes, lease: lease)
        }
        func watch(prefix: String, from revision: Int64, events: @escaping @Sendable ([WatchEvent]) -> Void,
                   failed: @escaping @Sendable (StoreError) -> Void) throws -> any WatchHandle {
            try inner.watch(prefix: prefix, from: revision, events: events, failed: failed)
        }
        func grantLease(ttl seconds: Int) throws -> LeaseID { try inner.grantLease(ttl: seconds) }
        func keepAlive(_ lease: LeaseID) throws -> Bool { try inner.keepAlive(lease) }
        func revoke(_ lease: LeaseID) throws { try inner.revoke(lease) }
    }

    /// A daemon embedded in the test on a gated local store, its host namespace the test's own.
    final class Fixture: @unchecked Sendable {
        let thread: NamespaceThread
        let hostName = TestRun.namePrefix + "ownerhost"
        let directory = TestRun.temporaryPath("owners")
        let store: GatedStore
        let daemon: Daemon
        private let madeLock = NSLock()
        private var made: [String] = []

        init() throws {
            thread = try NamespaceThread(name: "owner-tests")
            let host = try NamedNamespaces().create(hostName, on: thread)
            try Shell.check(["ip", "-n", hostName, "link", "set", "lo", "up"], timeout: 10)
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
            store = GatedStore(try LocalStore(directory: directory + "/store", logger: logger))
            daemon = try Daemon(configuration: .init(
                hostID: "h1", advertise: IPv4Address(198, 18, 0, 1), dnsMode: .dns,
                upstreams: [SocketAddress(IPv4Address(127, 0, 0, 1), port: 9)], upstreamTimeoutMilliseconds: 300, leaseTTL: 10,
                hostResolvConf: ResolvConf(nameservers: ["198.18.0.53"], search: []), stateDirectory: directory + "/state",
                hostNamespace: host, warmNamespaces: 0), store: store, logger: logger)
        }

        func name(_ base: String) -> String {
            let name = "\(TestRun.token)\(base)"
            madeLock.withLock { made.append(name) }
            return name
        }

        func perform<Body, Reply>(_ call: APICall<Body, Reply>) throws -> CommandResult {
            let (route, parameters) = try #require(APIRoute.match(method: call.route.method, path: call.path))
            return try daemon.perform(Command(route: route, parameters: parameters, body: try call.body.map { try JSONEncoder().encode($0) } ?? Data()))
        }

        func close() {
            for name in madeLock.withLock({ made }) {
                store.letGo(name)
                _ = try? perform(API.remove(name))
            }
            daemon.shutdown()
            for name in madeLock.withLock({ made }) {
                try? NamedNamespaces().delete(name)
                try? FileManager.default.removeItem(atPath: "/etc/netns/\(name)")
            }
            try? NamedNamespaces().delete(hostName)
            try? FileManager.default.removeItem(atPath: directory)
            thread.shutdown()
        }
    }

    @Test("commands on one key run one at a time, on different keys at once")
    func keyedOrder() throws {
        let order = KeyedOrder()
        let inside = Mutex<[String: Int]>([:])
        let most = Mutex<[String: Int]>([:])
        let both = Atomic<Bool>(false)
        DispatchQueue.concurrentPerform(iterations: 8) { i in
            let key = i < 4 ? "a" : "b"
            order.run(key) {
                let now = inside.withLock { state -> [String: Int] in
                    state[key, default: 0] += 1
                    return state
                }
                most.withLock { $0[key] = max($0[key] ?? 0, now[key] ?? 0) }
                if (now["a"] ?? 0) > 0, (now["b"] ?? 0) > 0 { both.store(true, ordering: .relaxed) }
                usleep(30_000)
                inside.withLock { $0[key, default: 1] -= 1 }
            }
        }
        #expect(most.withLock { $0 } == ["a": 1, "b": 1], "one at a time per key")
        let overlapped = both.load(ordering: .relaxed)
        #expect(overlapped, "a and b overlapped")
    }

    @Test("the picker never hands one address to two commands in flight, and skips claimed ones")
    func picker() throws {
        let network = NetworkRecord(name: "p", driver: .overlay, subnet: "10.9.0.0/29", gateway: "10.9.0.1", vni: 5000, host: nil)
        let picker = AddressPicker(claimed: { _ in [IPv4Address(10, 9, 0, 2)] })
        let first = try picker.pick(on: network, excluding: [])
        let second = try picker.pick(on: network, excluding: [IPv4Address(10, 9, 0, 4)])
        #expect(first == IPv4Address(10, 9, 0, 3) && second == IPv4Address(10, 9, 0, 5))
        #expect(try picker.pick(on: network, excluding: []) == IPv4Address(10, 9, 0, 4))
        #expect(try picker.pick(on: network, excluding: []) == IPv4Address(10, 9, 0, 6))
        #expect(throws: ClusterError.self) { try picker.pick(on: network, excluding: []) }
        picker.done(first, on: "p")
        #expect(try picker.pick(on: network, excluding: []) == first, "given back")
        #expect(!picker.hold(second, on: "p") && picker.hold(IPv4Address(10, 9, 0, 2), on: "p"))
    }

    @Test("a ticker retries a failing round with growing gaps, and stops at once")
    func ticker() throws {
        let times = Mutex<[Date]>([])
        let ticker = Ticker("test", every: 0.05, maxBackoff: 0.4, logger: Logger(label: "t") { _ in SwiftLogNoOpLogHandler() }) {
            times.withLock { $0.append(Date()) }
            throw StoreError.unavailable(operation: "test", detail: "down")
        }
        ticker.start()
        usleep(1_000_000)
        let started = Date()
        ticker.stop()
        #expect(Date().timeIntervalSince(started) < 0.3, "stop waits for no period")
        let seen = times.withLock { $0 }
        let gaps = zip(seen.dropFirst(), seen).map { $0.timeIntervalSince($1) }
        #expect(seen.count >= 3 && seen.count <= 8, "\(seen.count) rounds in 1 s with backoff")
        #expect(gaps.count >= 2 && gaps.last! > gaps.first!, "gaps grow: \(gaps)")
        usleep(200_000)
        #expect(times.withLock { $0.count } == seen.count, "no round after stop")
    }

    @Test("a command stuck on the store holds nothing: ps, inspect, metrics and another sandbox's run go on")
    func stuckStore() throws {
        let fx = try Fixture()
        defer { fx.close() }
        _ = try fx.perform(API.createNetwork(NetworkCreation(name: "onet", driver: "bridge", subnet: "192.168.91.0/24", gateway: nil)))
        let early = fx.name("early"), stuck = fx.name("stuck"), other = fx.name("other")
        _ = try fx.perform(API.run(SandboxCreation(name: early, hostname: nil, network: "onet", aliases: nil, ip: nil)))
        fx.store.hold(stuck)
        let done = DispatchSemaphore(value: 0)
        let outcome = Mutex<String>("")
        Thread.detachNewThread {
            do {
                _ = try fx.perform(API.run(SandboxCreation(name: stuck, hostname: nil, network: "onet", aliases: nil, ip: nil)))
                outcome.withLock { $0 = "ok" }
            } catch {
                outcome.withLock { $0 = "\(error)" }
            }
            done.signal()
        }
        for _ in 0..<200 where fx.store.waiting.load(ordering: .relaxed) == 0 { usleep(10_000) }
        let waiting = fx.store.waiting.load(ordering: .relaxed)
        #expect(waiting == 1, "the run is inside the store")
        func quick(_ body: () throws -> Void) rethrows -> Bool {
            let started = Date()
            try body()
            return Date().timeIntervalSince(started) < 0.5
        }
        #expect(try quick { _ = try fx.perform(API.listSandboxes()) }, "ps")
        #expect(try quick { _ = try fx.perform(API.inspectSandbox(early)) }, "inspect")
        #expect(quick { _ = fx.daemon.metricsSample() }, "metrics")
        #expect(try quick { _ = try fx.perform(API.run(SandboxCreation(name: other, hostname: nil, network: "onet", aliases: nil, ip: nil))) },
                "another sandbox's run")
        guard case .sandboxes(let during) = try fx.perform(API.listSandboxes()) else { return }
        #expect(Set(during.map(\.name)) == [early, other], "the stuck one is not listed until it is made")
        #expect(done.wait(timeout: .now() + 0.2) == .timedOut, "still stuck")
        fx.store.letGo(stuck)
        #expect(done.wait(timeout: .now() + 5) == .success)
        #expect(outcome.withLock { $0 } == "ok")
    }

    @Test("concurrent attaches: each one store transaction, no read, distinct addresses")
    func concurrentAttaches() throws {
        let fx = try Fixture()
        defer { fx.close() }
        _ = try fx.perform(API.createNetwork(NetworkCreation(name: "cnet", driver: "bridge", subnet: "192.168.92.0/24", gateway: nil)))
        let names = (0..<10).map { fx.name("c\($0)") }
        usleep(200_000)  // the watch has the network
        let commitsBefore = fx.store.commits.load(ordering: .relaxed), readsBefore = fx.store.reads.load(ordering: .relaxed)
        let addresses = Mutex<[String]>([])
        let failures = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: names.count) { i in
            do {
                guard case .sandbox(let info) = try fx.perform(API.run(SandboxCreation(name: names[i], hostname: nil, network: "cnet",
                                                                                        aliases: nil, ip: nil)))
                else { return }
                addresses.withLock { $0.append(info.attachments.first?.address ?? "?") }
            } catch {
                failures.withLock { $0.append("\(error)") }
            }
        }
        #expect(failures.withLock { $0 }.isEmpty, "\(failures.withLock { $0 })")
        #expect(Set(addresses.withLock { $0 }).count == names.count, "\(addresses.withLock { $0 })")
        let commits = fx.store.commits.load(ordering: .relaxed) - commitsBefore, reads = fx.store.reads.load(ordering: .relaxed) - readsBefore
        #expect(commits == names.count, "one transaction per attach")
        #expect(reads == 0, "no read on the way")
        let stopsBefore = fx.store.commits.load(ordering: .relaxed)
        for name in names { _ = try fx.perform(API.stop(name)) }
        let stops = fx.store.commits.load(ordering: .relaxed) - stopsBefore
        #expect(stops == names.count, "one transaction per stop")
    }
}
