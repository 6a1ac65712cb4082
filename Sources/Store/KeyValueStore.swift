/// One stored key with its value and etcd-style revisions.
public struct KeyValue: Sendable, Equatable {
    public var key: String
    public var value: [UInt8]
    /// Revision at which the key was created (0: it does not exist).
    public var createRevision: Int64
    /// Revision of its last change: what a compare-and-swap compares.
    public var modRevision: Int64
    public var lease: LeaseID?

    public init(key: String, value: [UInt8], createRevision: Int64, modRevision: Int64, lease: LeaseID? = nil) {
        self.key = key
        self.value = value
        self.createRevision = createRevision
        self.modRevision = modRevision
        self.lease = lease
    }

    public var text: String { String(decoding: value, as: UTF8.self) }
}

/// A change seen by a watch.
public struct WatchEvent: Sendable, Equatable {
    public enum Kind: Sendable, Equatable { case put, delete }
    public var kind: Kind
    public var entry: KeyValue
}

/// A lease (etcd: a 64-bit integer in decimal, which exceeds 2^53 so it is never carried
/// through a Double) or a session (Consul: a UUID): keys attached to it vanish when it is not
/// kept alive.
public struct LeaseID: Hashable, Sendable, CustomStringConvertible {
    public var raw: String
    public init(_ raw: String) { self.raw = raw }
    public var description: String { raw }
}

/// Why a store call failed.
public enum StoreError: Error, CustomStringConvertible, Equatable {
    /// The store could not be reached or did not answer in time.
    case unavailable(operation: String, detail: String)
    /// The store answered something dnsd cannot read.
    case malformed(operation: String, detail: String)
    /// The store refused the request.
    case refused(operation: String, status: Int, detail: String)
    /// A watch asked for history the store has compacted away: re-read, then watch again.
    case compacted(revision: Int64)

    public var description: String {
        switch self {
        case .unavailable(let operation, let detail): "store unavailable (\(operation)): \(detail)"
        case .malformed(let operation, let detail): "store answer not understood (\(operation)): \(detail)"
        case .refused(let operation, let status, let detail): "store refused \(operation) (HTTP \(status)): \(detail)"
        case .compacted(let revision): "store history compacted up to revision \(revision)"
        }
    }
}

/// A running watch; `cancel()` stops it and waits until no handler call is in progress.
/// What must be true of a key for `KeyValueStore.commit` to write.
public enum KeyCondition: Sendable, Equatable {
    /// The key does not exist.
    case absent(String)
    /// The key exists and was last changed at this revision.
    case unchanged(String, modRevision: Int64)
    /// The key exists and is held under this lease (etcd: its lease; Consul: locked by this
    /// session): a host's own claim, whatever its revision, and never another's.
    case heldBy(String, lease: LeaseID)

    /// Conditions and puts one commit may carry (Consul takes 64 operations per transaction in
    /// older versions, 128 now; etcd 128 by default).
    public static let maximumOperations = 64
}

public protocol WatchHandle: Sendable {
    func cancel()
}

/// A watch over several key ranges (prefixes), each from its own revision, on one stream where
/// the store has streams (etcd), one blocking query per prefix where it has not (Consul). Ranges
/// come and go while it runs (a host joins and leaves networks). Events arrive in store order
/// within a range; a range's history resumes from its own last revision after a reconnect.
public protocol RangeWatch: WatchHandle {
    /// Watches keys under `prefix` from `revision` on (a prefix already watched is left as is).
    func add(prefix: String, from revision: Int64)
    /// `add`, for a caller that listed the range itself at `revision - 1`: `listed` are the keys
    /// its listing had. A store that replays history (etcd, the local store) needs nothing more;
    /// one that starts from a listing of its own (Consul) reports those gone by then as deleted.
    func add(prefix: String, from revision: Int64, listed: Set<String>)
    /// Stops watching `prefix`. Events under it already on their way may still arrive: a caller
    /// that must see none filters them itself.
    func remove(prefix: String)
}

extension RangeWatch {
    public func add(prefix: String, from revision: Int64, listed: Set<String>) { add(prefix: prefix, from: revision) }
}

/// What dnsd needs of a shared store (DESIGN.md §3): reads, writes, create-if-absent and
/// compare-and-swap for uniqueness, prefix watches that resume from a revision, and leases.
public protocol KeyValueStore: Sendable {
    func get(_ key: String) throws -> KeyValue?
    /// Every key under `prefix`, and the store revision the listing reflects (watch from +1).
    func list(prefix: String) throws -> (entries: [KeyValue], revision: Int64)
    @discardableResult
    func put(_ key: String, _ value: [UInt8], lease: LeaseID?) throws -> Int64
    /// True when the key existed.
    @discardableResult
    func delete(_ key: String) throws -> Bool
    /// Writes only if the key does not exist; true when written.
    func create(_ key: String, _ value: [UInt8], lease: LeaseID?) throws -> Bool
    /// Writes only if the key's modRevision is still `expected`; true when written.
    func compareAndSwap(_ key: String, expected: Int64, _ value: [UInt8], lease: LeaseID?) throws -> Bool
    /// Deletes only if the key's modRevision is still `expected`; true when deleted.
    func delete(_ key: String, ifUnchangedSince expected: Int64) throws -> Bool
    /// Writes every `(key, value)` of `puts` under `lease` and of `unleasedPuts` under none, and
    /// deletes every key of `deletes`, in one atomic step if all `conditions` hold, and nothing
    /// otherwise; true when done. At most `KeyCondition.maximumOperations` conditions, puts and
    /// deletes together (Consul's limit). (A key several hosts rewrite must be unleased: in
    /// Consul a key held by one session cannot be written under another.)
    func commit(_ conditions: [KeyCondition], puts: [(key: String, value: [UInt8])], unleasedPuts: [(key: String, value: [UInt8])],
                deletes: [String], lease: LeaseID?) throws -> Bool
    /// Calls `events` with each batch of changes under each prefix of `ranges` from its revision
    /// on, in order within a prefix; `failed` once if the watch cannot go on (compacted history,
    /// malformed stream). Prefixes must not nest.
    func watch(ranges: [String: Int64],
               events: @escaping @Sendable ([WatchEvent]) -> Void,
               failed: @escaping @Sendable (StoreError) -> Void) throws -> any RangeWatch
    func grantLease(ttl seconds: Int) throws -> LeaseID
    /// False when the lease has already expired (its keys are gone).
    func keepAlive(_ lease: LeaseID) throws -> Bool
    func revoke(_ lease: LeaseID) throws
}

extension String {
    /// The end of the key range holding every key with this prefix: the prefix with its last
    /// byte incremented (etcd's range_end).
    var prefixRangeEnd: [UInt8] {
        var bytes = Array(utf8)
        while let last = bytes.last {
            if last < 0xFF {
                bytes[bytes.count - 1] = last + 1
                return bytes
            }
            bytes.removeLast()
        }
        return [0]
    }
}

extension KeyValueStore {
    /// Calls `events` with each batch of changes under `prefix` from `revision` on, in order;
    /// `failed` once if the watch cannot go on.
    public func watch(prefix: String, from revision: Int64,
                      events: @escaping @Sendable ([WatchEvent]) -> Void,
                      failed: @escaping @Sendable (StoreError) -> Void) throws -> any WatchHandle {
        try watch(ranges: [prefix: revision], events: events, failed: failed)
    }

    /// `commit` with puts only.
    public func commit(_ conditions: [KeyCondition], puts: [(key: String, value: [UInt8])], lease: LeaseID?) throws -> Bool {
        try commit(conditions, puts: puts, unleasedPuts: [], deletes: [], lease: lease)
    }

    /// `commit` with puts under `lease` and deletes.
    public func commit(_ conditions: [KeyCondition], puts: [(key: String, value: [UInt8])], deletes: [String], lease: LeaseID?) throws -> Bool {
        try commit(conditions, puts: puts, unleasedPuts: [], deletes: deletes, lease: lease)
    }

    /// Writes without a lease.
    @discardableResult
    public func put(_ key: String, _ value: [UInt8]) throws -> Int64 { try put(key, value, lease: nil) }

    public func create(_ key: String, _ value: [UInt8]) throws -> Bool { try create(key, value, lease: nil) }

    public func compareAndSwap(_ key: String, expected: Int64, _ value: [UInt8]) throws -> Bool {
        try compareAndSwap(key, expected: expected, value, lease: nil)
    }
}
