import Store
import Synchronization

/// A store through which a rival host writes `rivalValue` to `key` just before this client's
/// next conditional write or delete of it: the race between a read and a write, made to happen
/// every time. Everything else goes straight to `inner`.
final class RivalStore: KeyValueStore {
    let inner: any KeyValueStore
    let key: String
    let rivalValue: [UInt8]
    /// Other keys the rival writes in the same move.
    let alsoWrites: [(key: String, value: [UInt8])]
    private let armed = Atomic<Bool>(true)

    init(_ inner: any KeyValueStore, key: String, rivalValue: [UInt8], alsoWrites: [(key: String, value: [UInt8])] = []) {
        self.inner = inner
        self.key = key
        self.rivalValue = rivalValue
        self.alsoWrites = alsoWrites
    }

    private func rivalMoves(_ key: String) throws {
        guard key == self.key, armed.exchange(false, ordering: .relaxed) else { return }
        for (other, value) in alsoWrites { try inner.put(other, value, lease: nil) }
        try inner.put(key, rivalValue, lease: nil)
    }

    func get(_ key: String) throws -> KeyValue? { try inner.get(key) }
    func list(prefix: String) throws -> (entries: [KeyValue], revision: Int64) { try inner.list(prefix: prefix) }
    func put(_ key: String, _ value: [UInt8], lease: LeaseID?) throws -> Int64 { try inner.put(key, value, lease: lease) }
    func delete(_ key: String) throws -> Bool { try inner.delete(key) }
    func create(_ key: String, _ value: [UInt8], lease: LeaseID?) throws -> Bool {
        try rivalMoves(key)
        return try inner.create(key, value, lease: lease)
    }
    func compareAndSwap(_ key: String, expected: Int64, _ value: [UInt8], lease: LeaseID?) throws -> Bool {
        try rivalMoves(key)
        return try inner.compareAndSwap(key, expected: expected, value, lease: lease)
    }
    func delete(_ key: String, ifUnchangedSince expected: Int64) throws -> Bool {
        try rivalMoves(key)
        return try inner.delete(key, ifUnchangedSince: expected)
    }
    func commit(_ conditions: [KeyCondition], puts: [(key: String, value: [UInt8])], unleasedPuts: [(key: String, value: [UInt8])],
                deletes: [String], lease: LeaseID?) throws -> Bool {
        for condition in conditions {
            switch condition {
            case .absent(let key), .unchanged(let key, _), .heldBy(let key, _): try rivalMoves(key)
            }
        }
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
