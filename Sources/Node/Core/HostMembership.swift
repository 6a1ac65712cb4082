import Addressing
import ClusterState
import Foundation
import Logging
import Store
import Synchronization

/// This host's membership of the cluster: its lease, with the host record under it, kept alive.
/// Until the store first answers there is no lease, and every change is refused. When the lease
/// lapsed (the store was away longer than its TTL), a new one is taken; after any new lease, and
/// whenever something was published under an older one, `publish` is called to hold and publish
/// this host's claims again, until it succeeds.
final class HostMembership: @unchecked Sendable {
    private let store: any KeyValueStore
    private let registry: ClusterRegistry
    private let record: HostRecord
    private let ttl: Int
    private let logger: Logger
    private let lock = NSLock()
    private var current: LeaseID?
    private var mustPublish = false
    /// Whether the store answered the last keep-alive (for metrics).
    let reachable = Atomic<Bool>(false)
    /// Called after the first join of a daemon that started without the store (before the lease
    /// is used): the watch starts.
    private var joined: @Sendable () throws -> Void = {}
    /// Holds and publishes what this host has that is not yet under `lease` (all of it, with
    /// `everything`); true when done.
    private var publish: @Sendable (_ lease: LeaseID, _ everything: Bool) throws -> Bool = { _, _ in true }
    private var ticker: Ticker?

    init(store: any KeyValueStore, registry: ClusterRegistry, record: HostRecord, ttl: Int, logger: Logger) {
        self.store = store
        self.registry = registry
        self.record = record
        self.ttl = ttl
        self.logger = logger
    }

    /// The lease changes are written under; nil until the store first answered.
    var lease: LeaseID? { lock.withLock { current } }

    /// Takes a lease with this host's record under it (at start).
    func join() throws {
        let granted = try takeLease()
        lock.withLock { current = granted }
        reachable.store(true, ordering: .relaxed)
    }

    /// Starts the keep-alive; `publishFirst`: what was recovered still has to be published.
    func start(publishFirst: Bool, joined: @escaping @Sendable () throws -> Void,
               publish: @escaping @Sendable (LeaseID, Bool) throws -> Bool) {
        self.joined = joined
        self.publish = publish
        lock.withLock { mustPublish = publishFirst }
        let interval = max(0.5, Double(ttl) / 3)
        let ticker = Ticker("lease keep-alive", every: lease == nil ? 0.5 : interval, maxBackoff: interval, logger: logger) { [self] in
            try tick()
            self.ticker?.setPeriod(interval)
        }
        self.ticker = ticker
        ticker.start()
    }

    func stop() { ticker?.stop() }

    /// One round: join (a daemon that started without the store), or keep the lease alive, or
    /// take a new one when it lapsed; then publish what is not under the current lease.
    private func tick() throws {
        do {
            guard let lease = lock.withLock({ current }) else {
                let granted = try takeLease()
                try joined()
                lock.withLock {
                    current = granted
                    mustPublish = true
                }
                logger.info("store reachable again; this host is published and watching")
                try publishAll(under: granted)
                return
            }
            if try !store.keepAlive(lease) {
                logger.warning("the lease lapsed; publishing this host again")
                let granted = try takeLease()
                lock.withLock {
                    current = granted
                    mustPublish = true
                }
                try publishAll(under: granted)
                return
            }
            reachable.store(true, ordering: .relaxed)
            try publishAll(under: lease)
        } catch {
            reachable.store(false, ordering: .relaxed)
            throw error
        }
    }

    /// Publishes everything after a new lease, or only what was published under another lease.
    private func publishAll(under lease: LeaseID) throws {
        let everything = lock.withLock { mustPublish }
        let complete = try publish(lease, everything)
        reachable.store(true, ordering: .relaxed)
        if complete, everything { lock.withLock { mustPublish = false } }
    }

    private func takeLease() throws -> LeaseID {
        let granted = try store.grantLease(ttl: ttl)
        try registry.registerHost(record, lease: granted)
        return granted
    }
}
