import ClusterState
import Foundation
import Logging

/// The cluster as this host last projected it (networks and endpoints), kept in the state
/// directory: a daemon that starts while its store is unreachable answers DNS and keeps hosts
/// files from what it knew, until the store is back and it reconciles for real.
///
/// Written by a background thread at most once a second, and only after a change
/// (`markChanged`), whole (`AtomicFile`).
final class StoreCache: @unchecked Sendable {
    struct Snapshot: Codable {
        var networks: [NetworkRecord]
        var endpoints: [EndpointState]
    }

    let path: String
    private let logger: Logger
    private let condition = NSCondition()
    private var changed = false
    private var stopped = false
    private var running = false
    private let finished = DispatchSemaphore(value: 0)

    init(path: String, logger: Logger) {
        self.path = path
        self.logger = logger
    }

    /// What was saved last, or nil (none, or unreadable: logged).
    func load() -> Snapshot? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        guard let snapshot = try? JSONDecoder().decode(Snapshot.self, from: data) else {
            logger.warning("skipping an unreadable store cache", metadata: ["path": "\(path)"])
            return nil
        }
        return snapshot
    }

    /// Starts the writer: `snapshot` is asked for the current state after each change.
    func start(snapshot: @escaping @Sendable () -> Snapshot) {
        condition.lock()
        running = true
        condition.unlock()
        let thread = Thread { [self] in
            defer { finished.signal() }
            while true {
                condition.lock()
                while !changed && !stopped { condition.wait() }
                if stopped {
                    // A clean stop writes what changed since the last write (a kill loses at most
                    // a second, which the store's listing corrects on the next start).
                    let pending = changed
                    condition.unlock()
                    if pending { write(snapshot()) }
                    return
                }
                changed = false
                condition.unlock()
                write(snapshot())
                // At most one write a second; a stop ends the pause (a change does not).
                condition.lock()
                let until = Date().addingTimeInterval(1)
                while !stopped, condition.wait(until: until) {}
                condition.unlock()
            }
        }
        thread.name = "dnsd-store-cache"
        thread.start()
    }

    func markChanged() {
        condition.lock()
        changed = true
        condition.signal()
        condition.unlock()
    }

    /// Stops the writer after a last write of what changed (waits up to 2 s for it).
    func stop() {
        condition.lock()
        stopped = true
        let wait = running
        condition.signal()
        condition.unlock()
        if wait { _ = finished.wait(timeout: .now() + 2) }
    }

    private func write(_ snapshot: Snapshot) {
        do {
            try AtomicFile.write(try JSONEncoder().encode(snapshot), to: path)
        } catch {
            logger.warning("store cache not written", metadata: ["error": "\(error)"])
        }
    }
}
