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
        let gate = enter(key)
        gate.lock.lock()
        defer { leave(key, gate) }
        return try body()
    }

    /// Runs `body` in `key`'s order if no command on it is under way now; false (and nothing
    /// run) otherwise. For background work that must not wait behind a command (it tries again
    /// next round).
    func tryRun(_ key: String, _ body: () throws -> Void) rethrows -> Bool {
        try tryRun(keys: [key], body)
    }

    /// Runs `body` in the order of every key of `keys` at once (a batch over many sandboxes: a
    /// republish). Gates are taken in sorted order; since a command holds one key at a time,
    /// this cannot deadlock with them.
    func run<T>(keys: [String], _ body: () throws -> T) rethrows -> T {
        let sorted = Array(Set(keys)).sorted()
        let entered = sorted.map { key -> (String, Gate) in
            let gate = enter(key)
            gate.lock.lock()
            return (key, gate)
        }
        defer { for (key, gate) in entered.reversed() { leave(key, gate) } }
        return try body()
    }

    /// `tryRun` over several keys: `body` runs only if no command holds any of them now.
    func tryRun(keys: [String], _ body: () throws -> Void) rethrows -> Bool {
        var entered: [(String, Gate)] = []
        defer { for (key, gate) in entered.reversed() { leave(key, gate) } }
        for key in Array(Set(keys)).sorted() {
            let gate = enter(key)
            guard gate.lock.try() else {
                lock.withLock {
                    gate.waiting -= 1
                    if gate.waiting == 0 { gates[key] = nil }
                }
                return false
            }
            entered.append((key, gate))
        }
        try body()
        return true
    }

    private func enter(_ key: String) -> Gate {
        lock.withLock {
            let gate = gates[key] ?? Gate()
            gate.waiting += 1
            gates[key] = gate
            return gate
        }
    }

    private func leave(_ key: String, _ gate: Gate) {
        gate.lock.unlock()
        lock.withLock {
            gate.waiting -= 1
            if gate.waiting == 0 { gates[key] = nil }
        }
    }
}
