import ClusterState
import Foundation
import Logging
import Synchronization

/// The cluster as this host last projected it (networks and endpoints), kept in the state
/// directory: a daemon that starts while its store is unreachable answers DNS and keeps hosts
/// files from what it knew, until the store is back and it reconciles for real.
///
/// Written by a `Ticker` at most once a second, and only after a change (`markChanged`), whole
/// (`AtomicFile`).
final class StoreCache: @unchecked Sendable {
    struct Snapshot: Codable {
        var networks: [NetworkRecord]
        var endpoints: [EndpointState]
    }

    let path: String
    private let logger: Logger
    private let changed = Atomic<Bool>(false)
    private var ticker: Ticker?
    private var snapshot: (@Sendable () -> Snapshot)?

    init(path: String, logger: Logger) {
        self.path = path
        self.logger = logger
    }

    /// What was saved last, or nil (none, or unreadable: logged).
    func load() -> Snapshot? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        do { return try JSONDecoder().decode(Snapshot.self, from: data) } catch {
            logger.warning("skipping an unreadable store cache", metadata: ["path": "\(path)", "error": "\(error)"])
            return nil
        }
    }

    /// Starts the writer: `snapshot` is asked for the current state after each change.
    func start(snapshot: @escaping @Sendable () -> Snapshot) {
        self.snapshot = snapshot
        let ticker = Ticker("store cache", every: 1, logger: logger) { [self] in try writeIfChanged() }
        self.ticker = ticker
        ticker.start()
    }

    func markChanged() { changed.store(true, ordering: .relaxed) }

    /// Stops the writer after a last write of what changed (a kill loses at most a second, which
    /// the store's listing corrects on the next start).
    func stop() {
        ticker?.stop()
        do { try writeIfChanged() } catch {
            logger.warning("store cache not written", metadata: ["error": "\(error)"])
        }
    }

    private func writeIfChanged() throws {
        guard let snapshot, changed.exchange(false, ordering: .relaxed) else { return }
        do { try write(snapshot()) } catch {
            changed.store(true, ordering: .relaxed)
            throw error
        }
    }

    private func write(_ snapshot: Snapshot) throws {
        try AtomicFile.write(try JSONEncoder().encode(snapshot), to: path)
    }
}
