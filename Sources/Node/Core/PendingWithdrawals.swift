import Addressing
import ClusterState
import Foundation
import Logging
import Store

/// Sandboxes withdrawn here (a vanished namespace: DNS and hosts files stopped answering for them
/// at once) whose claims the store has not released yet: each is tried by a ticker, in the
/// sandbox's order (never beside a command on the same name), with a backoff of its own, until
/// the store answers. A new sandbox of the same name first finishes its predecessor's withdrawal
/// (`finish`, from within its own order). Once released, `released` is told (the reconciler
/// stops keeping the endpoints out of the projections).
final class PendingWithdrawals: @unchecked Sendable {
    struct Withdrawal {
        var name: HostLabel
        var endpoints: [EndpointState]
        /// Whether the name's claim goes too (not for an attachment of a sandbox that stays).
        var releasingName = true
        /// The endpoints (by id) whose address claims stay: a Docker endpoint's is its IPAM's.
        var keptAddresses: Set<String> = []
        var attempts = 0
        var next = Date()
        /// Which queuing this is: a release that finishes removes only its own entry.
        var generation = 0
    }

    private let registry: ClusterRegistry
    private let hostID: String
    private let lease: @Sendable () -> LeaseID?
    private let order: KeyedOrder
    private let released: @Sendable ([EndpointState]) -> Void
    private let logger: Logger
    private let lock = NSLock()
    private var pending: [String: Withdrawal] = [:]
    private var generations = 0

    init(registry: ClusterRegistry, hostID: String, lease: @escaping @Sendable () -> LeaseID?, order: KeyedOrder,
         released: @escaping @Sendable ([EndpointState]) -> Void, logger: Logger) {
        self.registry = registry
        self.hostID = hostID
        self.lease = lease
        self.order = order
        self.released = released
        self.logger = logger
    }

    var count: Int { lock.withLock { pending.count } }

    /// Queues the release of `name`'s claims for the next round: its `endpoints`, and the name
    /// itself unless `releasingName` is false (an attach of a sandbox that stays, whose commit's
    /// outcome is unknown), and the address claims too unless `keepingAddresses` (a Docker
    /// endpoint's, which Docker's IPAM releases). Never tried here: the caller (the liveness check, a command that just
    /// timed out) must not wait on the store again. Merged with a release already queued.
    func add(_ name: HostLabel, endpoints: [EndpointState], releasingName: Bool = true, keepingAddresses: Bool = false) {
        lock.withLock {
            generations += 1
            var withdrawal = pending[name.text] ?? Withdrawal(name: name, endpoints: [], releasingName: false)
            withdrawal.endpoints += endpoints.filter { endpoint in !withdrawal.endpoints.contains { $0.id == endpoint.id && $0.network == endpoint.network } }
            withdrawal.releasingName = withdrawal.releasingName || releasingName
            if keepingAddresses { withdrawal.keptAddresses.formUnion(endpoints.map(\.id)) }
            withdrawal.generation = generations
            withdrawal.next = Date()
            pending[name.text] = withdrawal
        }
    }

    /// In `name`'s order: finishes the withdrawal of `name`, if one is pending: a store error is
    /// thrown (the caller, about to claim the name again, must not go on).
    func finish(_ name: String) throws {
        if let error = attempt(name) { throw error }
    }

    /// One ticker round: every withdrawal whose time has come (a failure is logged by `attempt`
    /// and tried again after its backoff).
    func retryDue() {
        let due = lock.withLock { pending.values.filter { $0.next <= Date() }.map(\.name.text) }
        // A name whose command is under way waits for the next round.
        for name in due { _ = order.tryRun(name) { _ = attempt(name) } }
    }

    /// Releases `name`'s claims; the error when the store did not take it.
    private func attempt(_ name: String) -> Error? {
        guard let withdrawal = lock.withLock({ pending[name] }) else { return nil }
        do {
            try registry.release(name: withdrawal.releasingName ? withdrawal.name : nil, endpoints: withdrawal.endpoints,
                                 keepingAddressesOf: withdrawal.keptAddresses, host: hostID,
                                 lease: lease())
            lock.withLock { if pending[name]?.generation == withdrawal.generation { pending[name] = nil } }
            released(withdrawal.endpoints)
            logger.info("sandbox withdrawn from the store", metadata: ["sandbox": "\(name)", "after attempts": "\(withdrawal.attempts + 1)"])
            return nil
        } catch {
            lock.withLock {
                guard var current = pending[name] else { return }
                if current.attempts == 0 {
                    logger.warning("withdrawing a vanished sandbox from the store failed; retrying", metadata: ["sandbox": "\(name)", "error": "\(error)"])
                }
                current.attempts += 1
                current.next = Date().addingTimeInterval(min(0.25 * pow(2, Double(min(current.attempts, 3))), 2))
                pending[name] = current
            }
            return error
        }
    }
}
