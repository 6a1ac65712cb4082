import ClusterState
import Foundation
import Logging

/// The cluster as this host last projected it (networks and endpoints), kept in the state
/// directory: a daemon that starts while its store is unreachable answers DNS and keeps hosts
/// files from what it knew, until the store is back and it reconciles for real.
///
/// Written by a background thread at most once a second, and only after a change
/// (`markChanged`), whole (temporary file, fsync, rename).
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
        let thread = Thread { [self] in
            while true {
                condition.lock()
                while !changed && !stopped { condition.wait() }
                if stopped {
                    condition.unlock()
                    return
                }
                changed = false
                condition.unlock()
                write(snapshot())
                Thread.sleep(forTimeInterval: 1)
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

    func stop() {
        condition.lock()
        stopped = true
        condition.signal()
        condition.unlock()
    }

    private func write(_ snapshot: Snapshot) {
        do {
            let data = try JSONEncoder().encode(snapshot)
            let temporary = path + ".tmp"
            let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw CLIError("open \(temporary): \(String(cString: strerror(errno)))") }
            let count = data.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            fsync(fd)
            close(fd)
            guard count == data.count, rename(temporary, path) == 0 else {
                unlink(temporary)
                throw CLIError("write \(path): \(String(cString: strerror(errno)))")
            }
        } catch {
            logger.warning("store cache not written", metadata: ["error": "\(error)"])
        }
    }
}
