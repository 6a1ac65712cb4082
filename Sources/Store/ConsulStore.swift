import Foundation
import Logging

/// Consul's KV HTTP API (`/v1/kv`, `?recurse`, `?cas=`, blocking queries with `?index=`
/// and X-Consul-Index, sessions with a TTL and `behavior=delete` attached with `?acquire=`).
/// Consul has no event stream: a watch is a loop of blocking queries whose listings are diffed
/// into put and delete events, with X-Consul-Index as the revision.
public final class ConsulStore: KeyValueStore, @unchecked Sendable {
    private let address: String
    private let client: HTTPClientPool
    private let logger: Logger

    public init(address: String, timeoutMilliseconds: Int = 2000, logger: Logger) {
        self.address = address
        client = HTTPClientPool(timeoutMilliseconds: timeoutMilliseconds)
        self.logger = logger
    }

    private func url(_ path: String, _ query: String = "") -> String {
        let encoded = path.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? path
        return "http://\(address)\(encoded)" + (query.isEmpty ? "" : "?" + query)
    }

    private func call(_ method: String, _ path: String, query: String = "", body: Data? = nil,
                      timeoutMilliseconds: Int? = nil, http: HTTPClient? = nil, accepting: Set<Int> = [200, 404]) throws -> (status: Int, body: Data, index: Int64) {
        let reply = try http.map { try $0.request(method, url(path, query), body: body, timeoutMilliseconds: timeoutMilliseconds) }
            ?? client.request(method, url(path, query), body: body, timeoutMilliseconds: timeoutMilliseconds)
        guard accepting.contains(reply.status) else {
            throw StoreError.refused(operation: "\(method) \(path)", status: reply.status, detail: String(decoding: reply.body.prefix(300), as: UTF8.self))
        }
        return (reply.status, reply.body, Int64(reply.headers["x-consul-index"] ?? "") ?? 0)
    }

    /// The entries of a KV reply (an entry without a key is left out, the others kept).
    static func entries(_ body: Data, operation: String) throws -> [KeyValue] {
        guard !body.isEmpty else { return [] }
        guard let list = try? JSONSerialization.jsonObject(with: body) as? [Any] else {
            throw StoreError.malformed(operation: operation, detail: "not a JSON list")
        }
        return list.compactMap { element in
            guard let item = element as? [String: Any], let key = item["Key"] as? String, !key.isEmpty else { return nil }
            let value = (item["Value"] as? String).flatMap { Data(base64Encoded: $0) } ?? Data()
            let session = item["Session"] as? String
            return KeyValue(key: key, value: Array(value),
                            createRevision: (item["CreateIndex"] as? NSNumber)?.int64Value ?? 0,
                            modRevision: (item["ModifyIndex"] as? NSNumber)?.int64Value ?? 0,
                            lease: session.map(LeaseID.init))
        }
    }

    private static func truth(_ body: Data) -> Bool {
        String(decoding: body, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) == "true"
    }

    public func get(_ key: String) throws -> KeyValue? {
        let reply = try call("GET", "/v1/kv/\(key)")
        return reply.status == 404 ? nil : try Self.entries(reply.body, operation: "get \(key)").first
    }

    public func list(prefix: String) throws -> (entries: [KeyValue], revision: Int64) {
        let reply = try call("GET", "/v1/kv/\(prefix)", query: "recurse")
        let entries = reply.status == 404 ? [] : try Self.entries(reply.body, operation: "list \(prefix)")
        return (entries.sorted { $0.key < $1.key }, reply.index)
    }

    @discardableResult
    public func put(_ key: String, _ value: [UInt8], lease: LeaseID?) throws -> Int64 {
        let reply = try call("PUT", "/v1/kv/\(key)", query: lease.map { "acquire=\($0.raw)" } ?? "", body: Data(value))
        guard Self.truth(reply.body) else {
            throw StoreError.refused(operation: "put \(key)", status: 200, detail: "not written (session invalid or key locked)")
        }
        return try get(key)?.modRevision ?? reply.index
    }

    @discardableResult
    public func delete(_ key: String) throws -> Bool {
        let existed = try get(key) != nil
        _ = try call("DELETE", "/v1/kv/\(key)")
        return existed
    }

    /// `DELETE ?cas=INDEX`: deleted only while the key's ModifyIndex is INDEX (Consul takes no
    /// action on cas=0, and neither is 0 a revision a key can have).
    public func delete(_ key: String, ifUnchangedSince expected: Int64) throws -> Bool {
        guard expected > 0 else { return false }
        return Self.truth(try call("DELETE", "/v1/kv/\(key)", query: "cas=\(expected)").body)
    }

    /// `PUT /v1/txn`: `check-not-exists` / `check-index` for the conditions, then `lock` (under
    /// the session, like `?acquire=`) or `set` per put; 200 when applied, 409 when rolled back.
    public func commit(_ conditions: [KeyCondition], puts: [(key: String, value: [UInt8])], unleasedPuts: [(key: String, value: [UInt8])],
                       deletes: [String], lease: LeaseID?) throws -> Bool {
        var operations: [[String: Any]] = conditions.map { condition in
            switch condition {
            case .absent(let key): ["KV": ["Verb": "check-not-exists", "Key": key]]
            case .unchanged(let key, let revision): ["KV": ["Verb": "check-index", "Key": key, "Index": revision]]
            case .heldBy(let key, let lease): ["KV": ["Verb": "check-session", "Key": key, "Session": lease.raw]]
            }
        }
        for (key, value) in puts {
            var operation: [String: Any] = ["Verb": lease == nil ? "set" : "lock", "Key": key, "Value": Data(value).base64EncodedString()]
            if let lease { operation["Session"] = lease.raw }
            operations.append(["KV": operation])
        }
        for (key, value) in unleasedPuts {
            operations.append(["KV": ["Verb": "set", "Key": key, "Value": Data(value).base64EncodedString()]])
        }
        for key in deletes { operations.append(["KV": ["Verb": "delete", "Key": key]]) }
        let body = try JSONSerialization.data(withJSONObject: operations)
        return try call("PUT", "/v1/txn", body: body, accepting: [200, 409]).status == 200
    }

    public func create(_ key: String, _ value: [UInt8], lease: LeaseID?) throws -> Bool {
        try compareAndSwap(key, expected: 0, value, lease: lease)
    }

    public func compareAndSwap(_ key: String, expected: Int64, _ value: [UInt8], lease: LeaseID?) throws -> Bool {
        var query = "cas=\(expected)"
        if let lease { query += "&acquire=\(lease.raw)" }
        return Self.truth(try call("PUT", "/v1/kv/\(key)", query: query, body: Data(value)).body)
    }

    /// Consul's bounds on a session TTL: a shorter lease is granted as 10 s. Consul itself may
    /// take up to twice the TTL to invalidate a lapsed session, so on Consul a dead host's names
    /// vanish 10-20 s after its last keep-alive, whatever `--lease-ttl` says below 10.
    public static let sessionTTLRange = 10...86400

    /// A session (Consul's lease): `Behavior: delete`, so its keys go with it (Consul's default
    /// only releases them), and `LockDelay: 0s`, so a name or address a dead host held can be
    /// taken again at once (Consul's default waits 15 s).
    public func grantLease(ttl seconds: Int) throws -> LeaseID {
        let ttl = min(max(seconds, Self.sessionTTLRange.lowerBound), Self.sessionTTLRange.upperBound)
        if ttl != seconds { logger.info("Consul session TTL \(seconds) s is outside Consul's bounds; using \(ttl) s") }
        let body = try JSONSerialization.data(withJSONObject: ["TTL": "\(ttl)s", "Behavior": "delete", "LockDelay": "0s"])
        let reply = try call("PUT", "/v1/session/create", body: body)
        guard let object = try? JSONSerialization.jsonObject(with: reply.body) as? [String: Any], let id = object["ID"] as? String else {
            throw StoreError.malformed(operation: "session create", detail: "no ID")
        }
        return LeaseID(id)
    }

    public func keepAlive(_ lease: LeaseID) throws -> Bool {
        try call("PUT", "/v1/session/renew/\(lease.raw)").status == 200
    }

    public func revoke(_ lease: LeaseID) throws {
        _ = try call("PUT", "/v1/session/destroy/\(lease.raw)")
    }

    public func watch(ranges: [String: Int64],
                      events: @escaping @Sendable ([WatchEvent]) -> Void,
                      failed: @escaping @Sendable (StoreError) -> Void) throws -> any RangeWatch {
        let watch = ConsulRangeWatch(store: self, logger: logger, events: events)
        for (prefix, revision) in ranges { watch.add(prefix: prefix, from: revision) }
        return watch
    }

    /// One blocking query: returns when the listing changes after `index` (or after `wait`).
    fileprivate func blockingList(_ prefix: String, after index: Int64, http: HTTPClient) throws -> (entries: [KeyValue], index: Int64) {
        let reply = try call("GET", "/v1/kv/\(prefix)", query: "recurse&index=\(index)&wait=1s", timeoutMilliseconds: 5000, http: http)
        return (reply.status == 404 ? [] : try Self.entries(reply.body, operation: "watch \(prefix)"), reply.index)
    }
}

/// Several prefixes watched at once: Consul has no multi-range stream, so one blocking-query
/// loop (`ConsulWatch`, its own thread) per prefix.
final class ConsulRangeWatch: RangeWatch, @unchecked Sendable {
    private let store: ConsulStore
    private let logger: Logger
    private let events: @Sendable ([WatchEvent]) -> Void
    private let loops = PrefixLoops()

    init(store: ConsulStore, logger: Logger, events: @escaping @Sendable ([WatchEvent]) -> Void) {
        self.store = store
        self.logger = logger
        self.events = events
    }

    func add(prefix: String, from revision: Int64) { add(prefix: prefix, from: revision, listed: []) }

    func add(prefix: String, from revision: Int64, listed: Set<String>) {
        let watch = ConsulWatch(store: store, prefix: prefix, from: revision, listed: listed, logger: logger, events: events)
        loops.start(prefix, name: "dnsd-consul-watch") { watch.run($0) }
    }

    func remove(prefix: String) { loops.stop(prefix) }

    func cancel() { loops.stopAll() }
}

/// The loop of a Consul watch of one prefix; its state is touched only by the watch's thread.
/// It starts from a listing of its own, taken as what the caller has seen (entries changed
/// before `revision`), and the keys the caller's listing had (`listed`) that are gone from it
/// are reported deleted: Consul keeps no history to replay between the two listings.
/// Consul has no compaction to report, so it never fails: errors are retried.
final class ConsulWatch: @unchecked Sendable {
    private let store: ConsulStore
    private let prefix: String
    private let revision: Int64
    private let listed: Set<String>
    private var known: [String: KeyValue] = [:]
    private var index: Int64
    private let logger: Logger
    private let events: @Sendable ([WatchEvent]) -> Void

    init(store: ConsulStore, prefix: String, from revision: Int64, listed: Set<String> = [], logger: Logger,
         events: @escaping @Sendable ([WatchEvent]) -> Void) {
        self.store = store
        self.prefix = prefix
        self.revision = revision
        self.listed = listed
        self.index = revision - 1
        self.logger = logger
        self.events = events
    }

    func run(_ thread: WatchThread) {
        let http = HTTPClient(timeoutMilliseconds: 5000, interruptible: true)
        thread.onCancel { http.interrupt() }
        // The starting listing is what the caller has seen at `revision - 1`; what the caller
        // listed and this listing lacks went in between.
        while !thread.isCancelled {
            do {
                let (entries, index) = try store.list(prefix: prefix)
                known = Dictionary(entries.filter { $0.modRevision < revision }.map { ($0.key, $0) }, uniquingKeysWith: { first, _ in first })
                let present = Set(entries.map(\.key))
                let gone = listed.filter { !present.contains($0) }.sorted().map {
                    WatchEvent(kind: .delete, entry: KeyValue(key: $0, value: [], createRevision: 0, modRevision: max(index, revision)))
                }
                if !gone.isEmpty { events(gone) }
                break
            } catch {
                logger.debug("consul watch: \(error)")
                Thread.sleep(forTimeInterval: 0.1)
            }
        }
        while !thread.isCancelled {
            let listing: (entries: [KeyValue], index: Int64)
            do { listing = try store.blockingList(prefix, after: index, http: http) } catch {
                if thread.isCancelled { return }
                logger.debug("consul watch: \(error)")
                Thread.sleep(forTimeInterval: 0.1)
                continue
            }
            // Consul resets the index if it goes backwards (e.g. a restored server): start over.
            // The listing is compared with what is known whatever its index says: after a reset
            // the index can climb back to the very number this watch last saw, and skipping an
            // "unchanged" index would then miss every change made since.
            if listing.index < index { index = 0 }
            var batch: [WatchEvent] = []
            let current = Dictionary(uniqueKeysWithValues: listing.entries.map { ($0.key, $0) })
            for entry in listing.entries.sorted(by: { $0.modRevision < $1.modRevision })
                where known[entry.key]?.modRevision != entry.modRevision {
                batch.append(WatchEvent(kind: .put, entry: entry))
            }
            for (key, old) in known where current[key] == nil {
                var gone = old
                gone.modRevision = listing.index
                gone.value = []
                batch.append(WatchEvent(kind: .delete, entry: gone))
            }
            known = current
            index = listing.index
            if !batch.isEmpty && !thread.isCancelled { events(batch) }
        }
    }
}
