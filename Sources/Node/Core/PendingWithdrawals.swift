import Addressing
import ClusterState
import Foundation
import Logging
import Store

/// Sandboxes withdrawn here (a vanished namespace: DNS and hosts files stopped answering for them
/// at once) whose claims the store has not released yet: each is tried when it is queued and
/// then by a ticker, with a backoff of its own, until the store answers. A new sandbox of the
/// same name first finishes its predecessor's withdrawal (`finish`).
final class PendingWithdrawals: @unchecked Sendable {
    struct Withdrawal {
        var name: HostLabel
        var endpoints: [EndpointState]
        var attempts = 0
        var next = Date()
    }

    private let registry: ClusterRegistry
    private let hostID: String
    private let lease: @Sendable () -> LeaseID?
    private let logger: Logger
    private let lock = NSLock()
    private var pending: [String: Withdrawal] = [:]

    init(registry: ClusterRegistry, hostID: String, lease: @escaping @Sendable () -> LeaseID?, logger: Logger) {
        self.registry = registry
        self.hostID = hostID
        self.lease = lease
        self.logger = logger
    }

    var count: Int { lock.withLock { pending.count } }

    /// Queues the release of `name` and its endpoints for the next round (never tried here: the
    /// caller, the liveness check, must not wait on the store).
    func add(_ name: HostLabel, endpoints: [EndpointState]) {
        lock.withLock { pending[name.text] = Withdrawal(name: name, endpoints: endpoints) }
    }

    /// Finishes the withdrawal of `name`, if one is pending: a store error is thrown (the caller,
    /// about to claim the name again, must not go on).
    func finish(_ name: String) throws {
        if let error = attempt(name) { throw error }
    }

    /// One ticker round: every withdrawal whose time has come (a failure is logged by `attempt`
    /// and tried again after its backoff).
    func retryDue() {
        let due = lock.withLock { pending.values.filter { $0.next <= Date() }.map(\.name.text) }
        for name in due { _ = attempt(name) }
    }

    /// Releases `name`'s claims; the error when the store did not take it.
    private func attempt(_ name: String) -> Error? {
        guard let withdrawal = lock.withLock({ pending[name] }) else { return nil }
        do {
            try registry.release(name: withdrawal.name, endpoints: withdrawal.endpoints, host: hostID, lease: lease())
            lock.withLock { pending[name] = nil }
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
