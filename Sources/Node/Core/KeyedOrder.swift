import Foundation

/// Commands on one sandbox run one at a time; commands on different sandboxes run at once. Each
/// key (a sandbox's name) has its own gate, made when a command for it arrives and dropped when
/// the last one leaves: nothing but another command on the same sandbox ever waits on it, so a
/// command stuck on a slow store delays only later commands on its own sandbox.
final class KeyedOrder: @unchecked Sendable {
    private final class Gate {
        let lock = NSLock()
        var waiting = 0
    }

    private let lock = NSLock()
    private var gates: [String: Gate] = [:]

    func run<T>(_ key: String, _ body: () throws -> T) rethrows -> T {
        let gate = lock.withLock { () -> Gate in
            let gate = gates[key] ?? Gate()
            gate.waiting += 1
            gates[key] = gate
            return gate
        }
        gate.lock.lock()
        defer {
            gate.lock.unlock()
            lock.withLock {
                gate.waiting -= 1
                if gate.waiting == 0 { gates[key] = nil }
            }
        }
        return try body()
    }
}
