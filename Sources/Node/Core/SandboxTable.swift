import Addressing
import ClusterState
import Foundation
import Resolver
import Store

/// The owner of this host's sandboxes: what each one is (in memory) and what survives a restart
/// (the journal). Names are reserved while a command makes a sandbox, so two commands never make
/// one name; the lock guards only the table, never a store request, a kernel call or a write.
final class SandboxTable: @unchecked Sendable {
    private let lock = NSLock()
    private var sandboxes: [String: LocalSandbox] = [:]
    private var reserved: Set<String> = []
    private var nextID = 1
    let journal: SandboxJournal

    init(journal: SandboxJournal) { self.journal = journal }

    /// Reserves `name` for a sandbox being made; refused, as the cluster would refuse it, when
    /// one of that name exists here or is being made.
    func reserve(_ name: HostLabel, host: String) throws {
        try lock.withLock {
            guard sandboxes[name.text] == nil, !reserved.contains(name.text) else {
                throw ClusterError.nameTaken(name.text, host: host)
            }
            reserved.insert(name.text)
        }
    }

    func unreserve(_ name: HostLabel) { _ = lock.withLock { reserved.remove(name.text) } }

    /// Records `local` (made, or changed), in memory then in the journal; ends its reservation.
    func save(_ local: LocalSandbox) {
        lock.withLock {
            sandboxes[local.name.text] = local
            reserved.remove(local.name.text)
        }
        journal.save(local.journalEntry)
    }

    /// Drops `name`, in memory then from the journal.
    func forget(_ name: String) {
        _ = lock.withLock { sandboxes.removeValue(forKey: name) }
        journal.remove(name)
    }

    /// Notes that `name`'s claims are now held under `lease` (memory only: the journal keeps no lease).
    func setLease(_ lease: LeaseID, of name: String) {
        lock.withLock { sandboxes[name]?.lease = lease }
    }

    func sandbox(_ name: String) -> LocalSandbox? { lock.withLock { sandboxes[name] } }

    func all() -> [LocalSandbox] { lock.withLock { Array(sandboxes.values) } }

    var count: Int { lock.withLock { sandboxes.count } }

    /// The sandbox made for a runtime's container `id`.
    func container(_ id: String) -> LocalSandbox? { lock.withLock { sandboxes.values.first { $0.containerID == id } } }

    /// The sandbox whose namespace has this nsfs inode.
    func sandbox(inode: UInt64) -> LocalSandbox? { lock.withLock { sandboxes.values.first { $0.namespaceInode == inode } } }

    /// The networks sandboxes here are attached to (published attachments: not the nameless bridges).
    func networksInUse() -> Set<String> {
        lock.withLock { Set(sandboxes.values.flatMap { $0.attachments.filter { $0.published != nil }.map(\.network.name) }) }
    }

    /// Whether a sandbox here is attached to the network named `network`.
    func uses(network: String) -> Bool {
        lock.withLock { sandboxes.values.contains { $0.attachments.contains { $0.network.name == network } } }
    }

    func nextSandboxID() -> SandboxID {
        lock.withLock {
            defer { nextID += 1 }
            return SandboxID(nextID)
        }
    }
}
