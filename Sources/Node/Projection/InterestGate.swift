import Foundation

/// Who may change which networks the reconciler watches, and when: joins of networks take
/// shared turns (joins of different networks list at once; one network's joins wait for the
/// first, `joining`), a (re)start or a settle round an exclusive one (it replaces or trims the
/// whole watch). The gate is waited on, never held by anything but these: a join waiting on a
/// slow store delays only a restart or a settle round (which then tries again), never a command
/// on a network already watched.
final class InterestGate: @unchecked Sendable {
    private let condition = NSCondition()
    private var sharing = 0
    private var exclusive = false
    /// Orders the joins of one network (keyed by its name).
    let joining = KeyedOrder()

    func shared<T>(_ body: () throws -> T) rethrows -> T {
        condition.withLock {
            while exclusive { condition.wait() }
            sharing += 1
        }
        defer {
            condition.withLock {
                sharing -= 1
                condition.broadcast()
            }
        }
        return try body()
    }

    func exclusive<T>(_ body: () throws -> T) rethrows -> T {
        condition.withLock {
            while exclusive || sharing > 0 { condition.wait() }
            exclusive = true
        }
        defer { release() }
        return try body()
    }

    /// `exclusive`, if no one has a turn now; false (and nothing run) otherwise.
    func tryExclusive(_ body: () throws -> Void) rethrows -> Bool {
        let taken = condition.withLock { () -> Bool in
            guard !exclusive, sharing == 0 else { return false }
            exclusive = true
            return true
        }
        guard taken else { return false }
        defer { release() }
        try body()
        return true
    }

    private func release() {
        condition.withLock {
            exclusive = false
            condition.broadcast()
        }
    }
}
