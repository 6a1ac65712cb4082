import ClusterState
import Foundation
import Logging

/// This host's sandboxes as the daemon last left them, one small JSON file per sandbox in the
/// state directory. The store forgets a host's endpoints when its lease lapses (the daemon was
/// down longer than the TTL); the journal is how a restarted daemon still knows which names and
/// addresses its surviving sandboxes had, and where a runtime's namespace and hosts file live.
final class SandboxJournal: @unchecked Sendable {
    struct Entry: Codable, Equatable {
        var name: String
        var hostname: String
        var aliases: [String]
        /// The namespace: /run/netns/NAME for `run`, the runtime's path for `attach`.
        var netnsPath: String
        /// A runtime's own hosts file (`attach --hosts-file`); nil for /etc/netns/NAME/hosts.
        var hostsFile: String?
        var adopted: Bool
        /// The published endpoints, as written to the store.
        var endpoints: [EndpointState]
        /// A runtime's container id (CNI) and the namespace's inode (absent in older entries).
        var containerID: String? = nil
        var namespaceInode: UInt64? = nil
    }

    let directory: String
    let logger: Logger
    /// What is on disk, to skip writing an entry that did not change.
    private var written: [String: Entry] = [:]
    /// Guards `written`; entries of one sandbox are written in its commands' order.
    private let lock = NSLock()

    init(directory: String, logger: Logger) throws {
        self.directory = directory
        self.logger = logger
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
    }

    private func path(_ name: String) -> String { "\(directory)/\(name).json" }

    /// Writes `entry` (atomically), unless it is what is on disk already.
    func save(_ entry: Entry) {
        guard lock.withLock({ written[entry.name] }) != entry else { return }
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            try AtomicFile.write(try encoder.encode(entry), to: path(entry.name))
            lock.withLock { written[entry.name] = entry }
        } catch {
            // The store still has the sandbox; only a restart after a lapsed lease would miss it.
            logger.error("could not record sandbox in the journal", metadata: ["sandbox": "\(entry.name)", "error": "\(error)"])
        }
    }

    func remove(_ name: String) {
        unlink(path(name))
        _ = lock.withLock { written.removeValue(forKey: name) }
    }

    /// Every readable entry; an unreadable file is logged and left for a person to look at.
    func load() -> [Entry] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return files.filter { $0.hasSuffix(".json") }.sorted().compactMap { file in
            guard let data = FileManager.default.contents(atPath: "\(directory)/\(file)"),
                  let entry = try? JSONDecoder().decode(Entry.self, from: data), "\(entry.name).json" == file
            else {
                logger.warning("skipping an unreadable journal entry", metadata: ["file": "\(directory)/\(file)"])
                return nil
            }
            lock.withLock { written[entry.name] = entry }
            return entry
        }
    }
}
