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
    /// The local store, counting requests (every write as a commit, every get and list as a
    /// read), with a gate: a write whose keys mention a held name waits until the name is let go
    /// (a store that does not answer, for that request only).
    final class GatedStore: KeyValueStore, @unchecked Sendable {
        let inner: LocalStore
        let commits = Atomic<Int>(0)
        let reads = Atomic<Int>(0)
        private let condition = NSCondition()
        private var held: Set<String> = []
        let waiting = Atomic<Int>(0)

        init(_ inner: LocalStore) { self.inner = inner }

        /// Writes mentioning a name in `failing` fail at once, as a store that is down.
        private var failing: Set<String> = []
        func fail(_ name: String, _ on: Bool) { condition.withLock { if on { failing.insert(name) } else { failing.remove(name) } } }

        func hold(_ name: String) { condition.withLock { _ = held.insert(name) } }
        func letGo(_ name: String) {
            condition.withLock {
                held.remove(name)
                condition.broadcast()
            }
        }

        private func gate(_ keys: [String]) throws {
            try condition.withLock {
                if keys.contains(where: { key in failing.contains { key.hasSuffix("/" + $0) } }) {
                    throw StoreError.unavailable(operation: "test", detail: "the store is down for this name")
                }
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
            // A network's listing (`…/endpoints/NET/`) is held like a key ending in `/NET`.
            try gate([prefix.hasSuffix("/") ? String(prefix.dropLast()) : prefix])
            reads.add(1, ordering: .relaxed)
            return try inner.list(prefix: prefix)
        }
        func put(_ key: String, _ value: [UInt8], lease: LeaseID?) throws -> Int64 {
            try gate([key])
            commits.add(1, ordering: .relaxed)
            return try inner.put(key, value, lease: lease)
        }
        func delete(_ key: String) throws -> Bool {
            try gate([key])
            commits.add(1, ordering: .relaxed)
            return try inner.delete(key)
        }
        func create(_ key: String, _ value: [UInt8], lease: LeaseID?) throws -> Bool {
            try gate([key])
            commits.add(1, ordering: .relaxed)
            return try inner.create(key, value, lease: lease)
        }
        func compareAndSwap(_ key: String, expected: Int64, _ value: [UInt8], lease: LeaseID?) throws -> Bool {
            commits.add(1, ordering: .relaxed)
            return try inner.compareAndSwap(key, expected: expected, value, lease: lease)
        }
        func delete(_ key: String, ifUnchangedSince expected: Int64) throws -> Bool {
            try gate([key])
            commits.add(1, ordering: .relaxed)
            return try inner.delete(key, ifUnchangedSince: expected)
        }
        func commit(_ conditions: [KeyCondition], puts: [(key: String, value: [UInt8])], unleasedPuts: [(key: String, value: [UInt8])],
                    deletes: [String], lease: LeaseID?) throws -> Bool {
            try gate(puts.map(\.key) + deletes)
            commits.add(1, ordering: .relaxed)
            return try inner.commit(conditions, puts: puts, unleasedPuts: unleasedPuts, deletes: deletes, lease: lease)
        }
        func watch(ranges: [String: Int64], events: @escaping @Sendable ([WatchEvent]) -> Void,
                   failed: @escaping @Sendable (StoreError) -> Void) throws -> any RangeWatch {
            try inner.watch(ranges: ranges, events: events, failed: failed)
        }
        func grantLease(ttl seconds: Int) throws -> LeaseID { try inner.grantLease(ttl: seconds) }
        func keepAlive(_ lease: LeaseID) throws -> Bool { try inner.keepAlive(lease) }
        func revoke(_ lease: LeaseID) throws { try inner.revoke(lease) }
    }

    /// A daemon embedded in the test on a gated local store, its host namespace the test's own.
    final class Fixture: @unchecked Sendable {
        let thread: NamespaceThread
        /// Unique per fixture: suites using it run side by side.
        let hostName = TestRun.namePrefix + "own" + UUID().uuidString.prefix(6).lowercased()
        let directory = TestRun.temporaryPath("owners-" + UUID().uuidString.prefix(6).lowercased())
        let store: GatedStore
        let daemon: Daemon
        private let madeLock = NSLock()
        private var made: [String] = []

        init() throws {
            thread = try NamespaceThread(name: "owner-tests")
            do {
                let host = try NamedNamespaces().create(hostName, on: thread)
                try Shell.check(["ip", "-n", hostName, "link", "set", "lo", "up"], timeout: 10)
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
                store = GatedStore(try LocalStore(directory: directory + "/store", logger: logger))
                daemon = try Daemon(configuration: .init(
                    hostID: "h1", advertise: IPv4Address(198, 18, 0, 1), dnsMode: .dns,
                    upstreams: [SocketAddress(IPv4Address(127, 0, 0, 1), port: 9)], upstreamTimeoutMilliseconds: 300, leaseTTL: 5,
                    hostResolvConf: ResolvConf(nameservers: ["198.18.0.53"], search: []), stateDirectory: directory + "/state",
                    hostNamespace: host, warmNamespaces: 0), store: store, logger: logger)
            } catch {
                try? NamedNamespaces().delete(hostName)
                try? FileManager.default.removeItem(atPath: directory)
                thread.shutdown()
                throw error
            }
        }

        /// Until `condition` holds, up to `seconds`.
        func eventually(_ seconds: Double = 3, _ condition: () throws -> Bool) rethrows -> Bool {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if try condition() { return true }
                usleep(10_000)
            }
            return try condition()
        }

        func name(_ base: String) -> String {
            let name = "\(TestRun.token)\(base)"
            madeLock.withLock { made.append(name) }
            return name
        }

        func perform<Body, Reply>(_ call: APICall<Body, Reply>) throws -> CommandResult { try daemon.perform(call) }

        func close() {
            for name in madeLock.withLock({ made }) {
                store.letGo(name)
                _ = try? perform(API.remove(name))
            }
            // The networks a test made, also when it stopped half-way: their hidden namespaces
            // carry no run token, so nothing else would remove them.
            let networks = ((try? store.inner.list(prefix: "dnsd/v1/networks/").entries) ?? []).map { String($0.key.split(separator: "/").last ?? "") }
            for network in networks { _ = try? perform(API.removeNetwork(network)) }
            daemon.shutdown()
            for network in networks where NamedNamespaces().exists("h1-ov-\(network)") { try? NamedNamespaces().delete("h1-ov-\(network)") }
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
        let aInside = DispatchSemaphore(value: 0)
        let overlapped = Atomic<Bool>(false)
        let done = DispatchGroup()
        for i in 0..<8 {
            let key = i < 4 ? "a" : "b"
            done.enter()
            Thread.detachNewThread {
                defer { done.leave() }
                order.run(key) {
                    let now = inside.withLock { state -> [String: Int] in
                        state[key, default: 0] += 1
                        return state
                    }
                    most.withLock { $0[key] = max($0[key] ?? 0, now[key] ?? 0) }
                    if key == "a" {
                        aInside.signal()
                        usleep(20_000)
                    } else if aInside.wait(timeout: .now() + 2) == .success, inside.withLock({ ($0["a"] ?? 0) > 0 }) {
                        // A "b" ran while an "a" was inside: different keys go at once.
                        overlapped.store(true, ordering: .relaxed)
                    }
                    inside.withLock { $0[key, default: 1] -= 1 }
                }
            }
        }
        #expect(done.wait(timeout: .now() + 20) == .success)
        #expect(most.withLock { $0 } == ["a": 1, "b": 1], "one at a time per key")
        let sawOverlap = overlapped.load(ordering: .relaxed)
        #expect(sawOverlap, "a and b overlapped")
        // tryRun: refused while the key is busy, run when it is free.
        let busy = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0)
        Thread.detachNewThread { order.run("c") { busy.signal(); release.wait() } }
        busy.wait()
        #expect(!order.tryRun("c") {}, "busy")
        release.signal()
        #expect(eventuallyTrue { order.tryRun("c") {} })
    }

    private func eventuallyTrue(_ condition: () -> Bool) -> Bool {
        for _ in 0..<300 {
            if condition() { return true }
            usleep(10_000)
        }
        return false
    }

    @Test("the picker never hands one address to two commands in flight, and skips claimed ones, in either family")
    func picker() throws {
        let network = NetworkRecord(name: "p", driver: .overlay, subnet: "10.9.0.0/29", gateway: "10.9.0.1", subnet6: "fd00:9::/125",
                                    gateway6: "fd00:9::1", vni: 5000, host: nil)
        for family in try network.families {
            @Sendable func a(_ last: UInt128) -> IPAddress { family.subnet.address(at: last) }
            let picker = AddressPicker(claimed: { _ in [a(2)] })
            let first = try picker.pick(family, on: "p", excluding: [])
            let second = try picker.pick(family, on: "p", excluding: [a(4)])
            #expect(first == a(3) && second == a(5))
            #expect(try picker.pick(family, on: "p", excluding: []) == a(4))
            #expect(try picker.pick(family, on: "p", excluding: []) == a(6))
            if family.subnet.family == .v6 {
                // IPv6 has no broadcast address: the prefix's last one is an endpoint's too.
                #expect(try picker.pick(family, on: "p", excluding: []) == a(7))
            }
            #expect(throws: ClusterError.self) { try picker.pick(family, on: "p", excluding: []) }
            picker.done(first, on: "p")
            #expect(try picker.pick(family, on: "p", excluding: []) == first, "given back")
            #expect(!picker.hold(second, on: "p") && picker.hold(a(2), on: "p"))
        }
    }

    @Test("a ticker retries a failing round with doubling gaps up to its bound, keeps its pace after a success, and stops at once")
    func ticker() throws {
        let times = Mutex<[Date]>([])
        let failing = Atomic<Bool>(true)
        let ticker = Ticker("test", every: 0.05, maxBackoff: 0.4, logger: Logger(label: "t") { _ in SwiftLogNoOpLogHandler() }) {
            times.withLock { $0.append(Date()) }
            if failing.load(ordering: .relaxed) { throw StoreError.unavailable(operation: "test", detail: "down") }
        }
        ticker.start()
        usleep(1_300_000)
        let failed = times.withLock { $0 }
        failing.store(false, ordering: .relaxed)
        usleep(900_000)
        let started = Date()
        ticker.stop()
        #expect(Date().timeIntervalSince(started) < 0.3, "stop waits for no period")
        let gaps = zip(failed.dropFirst(), failed).map { $0.timeIntervalSince($1) }
        // 0.05 (first round), then 0.1, 0.2, 0.4, 0.4...: each gap about twice the one before, up to the bound.
        #expect(gaps.count >= 3, "\(gaps)")
        for (earlier, later) in zip(gaps, gaps.dropFirst()) {
            #expect(later >= min(earlier * 1.6, 0.35) && later <= 0.4 + 0.15, "gaps: \(gaps)")
        }
        // After the first success the period is 0.05 s again: many rounds in 0.9 s.
        let after = times.withLock { $0 }.count - failed.count
        #expect(after >= 6, "\(after) rounds after recovering")
        let total = times.withLock { $0.count }
        usleep(200_000)
        #expect(times.withLock { $0.count } == total, "no round after stop")
    }

    @Test("a command stuck on the store holds nothing: ps, inspect, metrics and another sandbox's run go on")
    func stuckStore() throws {
        let fx = try Fixture()
        defer { fx.close() }
        _ = try fx.perform(API.createNetwork(NetworkCreation(name: "onet", driver: "bridge", subnet: "192.168.91.0/24", gateway: nil)))
        let early = fx.name("early"), stuck = fx.name("stuck"), other = fx.name("other")
        _ = try fx.perform(API.run(SandboxCreation(name: early, hostname: nil, network: "onet", aliases: nil, ip: nil)))
        fx.store.hold(stuck)
        defer { fx.store.letGo(stuck) }
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
        /// Whether `body` finishes, on a thread of its own, within 0.5 s (a regression fails here
        /// instead of hanging the test).
        func quick(_ body: @escaping @Sendable () throws -> Void) -> Bool {
            let finished = DispatchSemaphore(value: 0)
            let failure = Mutex<String?>(nil)
            Thread.detachNewThread {
                do { try body() } catch { failure.withLock { $0 = "\(error)" } }
                finished.signal()
            }
            return finished.wait(timeout: .now() + 0.5) == .success && failure.withLock { $0 } == nil
        }
        #expect(quick { _ = try fx.perform(API.listSandboxes()) }, "ps")
        #expect(quick { _ = try fx.perform(API.inspectSandbox(early)) }, "inspect")
        #expect(quick { _ = fx.daemon.metricsSample() }, "metrics")
        #expect(quick { _ = try fx.perform(API.run(SandboxCreation(name: other, hostname: nil, network: "onet", aliases: nil, ip: nil))) },
                "another sandbox's run")
        guard case .sandboxes(let during) = try fx.perform(API.listSandboxes()) else { return }
        #expect(Set(during.map(\.name)) == [early, other], "the stuck one is not listed until it is made")
        #expect(done.wait(timeout: .now() + 0.2) == .timedOut, "still stuck")
        fx.store.letGo(stuck)
        #expect(done.wait(timeout: .now() + 5) == .success)
        #expect(outcome.withLock { $0 } == "ok")
    }

    @Test("a host joining a network whose listing hangs holds up no join of another network")
    func joinsOfDifferentNetworks() throws {
        let fx = try Fixture()
        defer { fx.close() }
        for (name, subnet) in [("slownet", "192.168.93.0/24"), ("fastnet", "192.168.94.0/24")] {
            _ = try fx.perform(API.createNetwork(NetworkCreation(name: name, driver: "bridge", subnet: subnet, gateway: nil)))
        }
        let slow = fx.name("slow"), fast = fx.name("fast")
        fx.store.hold("slownet")
        defer { fx.store.letGo("slownet") }
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            _ = try? fx.perform(API.run(SandboxCreation(name: slow, hostname: nil, network: "slownet", aliases: nil, ip: nil)))
            done.signal()
        }
        for _ in 0..<200 where fx.store.waiting.load(ordering: .relaxed) == 0 { usleep(10_000) }
        #expect(fx.store.waiting.load(ordering: .relaxed) == 1, "the first join is inside the store, listing slownet")
        let finished = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            _ = try? fx.perform(API.run(SandboxCreation(name: fast, hostname: nil, network: "fastnet", aliases: nil, ip: nil)))
            finished.signal()
        }
        // Not a timing: a join that waited for the other network's listing would never finish
        // until it is let go.
        #expect(finished.wait(timeout: .now() + 10) == .success, "fastnet's join did not wait for slownet's listing")
        guard case .sandboxes(let listed) = try fx.perform(API.listSandboxes()) else { return }
        #expect(listed.map(\.name) == [fast])
        fx.store.letGo("slownet")
        #expect(done.wait(timeout: .now() + 10) == .success)
        for name in [slow, fast] { _ = try? fx.perform(API.stop(name)) }
    }

    @Test("concurrent attaches: each one store transaction, one listing of the network for all (the host joins it), distinct addresses")
    func concurrentAttaches() throws {
        let fx = try Fixture()
        defer { fx.close() }
        _ = try fx.perform(API.createNetwork(NetworkCreation(name: "cnet", driver: "bridge", subnet: "192.168.92.0/24", gateway: nil)))
        let names = (0..<10).map { fx.name("c\($0)") }
        #expect(fx.eventually { fx.daemon.knownNetworks().contains { $0.name == "cnet" } }, "the watch has the network")
        let commitsBefore = fx.store.commits.load(ordering: .relaxed), readsBefore = fx.store.reads.load(ordering: .relaxed)
        let addresses = Mutex<[String]>([])
        let failures = Mutex<[String]>([])
        let group = DispatchGroup()
        for i in names.indices {
            group.enter()
            Thread.detachNewThread {
            defer { group.leave() }
            do {
                guard case .sandbox(let info) = try fx.perform(API.run(SandboxCreation(name: names[i], hostname: nil, network: "cnet",
                                                                                        aliases: nil, ip: nil)))
                else { return }
                addresses.withLock { $0.append(info.attachments.first?.address ?? "?") }
            } catch {
                failures.withLock { $0.append("\(error)") }
            }
            }
        }
        #expect(group.wait(timeout: .now() + 60) == .success)
        #expect(failures.withLock { $0 }.isEmpty, "\(failures.withLock { $0 })")
        #expect(Set(addresses.withLock { $0 }).count == names.count, "\(addresses.withLock { $0 })")
        let commits = fx.store.commits.load(ordering: .relaxed) - commitsBefore, reads = fx.store.reads.load(ordering: .relaxed) - readsBefore
        #expect(commits == names.count, "one transaction per attach")
        // The host was on nothing of cnet: the first attach lists its endpoints and its claims
        // (two reads) and the others wait for that listing rather than making their own.
        #expect(reads == 2, "one listing of the network for all ten, no read per attach")
        let stopsBefore = fx.store.commits.load(ordering: .relaxed)
        for name in names { _ = try fx.perform(API.stop(name)) }
        let stops = fx.store.commits.load(ordering: .relaxed) - stopsBefore
        #expect(stops == names.count, "one transaction per stop")
    }

    @Test("a lapsed lease: a new one is taken and the host's sandboxes are published under it again")
    func leaseLapse() throws {
        let fx = try Fixture()
        defer { fx.close() }
        _ = try fx.perform(API.createNetwork(NetworkCreation(name: "lnet", driver: "bridge", subnet: "192.168.93.0/24", gateway: nil)))
        let a = fx.name("lapse")
        _ = try fx.perform(API.run(SandboxCreation(name: a, hostname: nil, network: "lnet", aliases: nil, ip: nil)))
        let old = try #require(fx.daemon.membership.lease)
        #expect(try fx.store.inner.get("dnsd/v1/names/\(a)")?.lease == old)
        try fx.store.inner.revoke(old)  // as if the store lost it: every key under it goes
        #expect(try fx.store.inner.get("dnsd/v1/names/\(a)") == nil)
        // The keep-alive (every TTL/3) finds the lease gone and takes a new one.
        #expect(try fx.eventually(8) {
            guard let lease = fx.daemon.membership.lease, lease != old,
                  try fx.store.inner.get("dnsd/v1/names/\(a)")?.lease == lease else { return false }
            // The table notes the new lease once the republish is done (just after the store has it).
            return try !fx.store.inner.list(prefix: "dnsd/v1/endpoints/lnet/").entries.isEmpty
                && fx.daemon.sandboxes.sandbox(a)?.lease == lease
        }, "name and endpoint back under a new lease, and the table knows")
    }

    @Test("a vanished sandbox is withdrawn here at once and from the store when it answers again")
    func pendingWithdrawal() throws {
        let fx = try Fixture()
        defer { fx.close() }
        _ = try fx.perform(API.createNetwork(NetworkCreation(name: "wnet", driver: "bridge", subnet: "192.168.94.0/24", gateway: nil)))
        let gone = fx.name("gone"), other = fx.name("stays")
        try Shell.check(["ip", "netns", "add", gone])
        _ = try fx.perform(API.attach(SandboxAdoption(name: gone, netns: "/run/netns/\(gone)", network: "wnet", hostsFile: nil, aliases: nil)))
        _ = try fx.perform(API.run(SandboxCreation(name: other, hostname: nil, network: "wnet", aliases: nil, ip: nil)))
        #expect(fx.eventually { fx.daemon.reconciler.known().endpoints.contains { $0.name == gone } })
        fx.store.fail(gone, true)
        try Shell.check(["ip", "netns", "del", gone])
        // Here at once: out of the table, the records and the other sandbox's hosts file.
        #expect(fx.eventually(4) {
            fx.daemon.sandboxes.sandbox(gone) == nil && !fx.daemon.reconciler.known().endpoints.contains { $0.name == gone }
                && !((try? String(contentsOfFile: "/etc/netns/\(other)/hosts", encoding: .utf8)) ?? gone).contains(gone)
        }, "withdrawn here while the store refuses")
        #expect(fx.daemon.metricsSample().pendingWithdrawals == 1)
        #expect(try fx.store.inner.get("dnsd/v1/names/\(gone)") != nil, "the store still has it")
        usleep(500_000)
        #expect(!fx.daemon.reconciler.known().endpoints.contains { $0.name == gone }, "kept out while pending")
        fx.store.fail(gone, false)
        #expect(try fx.eventually(5) {
            try fx.store.inner.get("dnsd/v1/names/\(gone)") == nil && fx.daemon.metricsSample().pendingWithdrawals == 0
        }, "released once the store answers")
        #expect(try fx.store.inner.list(prefix: "dnsd/v1/endpoints/wnet/").entries.count == 1)
        // The name is free again here and in the cluster.
        _ = try fx.perform(API.run(SandboxCreation(name: gone, hostname: nil, network: "wnet", aliases: nil, ip: nil)))
        #expect(fx.eventually { fx.daemon.reconciler.known().endpoints.contains { $0.name == gone } }, "a new sandbox of the name is seen")
    }

    @Test("a network's devices stay while a command holds it, and go when the store drops it and nothing uses it")
    func networkDevices() throws {
        let fx = try Fixture()
        defer { fx.close() }
        guard case .network(let record) = try fx.perform(API.createNetwork(NetworkCreation(name: "dnet", driver: "overlay",
                                                                                            subnet: "192.168.95.0/24", gateway: nil)))
        else { Issue.record("no network"); return }
        let label = try record.label
        try fx.daemon.devices.withNetwork(record) {
            #expect(fx.daemon.overlay.hasNetwork(label))
            fx.daemon.devices.networkLeft(record)
            #expect(fx.daemon.overlay.hasNetwork(label), "held by a command: stays")
        }
        fx.daemon.devices.networkLeft(record)
        #expect(!fx.daemon.overlay.hasNetwork(label) && !fx.daemon.overlay.hasNamespace(label), "gone once nothing holds it")
        _ = try? fx.perform(API.removeNetwork("dnet"))
    }

    @Test("a network removed and made again under its name gets a resolver at its gateway again (issue 21, item 6)")
    func gatewayResolverAfterRecreate() throws {
        let fx = try Fixture()
        defer { fx.close() }
        func create() throws -> NetworkRecord {
            guard case .network(let record) = try fx.perform(API.createNetwork(NetworkCreation(name: "gwnet", driver: "overlay",
                                                                                                subnet: "192.168.96.0/24", gateway: nil)))
            else { throw NodeError.failed("no network") }
            return record
        }
        func answers() throws -> Bool {
            // Asked from the overlay's own namespace, where the gateway address lives on br0.
            let reply = try Shell.run(["ip", "netns", "exec", "h1-ov-gwnet", "dig", "+time=1", "+tries=1", "@192.168.96.1", "nosuch.gwnet"])
            return reply.stdout.contains("NXDOMAIN")
        }
        for round in 0..<2 {
            let record = try create()
            try fx.daemon.devices.withNetwork(record) {}
            fx.daemon.serveGatewayResolver(record)
            #expect(try answers(), "round \(round): the gateway resolver answers")
            _ = try fx.perform(API.removeNetwork("gwnet"))
            #expect(!NamedNamespaces().exists("h1-ov-gwnet"), "round \(round): the overlay namespace is gone")
        }
    }
}
