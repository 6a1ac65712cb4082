import Foundation
import Logging
@testable import Store
import Synchronization
import TestSupport
import Testing

enum Backend: String, CaseIterable, CustomStringConvertible, Sendable {
    case etcd, local, consul
    var description: String { rawValue }
}

/// Runs `body` with a fresh store of `backend` (a second client of the same store from
/// `another`), and removes everything it made.
func withStore(_ backend: Backend, _ body: (any KeyValueStore, () -> any KeyValueStore) throws -> Void) throws {
    var logger = Logger(label: "test")
    logger.logLevel = .critical
    switch backend {
    case .etcd:
        let server = try EtcdServer()
        defer { server.stop() }
        try body(EtcdStore(endpoints: [server.endpoint], logger: logger), { EtcdStore(endpoints: [server.endpoint], logger: logger) })
    case .consul:
        let port = try EtcdServer.freePort()
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("consul_double.py").path
        let double = try ChildProcess(["python3", script, "\(port)"])
        defer { double.stop() }
        for _ in 0..<200 {
            if (try? Shell.run(["curl", "-s", "-m", "1", "http://127.0.0.1:\(port)/v1/kv/probe"]))?.status == 0 { break }
            usleep(20_000)
        }
        let address = "127.0.0.1:\(port)"
        try body(ConsulStore(address: address, logger: logger), { ConsulStore(address: address, logger: logger) })
    case .local:
        let directory = TestRun.temporaryPath("local")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = try LocalStore(directory: directory, logger: logger)
        try body(store, { store })
    }
}

/// The store contract, against a real etcd, the local store, and the Consul client against a
/// double of Consul's documented HTTP API (no Consul server can be installed here).
@Suite("Store contract (real etcd, local store, Consul double)", .timeLimit(.minutes(5)))
struct StoreContractTests {

    @Test("put, get, list by prefix, delete; values are bytes", arguments: Backend.allCases)
    func basics(backend: Backend) throws {
        try withStore(backend) { store, another in
            #expect(try store.get("dnsd/v1/names/c01") == nil)
            try store.put("dnsd/v1/names/c01", Array("h1".utf8))
            try store.put("dnsd/v1/names/c02", [0, 255, 10])
            try store.put("dnsd/v1/namesake", Array("x".utf8))
            #expect(try store.get("dnsd/v1/names/c01")?.text == "h1")
            #expect(try store.get("dnsd/v1/names/c02")?.value == [0, 255, 10])
            let (entries, revision) = try store.list(prefix: "dnsd/v1/names/")
            #expect(entries.map(\.key) == ["dnsd/v1/names/c01", "dnsd/v1/names/c02"])
            #expect(revision >= entries.map(\.modRevision).max()!)
            #expect(try store.delete("dnsd/v1/names/c01"))
            #expect(try !store.delete("dnsd/v1/names/c01"))
            #expect(try store.list(prefix: "dnsd/v1/names/").entries.count == 1)
        }
    }

    @Test("create-if-absent: two clients racing over 50 addresses never both win one", arguments: Backend.allCases)
    func createIfAbsentRace(backend: Backend) throws {
        try withStore(backend) { store, another in
            let other = another()
            let wins = Mutex<[String: Int]>([:])
            DispatchQueue.concurrentPerform(iterations: 2) { client in
                let s: any KeyValueStore = client == 0 ? store : other
                for i in 0..<50 {
                    if (try? s.create("dnsd/v1/ipam/vnet/192.168.0.\(i)", Array("c\(client)".utf8), lease: nil)) == true {
                        wins.withLock { $0["\(i)", default: 0] += 1 }
                    }
                }
            }
            let result = wins.withLock { $0 }
            #expect(result.count == 50)
            #expect(result.values.allSatisfy { $0 == 1 })
        }
    }

    @Test("compare-and-swap succeeds on the current revision only", arguments: Backend.allCases)
    func compareAndSwap(backend: Backend) throws {
        try withStore(backend) { store, another in
            try store.put("k", Array("1".utf8))
            let current = try #require(try store.get("k"))
            #expect(try store.compareAndSwap("k", expected: current.modRevision, Array("2".utf8)))
            #expect(try !store.compareAndSwap("k", expected: current.modRevision, Array("3".utf8)))
            #expect(try store.get("k")?.text == "2")
        }
    }

    @Test("commit with deletes: puts and deletes together when the conditions hold, nothing otherwise", arguments: Backend.allCases)
    func commitDeletes(backend: Backend) throws {
        try withStore(backend) { store, another in
            try store.put("net", Array("n".utf8))
            try store.put("vni", Array("v".utf8))
            let net = try #require(try store.get("net"))
            try another().put("net", Array("moved".utf8))
            #expect(try !store.commit([.unchanged("net", modRevision: net.modRevision)], puts: [("marker", Array("m".utf8))], deletes: ["net", "vni"], lease: nil))
            #expect(try store.get("net")?.text == "moved" && store.get("vni") != nil && store.get("marker") == nil)
            let now = try #require(try store.get("net"))
            #expect(try store.commit([.unchanged("net", modRevision: now.modRevision), .absent("marker")], puts: [("marker", Array("m".utf8))],
                                     deletes: ["net", "vni", "never-existed"], lease: nil))
            #expect(try store.get("net") == nil && store.get("vni") == nil && store.get("marker")?.text == "m")
        }
    }

    @Test("heldBy: true only for a key held under that very lease (a stop's one-transaction release)", arguments: Backend.allCases)
    func heldBy(backend: Backend) throws {
        try withStore(backend) { store, another in
            let mine = try store.grantLease(ttl: 30), theirs = try another().grantLease(ttl: 30)
            try store.put("name", Array("h1".utf8), lease: mine)
            try store.put("addr", Array("h1".utf8), lease: mine)
            try another().put("other", Array("h2".utf8), lease: theirs)
            try store.put("plain", Array("x".utf8))
            // Another's lease, no lease, an absent key: each makes the commit fail, deleting nothing.
            for condition in [KeyCondition.heldBy("other", lease: mine), .heldBy("plain", lease: mine), .heldBy("nosuch", lease: mine),
                              .heldBy("name", lease: theirs)] {
                #expect(try !store.commit([.heldBy("addr", lease: mine), condition], puts: [], deletes: ["name", "addr"], lease: nil),
                        "\(condition)")
                #expect(try store.get("name") != nil && store.get("addr") != nil)
            }
            #expect(try store.commit([.heldBy("name", lease: mine), .heldBy("addr", lease: mine)], puts: [], deletes: ["name", "addr"], lease: nil))
            #expect(try store.get("name") == nil && store.get("addr") == nil && store.get("other") != nil)
            try store.revoke(mine)
            try another().revoke(theirs)
        }
    }

    @Test("commit: all puts under the lease when every condition holds, none when one fails", arguments: Backend.allCases)
    func commit(backend: Backend) throws {
        try withStore(backend) { store, another in
            try store.put("held", Array("1".utf8))
            let held = try #require(try store.get("held"))
            let lease = try store.grantLease(ttl: 10)
            // One condition false (the key is not absent): nothing written.
            #expect(try !store.commit([.absent("new"), .absent("held")], puts: [("new", Array("a".utf8)), ("held", Array("b".utf8))], lease: lease))
            #expect(try store.get("new") == nil && store.get("held")?.text == "1")
            // A revision that moved on: nothing written.
            try another().put("held", Array("2".utf8))
            #expect(try !store.commit([.unchanged("held", modRevision: held.modRevision)], puts: [("new", Array("a".utf8))], lease: lease))
            #expect(try store.get("new") == nil)
            // Every condition true: every put, under the lease.
            let now = try #require(try store.get("held"))
            #expect(try store.commit([.absent("new"), .unchanged("held", modRevision: now.modRevision)],
                                     puts: [("new", Array("a".utf8)), ("held", Array("b".utf8)), ("third", Array("c".utf8))], lease: lease))
            #expect(try store.get("new")?.text == "a" && store.get("held")?.text == "b" && store.get("third")?.text == "c")
            // .unchanged on an absent key is false.
            #expect(try !store.commit([.unchanged("nosuch", modRevision: now.modRevision)], puts: [("x", Array("x".utf8))], lease: nil))
            try store.revoke(lease)
            for _ in 0..<100 where try store.get("third") != nil { usleep(20_000) }
            #expect(try store.get("new") == nil && store.get("held") == nil && store.get("third") == nil, "all three under the lease")
        }
    }

    @Test("compare-and-delete deletes at the current revision only", arguments: Backend.allCases)
    func compareAndDelete(backend: Backend) throws {
        try withStore(backend) { store, another in
            try store.put("k", Array("1".utf8))
            let first = try #require(try store.get("k"))
            try another().put("k", Array("2".utf8))
            #expect(try !store.delete("k", ifUnchangedSince: first.modRevision), "changed since: kept")
            #expect(try store.get("k")?.text == "2")
            let second = try #require(try store.get("k"))
            #expect(try store.delete("k", ifUnchangedSince: second.modRevision))
            #expect(try store.get("k") == nil)
            #expect(try !store.delete("k", ifUnchangedSince: second.modRevision), "absent: nothing to delete")
            #expect(try !store.delete("absent", ifUnchangedSince: 0))
        }
    }

    @Test("leases: keys vanish on revoke; keep-alive says when a lease is gone", arguments: Backend.allCases)
    func leases(backend: Backend) throws {
        try withStore(backend) { store, another in
            let lease = try store.grantLease(ttl: 5)
            #expect(!lease.raw.isEmpty)
            try store.put("dnsd/v1/hosts/h1", Array("198.18.0.1".utf8), lease: lease)
            #expect(try store.get("dnsd/v1/hosts/h1")?.lease == lease)
            #expect(try store.keepAlive(lease))
            try store.revoke(lease)
            #expect(try store.get("dnsd/v1/hosts/h1") == nil)
            #expect(try !store.keepAlive(lease))
        }
    }

    @Test("watch: every change under the prefix, in order, from a revision; cancel stops it", arguments: Backend.allCases)
    func watch(backend: Backend) throws {
        try withStore(backend) { store, another in
            try store.put("dnsd/v1/endpoints/vnet/a", Array("1".utf8))
            let (_, revision) = try store.list(prefix: "dnsd/v1/endpoints/")
            let seen = Mutex<[WatchEvent]>([])
            let handle = try store.watch(prefix: "dnsd/v1/endpoints/", from: revision + 1,
                                         events: { batch in seen.withLock { $0 += batch } }, failed: { _ in })
            try store.put("dnsd/v1/endpoints/vnet/b", Array("2".utf8))
            try store.put("dnsd/v1/other", Array("x".utf8))
            try store.delete("dnsd/v1/endpoints/vnet/a")
            for _ in 0..<200 where seen.withLock({ $0.count }) < 2 { usleep(10_000) }
            handle.cancel()
            let events = seen.withLock { $0 }
            #expect(events.map(\.kind) == [.put, .delete])
            #expect(events.map(\.entry.key) == ["dnsd/v1/endpoints/vnet/b", "dnsd/v1/endpoints/vnet/a"])
            #expect(events.first?.entry.text == "2")
            // After cancel() returns no handler runs: later changes are not delivered.
            try store.put("dnsd/v1/endpoints/vnet/c", Array("3".utf8))
            try store.delete("dnsd/v1/endpoints/vnet/b")
            usleep(300_000)
            #expect(seen.withLock { $0.count } == 2, "events delivered after cancel: \(seen.withLock { $0.map(\.entry.key) })")
        }
    }

    @Test("a watch of several ranges: each from its own revision; a range added later from its listing, one removed stops", arguments: Backend.allCases)
    func rangeWatch(backend: Backend) throws {
        try withStore(backend) { store, _ in
            try store.put("dnsd/v1/endpoints/a/1", Array("a1".utf8))
            let (_, revisionA) = try store.list(prefix: "dnsd/v1/endpoints/a/")
            try store.put("dnsd/v1/endpoints/b/1", Array("b1".utf8))
            let seen = Mutex<[String]>([])
            func keys() -> [String] { seen.withLock { $0 } }
            func wait(for count: Int) { for _ in 0..<300 where keys().count < count { usleep(10_000) } }
            let watch = try store.watch(ranges: ["dnsd/v1/endpoints/a/": revisionA + 1, "dnsd/v1/networks/": revisionA + 1],
                                        events: { batch in seen.withLock { $0 += batch.map { "\($0.kind == .put ? "put" : "delete") \($0.entry.key)" } } },
                                        failed: { _ in })
            defer { watch.cancel() }
            try store.put("dnsd/v1/endpoints/a/2", Array("a2".utf8))
            try store.put("dnsd/v1/endpoints/b/2", Array("b2".utf8))
            try store.put("dnsd/v1/networks/n", Array("n".utf8))
            wait(for: 2)
            #expect(Set(keys()) == ["put dnsd/v1/endpoints/a/2", "put dnsd/v1/networks/n"], "\(keys())")
            // b joins, from a listing: its later changes come, what the listing had does not.
            let (listed, revisionB) = try store.list(prefix: "dnsd/v1/endpoints/b/")
            #expect(listed.map(\.key) == ["dnsd/v1/endpoints/b/1", "dnsd/v1/endpoints/b/2"])
            // Between the caller's listing and the watch: b/2 goes (every store reports it:
            // etcd and the local store from history, Consul from the keys the caller listed).
            try store.delete("dnsd/v1/endpoints/b/2")
            watch.add(prefix: "dnsd/v1/endpoints/b/", from: revisionB + 1, listed: Set(listed.map(\.key)))
            try store.put("dnsd/v1/endpoints/b/3", Array("b3".utf8))
            try store.put("dnsd/v1/endpoints/a/3", Array("a3".utf8))
            wait(for: 5)
            #expect(Array(keys().dropFirst(2)).sorted() == ["delete dnsd/v1/endpoints/b/2", "put dnsd/v1/endpoints/a/3", "put dnsd/v1/endpoints/b/3"], "\(keys())")
            // a leaves: its changes stop; b's go on, and a's history did not come again.
            watch.remove(prefix: "dnsd/v1/endpoints/a/")
            usleep(100_000)
            try store.put("dnsd/v1/endpoints/a/4", Array("a4".utf8))
            try store.delete("dnsd/v1/endpoints/b/1")
            wait(for: 6)
            usleep(300_000)
            #expect(Array(keys().dropFirst(5)) == ["delete dnsd/v1/endpoints/b/1"], "\(keys())")
        }
    }
}

@Suite("etcd specifics", .timeLimit(.minutes(5)))
struct EtcdSpecificTests {
    @Test("a watch from a compacted revision reports it (re-read, then watch again)")
    func compacted() throws {
        let server = try EtcdServer()
        defer { server.stop() }
        let store = EtcdStore(endpoints: [server.endpoint], logger: Logger(label: "t"))
        do {
            for i in 0..<5 { try store.put("k", Array("\(i)".utf8)) }
            let head = try store.list(prefix: "k").revision
            _ = try Shell.check(["curl", "-s", "-X", "POST", "http://\(server.endpoint)/v3/kv/compaction", "-d", "{\"revision\": \"\(head)\"}"])
            let failure = Mutex<StoreError?>(nil)
            let handle = try store.watch(prefix: "k", from: 2, events: { _ in }, failed: { error in failure.withLock { $0 = error } })
            for _ in 0..<200 where failure.withLock({ $0 }) == nil { usleep(10_000) }
            handle.cancel()
            #expect(failure.withLock { $0 } == .compacted(revision: head))
        }
    }

    @Test("a store that is down fails fast with a clear error")
    func storeDown() throws {
        let port = try EtcdServer.freePort()
        let store = EtcdStore(endpoints: ["127.0.0.1:\(port)"], timeoutMilliseconds: 500, logger: Logger(label: "t"))
        let start = Date()
        #expect(throws: StoreError.self) { try store.get("k") }
        do { _ = try store.get("k") } catch let error as StoreError {
            #expect("\(error)".contains("store unavailable"))
        }
        #expect(Date().timeIntervalSince(start) < 2)
    }
}
