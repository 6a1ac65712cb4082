import Foundation
import Logging
@testable import Store
import Synchronization
import TestSupport
import Testing

/// The Consul double is as strict as Consul's documented API (issue 16), and the client is
/// correct under it: session TTL bounds, a lapsed session kept up to twice its TTL, the default
/// behaviour and lock delay, the transaction size limit, an index that goes backwards.
@Suite("Consul double: as strict as Consul, and the client under it", .serialized, .timeLimit(.minutes(5)))
struct ConsulDoubleTests {
    /// A fresh double and its address.
    private func withDouble(_ body: (String) throws -> Void) throws {
        let port = try Ports.free()
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("consul_double.py").path
        let double = try ChildProcess(["python3", script, "\(port)"])
        defer { double.stop() }
        for _ in 0..<200 {
            if (try? Shell.run(["curl", "-s", "-m", "1", "http://127.0.0.1:\(port)/v1/kv/probe"], timeout: 5))?.status == 0 { break }
            usleep(20_000)
        }
        try body("127.0.0.1:\(port)")
    }

    private func curl(_ address: String, _ method: String, _ path: String, _ body: String? = nil) throws -> (status: Int, body: String) {
        var arguments = ["curl", "-s", "-m", "5", "-o", "/dev/stdout", "-w", "\n%{http_code}", "-X", method, "http://\(address)\(path)"]
        if let body { arguments += ["--data-binary", body] }
        let out = try Shell.check(arguments, timeout: 10)
        let lines = out.split(separator: "\n", omittingEmptySubsequences: false)
        return (Int(lines.last ?? "") ?? 0, lines.dropLast().joined(separator: "\n"))
    }

    static var logger: Logger { Logger(label: "t") { _ in SwiftLogNoOpLogHandler() } }

    @Test("session TTL bounds and Go durations; the client asks for at least 10 s")
    func sessionTTL() throws {
        try withDouble { address in
            #expect(try curl(address, "PUT", "/v1/session/create", #"{"TTL":"5s"}"#).status == 400)
            #expect(try curl(address, "PUT", "/v1/session/create", #"{"TTL":"200000s"}"#).status == 400)
            #expect(try curl(address, "PUT", "/v1/session/create", #"{"TTL":"5m"}"#).status == 200)
            #expect(try curl(address, "GET", "/v1/kv/x?index=1&wait=1s").status == 404)
            #expect(try curl(address, "GET", "/v1/kv/x?index=1&wait=soon").status == 400)
            // The client's 3 s lease becomes a 10 s session (not a 400).
            let store = ConsulStore(address: address, logger: Self.logger)
            let lease = try store.grantLease(ttl: 3)
            #expect(try store.keepAlive(lease))
        }
    }

    @Test("Consul's defaults: an invalidated session releases (keeps) its keys and delays their next lock 15 s; the client asks for delete and no delay")
    func behaviourAndLockDelay() throws {
        try withDouble { address in
            // Defaults, by hand: release, and a lock delay.
            let created = try curl(address, "PUT", "/v1/session/create", #"{"TTL":"10s"}"#)
            let sid = try #require((try JSONSerialization.jsonObject(with: Data(created.body.utf8)) as? [String: Any])?["ID"] as? String)
            #expect(try curl(address, "PUT", "/v1/kv/held?acquire=\(sid)", "x").body == "true")
            #expect(try curl(address, "PUT", "/v1/session/destroy/\(sid)").status == 200)
            #expect(try curl(address, "GET", "/v1/kv/held").status == 200, "released, not deleted")
            let other = try curl(address, "PUT", "/v1/session/create", #"{"TTL":"10s"}"#)
            let sid2 = try #require((try JSONSerialization.jsonObject(with: Data(other.body.utf8)) as? [String: Any])?["ID"] as? String)
            #expect(try curl(address, "PUT", "/v1/kv/held?acquire=\(sid2)", "y").body == "false", "lock delay")
            // The client: its keys go with its session, and are free at once.
            let store = ConsulStore(address: address, logger: Self.logger)
            let lease = try store.grantLease(ttl: 10)
            #expect(try store.create("dnsd/v1/names/c01", Array("h1".utf8), lease: lease))
            try store.revoke(lease)
            #expect(try store.get("dnsd/v1/names/c01") == nil)
            let next = try store.grantLease(ttl: 10)
            #expect(try store.create("dnsd/v1/names/c01", Array("h2".utf8), lease: next))
        }
    }

    @Test("a lapsed session lives up to twice its TTL: keys stay 10 s after the last renewal, go by 20 s")
    func lapsedSession() throws {
        try withDouble { address in
            let store = ConsulStore(address: address, logger: Self.logger)
            let lease = try store.grantLease(ttl: 10)
            try store.put("dnsd/v1/hosts/h1", Array("x".utf8), lease: lease)
            let renewed = Date()
            sleep(11)
            #expect(try store.get("dnsd/v1/hosts/h1") != nil, "gone at the TTL: Consul may keep it up to twice as long")
            while try store.get("dnsd/v1/hosts/h1") != nil, Date().timeIntervalSince(renewed) < 25 { usleep(200_000) }
            #expect(try store.get("dnsd/v1/hosts/h1") == nil)
            #expect(Date().timeIntervalSince(renewed) < 22)
            #expect(try !store.keepAlive(lease))
        }
    }

    @Test("transactions over 64 operations are refused (413); the client's batches stay within")
    func transactionLimit() throws {
        try withDouble { address in
            let operations = (0..<65).map { "{\"KV\":{\"Verb\":\"set\",\"Key\":\"k\($0)\",\"Value\":\"eA==\"}}" }
            let refused = try curl(address, "PUT", "/v1/txn", "[" + operations.joined(separator: ",") + "]")
            #expect(refused.status == 413)
            let store = ConsulStore(address: address, logger: Self.logger)
            let puts: [(key: String, value: [UInt8])] = (0..<KeyCondition.maximumOperations).map { ("k\($0)", Array("v".utf8)) }
            let committed = try store.commit([], puts: puts, lease: nil)
            #expect(committed)
        }
    }

    @Test("an index that goes backwards (a restored server): the watch starts over and misses nothing")
    func indexReset() throws {
        try withDouble { address in
            let store = ConsulStore(address: address, logger: Self.logger)
            try store.put("dnsd/v1/endpoints/a", Array("1".utf8))
            let (_, revision) = try store.list(prefix: "dnsd/v1/endpoints/")
            let seen = Mutex<[String]>([])
            let handle = try store.watch(prefix: "dnsd/v1/endpoints/", from: revision + 1, events: { batch in
                seen.withLock { $0 += batch.map { "\($0.kind) \($0.entry.key)" } }
            }, failed: { _ in })
            defer { handle.cancel() }
            try store.put("dnsd/v1/endpoints/b", Array("2".utf8))
            for _ in 0..<100 where seen.withLock({ $0.count }) < 1 { usleep(20_000) }
            #expect(try curl(address, "PUT", "/v1/test/reset-index?to=1").status == 200)
            try store.put("dnsd/v1/endpoints/c", Array("3".utf8))
            try store.delete("dnsd/v1/endpoints/a")
            for _ in 0..<200 where seen.withLock({ $0.count }) < 3 { usleep(20_000) }
            #expect(seen.withLock { $0 } == ["put dnsd/v1/endpoints/b", "put dnsd/v1/endpoints/c", "delete dnsd/v1/endpoints/a"],
                    "\(seen.withLock { $0 })")
        }
    }
}
