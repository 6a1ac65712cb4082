import Foundation
import Logging

/// etcd v3 through its JSON gateway (`/v3/...`, keys and values base64, int64 as strings,
/// proto3 zero values omitted). Kept-alive connections for requests, as many as are used at once
/// (`HTTPClientPool`); each watch has its own streaming connection on its own thread, resuming
/// from the last revision seen.
public final class EtcdStore: KeyValueStore, @unchecked Sendable {
    private let endpoints: [String]
    private let client: HTTPClientPool
    private let logger: Logger
    private let lock = NSLock()
    private var current = 0

    /// `endpoints`: `host:port` of the cluster's members, tried in turn.
    public init(endpoints: [String], timeoutMilliseconds: Int = 2000, logger: Logger) {
        precondition(!endpoints.isEmpty)
        self.endpoints = endpoints
        self.client = HTTPClientPool(timeoutMilliseconds: timeoutMilliseconds)
        self.logger = logger
    }

    // MARK: requests

    /// POSTs to the current member, moving on to the next when one cannot be reached.
    private func call(_ path: String, _ body: [String: Any]) throws -> [String: Any] {
        let data = try JSONSerialization.data(withJSONObject: body)
        var lastError: Error = StoreError.unavailable(operation: path, detail: "no endpoint")
        for attempt in 0..<endpoints.count {
            let endpoint = lock.withLock { endpoints[(current + attempt) % endpoints.count] }
            do {
                let (status, reply) = try client.post("http://\(endpoint)\(path)", body: data)
                guard status == 200 else {
                    throw StoreError.refused(operation: path, status: status, detail: String(decoding: reply.prefix(300), as: UTF8.self))
                }
                guard let object = try? JSONSerialization.jsonObject(with: reply) as? [String: Any] else {
                    throw StoreError.malformed(operation: path, detail: "not a JSON object")
                }
                lock.withLock { current = (current + attempt) % endpoints.count }
                return object
            } catch let error as StoreError {
                if case .unavailable = error { lastError = error; continue }
                throw error
            }
        }
        throw lastError
    }

    private static func b64(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }
    private static func b64(_ text: String) -> String { Data(text.utf8).base64EncodedString() }

    /// int64 fields arrive as strings (or are omitted when zero).
    private static func int64(_ value: Any?) -> Int64 {
        if let text = value as? String { return Int64(text) ?? 0 }
        if let number = value as? NSNumber { return number.int64Value }
        return 0
    }

    private static func keyValue(_ object: Any?, operation: String) throws -> KeyValue {
        guard let kv = object as? [String: Any], let key64 = kv["key"] as? String, let key = Data(base64Encoded: key64), !key.isEmpty else {
            throw StoreError.malformed(operation: operation, detail: "entry without a key")
        }
        let value = (kv["value"] as? String).flatMap { Data(base64Encoded: $0) } ?? Data()
        let lease = int64(kv["lease"])
        return KeyValue(key: String(decoding: key, as: UTF8.self), value: Array(value),
                        createRevision: int64(kv["create_revision"]), modRevision: int64(kv["mod_revision"]),
                        lease: lease == 0 ? nil : LeaseID(String(lease)))
    }

    private static func revision(_ reply: [String: Any]) -> Int64 {
        int64((reply["header"] as? [String: Any])?["revision"])
    }

    private static func putRequest(_ key: String, _ value: [UInt8], _ lease: LeaseID?) -> [String: Any] {
        var request: [String: Any] = ["key": b64(key), "value": b64(value)]
        if let lease { request["lease"] = lease.raw }
        return request
    }

    // MARK: KeyValueStore

    public func get(_ key: String) throws -> KeyValue? {
        let reply = try call("/v3/kv/range", ["key": Self.b64(key)])
        guard let kvs = reply["kvs"] as? [Any], let first = kvs.first else { return nil }
        return try Self.keyValue(first, operation: "get \(key)")
    }

    public func list(prefix: String) throws -> (entries: [KeyValue], revision: Int64) {
        let reply = try call("/v3/kv/range", ["key": Self.b64(prefix), "range_end": Self.b64(prefix.prefixRangeEnd)])
        var entries: [KeyValue] = []
        for raw in (reply["kvs"] as? [Any]) ?? [] {
            do { entries.append(try Self.keyValue(raw, operation: "list \(prefix)")) } catch {
                logger.warning("etcd: skipping an unreadable entry of a listing", metadata: ["prefix": "\(prefix)", "error": "\(error)"])
            }
        }
        return (entries, Self.revision(reply))
    }

    @discardableResult
    public func put(_ key: String, _ value: [UInt8], lease: LeaseID? = nil) throws -> Int64 {
        Self.revision(try call("/v3/kv/put", Self.putRequest(key, value, lease)))
    }

    @discardableResult
    public func delete(_ key: String) throws -> Bool {
        Self.int64(try call("/v3/kv/deleterange", ["key": Self.b64(key)])["deleted"]) > 0
    }

    public func create(_ key: String, _ value: [UInt8], lease: LeaseID? = nil) throws -> Bool {
        try commit([.absent(key)], puts: [(key, value)], lease: lease)
    }

    public func compareAndSwap(_ key: String, expected: Int64, _ value: [UInt8], lease: LeaseID? = nil) throws -> Bool {
        try commit([.unchanged(key, modRevision: expected)], puts: [(key, value)], lease: lease)
    }

    public func delete(_ key: String, ifUnchangedSince expected: Int64) throws -> Bool {
        let reply = try call("/v3/kv/txn", [
            "compare": [Self.compare(.unchanged(key, modRevision: expected))],
            "success": [["request_delete_range": ["key": Self.b64(key)]]],
        ])
        // An absent key compares as mod_revision 0: the txn succeeds having deleted nothing.
        guard reply["succeeded"] as? Bool ?? false, let responses = reply["responses"] as? [[String: Any]],
              let deleted = responses.first?["response_delete_range"] as? [String: Any] else { return false }
        return Self.int64(deleted["deleted"]) > 0
    }

    public func commit(_ conditions: [KeyCondition], puts: [(key: String, value: [UInt8])], unleasedPuts: [(key: String, value: [UInt8])],
                       deletes: [String], lease: LeaseID?) throws -> Bool {
        let requests: [[String: Any]] = puts.map { ["request_put": Self.putRequest($0.key, $0.value, lease)] }
            + unleasedPuts.map { ["request_put": Self.putRequest($0.key, $0.value, nil)] }
            + deletes.map { ["request_delete_range": ["key": Self.b64($0)]] }
        let reply = try call("/v3/kv/txn", ["compare": conditions.map(Self.compare), "success": requests])
        // A failed txn has no "succeeded" at all (proto3 omits false).
        return reply["succeeded"] as? Bool ?? false
    }

    /// A txn compare: absent is "created at revision 0", unchanged "last modified at revision N",
    /// held "attached to lease L".
    private static func compare(_ condition: KeyCondition) -> [String: Any] {
        switch condition {
        case .absent(let key): ["target": "CREATE", "result": "EQUAL", "key": b64(key), "create_revision": "0"]
        case .unchanged(let key, let revision): ["target": "MOD", "result": "EQUAL", "key": b64(key), "mod_revision": String(revision)]
        // An absent key compares as lease 0, which no lease is: the condition fails.
        case .heldBy(let key, let lease): ["target": "LEASE", "result": "EQUAL", "key": b64(key), "lease": lease.raw]
        }
    }

    public func grantLease(ttl seconds: Int) throws -> LeaseID {
        let reply = try call("/v3/lease/grant", ["TTL": String(seconds)])
        let id = Self.int64(reply["ID"])
        guard id != 0 else { throw StoreError.malformed(operation: "lease grant", detail: "no lease ID") }
        return LeaseID(String(id))
    }

    public func keepAlive(_ lease: LeaseID) throws -> Bool {
        // An expired lease still answers 200, with no TTL.
        let reply = try call("/v3/lease/keepalive", ["ID": lease.raw])
        let result = reply["result"] as? [String: Any] ?? reply
        return Self.int64(result["TTL"]) > 0
    }

    public func revoke(_ lease: LeaseID) throws {
        do { _ = try call("/v3/lease/revoke", ["ID": lease.raw]) } catch StoreError.refused(_, let status, _) where status == 404 {
            return
        }
    }

    public func watch(ranges: [String: Int64],
                      events: @escaping @Sendable ([WatchEvent]) -> Void,
                      failed: @escaping @Sendable (StoreError) -> Void) throws -> any RangeWatch {
        let watch = EtcdRangeWatch(endpoints: endpoints, logger: logger, events: events, failed: failed)
        for (prefix, revision) in ranges { watch.add(prefix: prefix, from: revision) }
        return watch
    }

    /// One message of a watch stream: its events (an event without a readable key is left
    /// out, the others kept), or the compaction that cancelled the watch.
    static func decodeEvents(_ object: [String: Any]) -> (events: [WatchEvent], compacted: Int64?, skipped: Int) {
        let result = object["result"] as? [String: Any] ?? object
        let compacted = int64(result["compact_revision"])
        if compacted > 0 { return ([], compacted, 0) }
        let list = (result["events"] as? [Any]) ?? []
        var skipped = 0
        let events = list.compactMap { raw -> WatchEvent? in
            let event = raw as? [String: Any] ?? [:]
            // PUT events have no "type" (proto3 zero value); only "DELETE" appears.
            let kind: WatchEvent.Kind = (event["type"] as? String) == "DELETE" ? .delete : .put
            do { return WatchEvent(kind: kind, entry: try keyValue(event["kv"], operation: "watch")) } catch {
                skipped += 1
                return nil
            }
        }
        return (events, nil, skipped)
    }
}
