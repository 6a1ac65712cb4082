import Foundation
import Logging

/// The embedded store for a single host: the same semantics as etcd (revisions, create-if-absent,
/// compare-and-swap, prefix watches from a revision, leases), kept in memory and made durable by
/// an append-only log in the state directory, fsync'd before each call returns. On open the log
/// is replayed and rewritten compactly (write aside, fsync, rename), so it never grows without
/// bound across restarts. Leases survive a restart with their full TTL (a restarted daemon keeps
/// them alive again at once).
public final class LocalStore: KeyValueStore, @unchecked Sendable {
    private struct Lease { var ttl: Int; var deadline: Date }

    private final class Watcher: @unchecked Sendable {
        /// Under the store's lock.
        var prefixes: Set<String> = []
        let queue = DispatchQueue(label: "dnsd.local-store.watch")
        let events: @Sendable ([WatchEvent]) -> Void
        let failed: @Sendable (StoreError) -> Void
        var cancelled = false
        init(events: @escaping @Sendable ([WatchEvent]) -> Void, failed: @escaping @Sendable (StoreError) -> Void) {
            self.events = events
            self.failed = failed
        }
        func watches(_ key: String) -> Bool { prefixes.contains { key.hasPrefix($0) } }
    }

    private final class Handle: RangeWatch, @unchecked Sendable {
        let watcher: Watcher
        weak var store: LocalStore?
        init(watcher: Watcher, store: LocalStore) {
            self.watcher = watcher
            self.store = store
        }
        func add(prefix: String, from revision: Int64) { store?.add(prefix, from: revision, to: watcher) }
        func remove(prefix: String) { store?.lock.withLock { _ = watcher.prefixes.remove(prefix) } }
        func cancel() {
            store?.lock.withLock { store?.watchers.removeAll { $0 === watcher } }
            watcher.queue.sync { watcher.cancelled = true }
        }
    }

    private let path: String
    private let logger: Logger
    private let lock = NSLock()
    private var data: [String: KeyValue] = [:]
    private var revision: Int64 = 0
    private var leases: [Int64: Lease] = [:]
    private var nextLease: Int64 = 1
    private var history: [(revision: Int64, event: WatchEvent)] = []
    private var watchers: [Watcher] = []
    private var log: FileHandle!
    /// The first revision whose change is still in `history`: a watch from before it is compacted.
    private var oldestKept: Int64 = 1
    private var expiry: DispatchSourceTimer?
    private static let historyLimit = 10_000

    public init(directory: String, logger: Logger) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        path = directory + "/store.log"
        self.logger = logger
        // No log yet is a new store; a log that is there but cannot be read is refused, never
        // taken for an empty one (the compaction below would write over the cluster's state).
        var text: String?
        if FileManager.default.fileExists(atPath: path) {
            do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
                throw StoreError.unavailable(operation: "open local store", detail: "cannot read \(path) (\(error.localizedDescription)); it is left as it is")
            }
        }
        if let text {
            let lines = text.split(separator: "\n")
            for (number, line) in lines.enumerated() {
                guard let record = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                    // A torn last line (a crash mid-write) is expected and skipped; an unreadable
                    // line before it is damage: refused, or the compaction would drop what it held.
                    guard number == lines.count - 1 else {
                        throw StoreError.unavailable(operation: "open local store",
                                                     detail: "cannot read line \(number + 1) of \(path); it is left as it is")
                    }
                    logger.warning("local store: skipping a torn last log line \(number + 1)")
                    continue
                }
                replay(record)
            }
        }
        // Rewrite compactly: one record per live key and lease.
        let compact = directory + "/store.log.new"
        _ = FileManager.default.createFile(atPath: compact, contents: nil)
        let writer = try FileHandle(forWritingTo: URL(fileURLWithPath: compact))
        var lines: [[String: Any]] = [["op": "rev", "rev": revision, "lease": nextLease]]
        for (id, lease) in leases { lines.append(["op": "lease", "id": id, "ttl": lease.ttl]) }
        for entry in data.values.sorted(by: { $0.modRevision < $1.modRevision }) { lines.append(Self.record(entry)) }
        for line in lines { try writer.write(contentsOf: try JSONSerialization.data(withJSONObject: line) + Data("\n".utf8)) }
        try writer.synchronize()
        try writer.close()
        guard rename(compact, path) == 0 else { throw StoreError.unavailable(operation: "open local store", detail: "rename \(compact): errno \(errno)") }
        log = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try log.seekToEnd()
        // Changes before this open are not in memory: watching from earlier means re-reading.
        oldestKept = revision + 1
        let now = Date()
        for id in leases.keys { leases[id]!.deadline = now.addingTimeInterval(TimeInterval(leases[id]!.ttl)) }
        let timer = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "dnsd.local-store.leases"))
        timer.schedule(deadline: .now() + .milliseconds(100), repeating: .milliseconds(100))
        timer.setEventHandler { [weak self] in self?.expireLeases() }
        timer.resume()
        expiry = timer
    }

    deinit {
        expiry?.cancel()
        try? log?.close()  // nil when the init refused the log
    }

    // MARK: durability

    private static func record(_ entry: KeyValue) -> [String: Any] {
        ["op": "put", "key": entry.key, "value": Data(entry.value).base64EncodedString(), "create": entry.createRevision,
         "rev": entry.modRevision, "lease": entry.lease.flatMap { Int64($0.raw) } ?? 0]
    }

    private func replay(_ record: [String: Any]) {
        let rev = (record["rev"] as? NSNumber)?.int64Value ?? revision
        switch record["op"] as? String {
        case "rev":
            revision = max(revision, rev)
            nextLease = max(nextLease, (record["lease"] as? NSNumber)?.int64Value ?? 1)
        case "put":
            guard let key = record["key"] as? String, let value = (record["value"] as? String).flatMap({ Data(base64Encoded: $0) }) else { return }
            let lease = (record["lease"] as? NSNumber)?.int64Value ?? 0
            data[key] = KeyValue(key: key, value: Array(value), createRevision: (record["create"] as? NSNumber)?.int64Value ?? rev,
                                 modRevision: rev, lease: lease == 0 ? nil : LeaseID(String(lease)))
            revision = max(revision, rev)
        case "delete":
            if let key = record["key"] as? String { data[key] = nil }
            revision = max(revision, rev)
        case "lease":
            if let id = (record["id"] as? NSNumber)?.int64Value {
                leases[id] = Lease(ttl: (record["ttl"] as? Int) ?? 10, deadline: Date())
                nextLease = max(nextLease, id + 1)
            }
        case "revoke":
            if let id = (record["id"] as? NSNumber)?.int64Value { leases[id] = nil }
        default:
            return
        }
    }

    /// Appends and fsyncs; a failure here means the change did not happen.
    private func append(_ record: [String: Any]) throws {
        do {
            try log.write(contentsOf: try JSONSerialization.data(withJSONObject: record) + Data("\n".utf8))
            try log.synchronize()
        } catch {
            throw StoreError.unavailable(operation: "local store write", detail: "\(error)")
        }
    }

    // MARK: changes (lock held)

    private func apply(_ events: [WatchEvent]) {
        for event in events { history.append((event.entry.modRevision, event)) }
        if history.count > Self.historyLimit {
            history.removeFirst(history.count - Self.historyLimit)
            oldestKept = history.first!.revision
        }
        for watcher in watchers {
            let mine = events.filter { watcher.watches($0.entry.key) }
            guard !mine.isEmpty else { continue }
            watcher.queue.async { if !watcher.cancelled { watcher.events(mine) } }
        }
    }

    private func putLocked(_ key: String, _ value: [UInt8], lease: LeaseID?) throws -> Int64 {
        if let lease, leases[Int64(lease.raw) ?? 0] == nil {
            throw StoreError.refused(operation: "put \(key)", status: 404, detail: "lease \(lease) not found")
        }
        let next = revision + 1
        let entry = KeyValue(key: key, value: value, createRevision: data[key]?.createRevision ?? next, modRevision: next, lease: lease)
        try append(Self.record(entry))
        revision = next
        data[key] = entry
        apply([WatchEvent(kind: .put, entry: entry)])
        return next
    }

    private func deleteLocked(_ key: String) throws -> Bool {
        guard let old = data[key] else { return false }
        let next = revision + 1
        try append(["op": "delete", "key": key, "rev": next])
        revision = next
        data[key] = nil
        var tombstone = old
        tombstone.modRevision = next
        tombstone.value = []
        apply([WatchEvent(kind: .delete, entry: tombstone)])
        return true
    }

    private func expireLeases() {
        lock.withLock {
            let now = Date()
            for (id, lease) in leases where lease.deadline < now {
                revokeLocked(id)
            }
        }
    }

    private func revokeLocked(_ id: Int64) {
        guard leases.removeValue(forKey: id) != nil else { return }
        do {
            try append(["op": "revoke", "id": id])
            for key in data.values.filter({ $0.lease?.raw == String(id) }).map(\.key).sorted() { try deleteLocked(key) }
        } catch {
            // In memory the keys are gone; on disk they come back at the next open, under a lease
            // that is itself gone by then and expires them again.
            logger.error("local store: could not log an expired lease", metadata: ["lease": "\(id)", "error": "\(error)"])
        }
    }

    // MARK: KeyValueStore

    public func get(_ key: String) throws -> KeyValue? { lock.withLock { data[key] } }

    public func list(prefix: String) throws -> (entries: [KeyValue], revision: Int64) {
        lock.withLock { (data.values.filter { $0.key.hasPrefix(prefix) }.sorted { $0.key < $1.key }, revision) }
    }

    @discardableResult
    public func put(_ key: String, _ value: [UInt8], lease: LeaseID? = nil) throws -> Int64 {
        try lock.withLock { try putLocked(key, value, lease: lease) }
    }

    @discardableResult
    public func delete(_ key: String) throws -> Bool { try lock.withLock { try deleteLocked(key) } }

    public func create(_ key: String, _ value: [UInt8], lease: LeaseID? = nil) throws -> Bool {
        try commit([.absent(key)], puts: [(key, value)], lease: lease)
    }

    public func delete(_ key: String, ifUnchangedSince expected: Int64) throws -> Bool {
        try lock.withLock {
            guard let current = data[key], current.modRevision == expected else { return false }
            return try deleteLocked(key)
        }
    }

    public func commit(_ conditions: [KeyCondition], puts: [(key: String, value: [UInt8])], unleasedPuts: [(key: String, value: [UInt8])],
                       deletes: [String], lease: LeaseID?) throws -> Bool {
        try lock.withLock {
            for condition in conditions {
                switch condition {
                case .absent(let key): guard data[key] == nil else { return false }
                case .unchanged(let key, let revision): guard data[key]?.modRevision == revision else { return false }
                case .heldBy(let key, let lease): guard let held = data[key]?.lease, held == lease else { return false }
                }
            }
            // Checked before the first put, so a missing lease writes nothing.
            if let lease, let first = puts.first, leases[Int64(lease.raw) ?? 0] == nil {
                throw StoreError.refused(operation: "put \(first.key)", status: 404, detail: "lease \(lease) not found")
            }
            for (key, value) in puts { _ = try putLocked(key, value, lease: lease) }
            for (key, value) in unleasedPuts { _ = try putLocked(key, value, lease: nil) }
            for key in deletes { _ = try deleteLocked(key) }
            return true
        }
    }

    public func compareAndSwap(_ key: String, expected: Int64, _ value: [UInt8], lease: LeaseID? = nil) throws -> Bool {
        // Revision 0 is the revision of a key that does not exist, as in etcd.
        try commit([expected == 0 ? .absent(key) : .unchanged(key, modRevision: expected)], puts: [(key, value)], lease: lease)
    }

    public func grantLease(ttl seconds: Int) throws -> LeaseID {
        try lock.withLock {
            let id = nextLease
            try append(["op": "lease", "id": id, "ttl": seconds])
            try append(["op": "rev", "rev": revision, "lease": id + 1])
            nextLease = id + 1
            leases[id] = Lease(ttl: seconds, deadline: Date().addingTimeInterval(TimeInterval(seconds)))
            return LeaseID(String(id))
        }
    }

    public func keepAlive(_ lease: LeaseID) throws -> Bool {
        lock.withLock {
            guard let id = Int64(lease.raw), var entry = leases[id] else { return false }
            entry.deadline = Date().addingTimeInterval(TimeInterval(entry.ttl))
            leases[id] = entry
            return true
        }
    }

    public func revoke(_ lease: LeaseID) throws { lock.withLock { revokeLocked(Int64(lease.raw) ?? 0) } }

    public func watch(ranges: [String: Int64],
                      events: @escaping @Sendable ([WatchEvent]) -> Void,
                      failed: @escaping @Sendable (StoreError) -> Void) throws -> any RangeWatch {
        let watcher = Watcher(events: events, failed: failed)
        lock.withLock { watchers.append(watcher) }
        for (prefix, revision) in ranges { add(prefix, from: revision, to: watcher) }
        return Handle(watcher: watcher, store: self)
    }

    /// Replays `prefix`'s history from `revision` to `watcher`, then watches it; older than
    /// what is kept means compacted.
    private func add(_ prefix: String, from revision: Int64, to watcher: Watcher) {
        lock.withLock {
            guard !watcher.prefixes.contains(prefix) else { return }
            if revision <= self.revision {
                if revision < oldestKept {
                    let compacted = oldestKept - 1
                    watcher.queue.async { if !watcher.cancelled { watcher.failed(.compacted(revision: compacted)) } }
                    return
                }
                let past = history.filter { $0.revision >= revision && $0.event.entry.key.hasPrefix(prefix) }.map(\.event)
                if !past.isEmpty { watcher.queue.async { if !watcher.cancelled { watcher.events(past) } } }
            }
            watcher.prefixes.insert(prefix)
        }
    }
}
