import Addressing
import Foundation
import Logging

/// Keeps every local sandbox's hosts file and resolv.conf in step with the endpoints of the
/// networks it is attached to (DESIGN.md §5).
///
/// It is a projection: the caller (the daemon's reconciler) says which endpoints exist on which
/// network and which sandbox is attached where; the writer turns each change into the smallest
/// in-place update of exactly the files it concerns. A peer on a network a sandbox is not
/// attached to never reaches that sandbox's file. One file failing to update (its directory
/// gone, a full disk) is logged and does not stop the others; the next update repairs it.
public final class HostsWriter: @unchecked Sendable {
    /// Where one sandbox's files live.
    public struct Files: Sendable, Equatable {
        public var hosts: String
        public var resolvConf: String

        public init(hosts: String, resolvConf: String) {
            self.hosts = hosts
            self.resolvConf = resolvConf
        }

        /// `/etc/netns/NAME/{hosts,resolv.conf}`: what `ip netns exec NAME` bind-mounts.
        public static func namedNamespace(_ name: String, root: String = "/etc/netns") -> Files {
            Files(hosts: "\(root)/\(name)/hosts", resolvConf: "\(root)/\(name)/resolv.conf")
        }
    }

    public struct Failure: Error, CustomStringConvertible {
        public var sandbox: String
        public var error: Error
        public var description: String { "hosts file of \(sandbox): \(error)" }
    }

    private struct Sandbox {
        var files: Files
        var hostname: HostLabel
        var file: ManagedHostsFile
        /// Network -> this sandbox's own addresses on it.
        var networks: [HostLabel: [IPAddress]] = [:]
        var createdDirectory: String?
    }

    public let mode: NameMode
    private let hostResolvConf: ResolvConf
    private let upstreams: [String]
    private let logger: Logger
    private let lock = NSLock()
    private var sandboxes: [String: Sandbox] = [:]
    /// Every network's lines, by table number (a network keeps its number for the writer's life).
    private var tables: [NetworkLines] = []
    private var tableOfNetwork: [HostLabel: Int] = [:]
    /// Table numbers of networks no longer in use, for the next new network.
    private var freeTables: [Int] = []

    public init(mode: NameMode, hostResolvConf: ResolvConf, upstreams: [String] = [], logger: Logger) {
        self.mode = mode
        self.hostResolvConf = hostResolvConf
        self.upstreams = upstreams
        self.logger = logger
    }

    /// Starts managing `sandbox`'s files: writes its resolv.conf and a hosts file with the
    /// standard lines (keeping any lines already there, e.g. from a container runtime).
    /// `resuming`: the sandbox was this daemon's before a restart; its hosts file is taken over
    /// as it is, and lines no entry claims by `sweepUnclaimed()` are then removed.
    public func addSandbox(_ sandbox: String, files: Files, hostname: HostLabel, resuming: Bool = false) throws {
        try lock.withLock {
            guard sandboxes[sandbox] == nil else { return }
            // The resolv.conf's directory is the one dnsd may have to make (/etc/netns/NAME); a
            // runtime's hosts file lives where the runtime put it.
            var created: String?
            for path in [files.resolvConf, files.hosts] {
                let directory = (path as NSString).deletingLastPathComponent
                if !FileManager.default.fileExists(atPath: directory) {
                    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                    if created == nil { created = directory }
                }
            }
            do {
                let resolv = ResolvConfRenderer.render(mode: mode, host: hostResolvConf, upstreams: upstreams)
                try InPlaceFile(path: files.resolvConf).replaceContent(Array(resolv.utf8))
                let file = try ManagedHostsFile(path: files.hosts, resuming: resuming)
                sandboxes[sandbox] = Sandbox(files: files, hostname: hostname, file: file, createdDirectory: created)
            } catch {
                if let created { try? FileManager.default.removeItem(atPath: created) }
                throw error
            }
        }
    }

    /// Stops managing `sandbox`; with `deleteFiles`, removes the files (and the directory if
    /// dnsd made it). A runtime's own file is left with dnsd's lines taken out.
    public func removeSandbox(_ sandbox: String, deleteFiles: Bool) {
        lock.withLock {
            guard let entry = sandboxes.removeValue(forKey: sandbox) else { return }
            retired = (retired.writes + entry.file.writes, retired.repairs + entry.file.repairs)
            for (network, own) in entry.networks {
                _ = tables[tableOfNetwork[network]!].removeOwn(sandbox, addresses: own)
                recycleIfUnused(network)
            }
            if deleteFiles {
                try? FileManager.default.removeItem(atPath: entry.files.hosts)
                try? FileManager.default.removeItem(atPath: entry.files.resolvConf)
                if let directory = entry.createdDirectory { try? FileManager.default.removeItem(atPath: directory) }
                // A directory left empty (made by an earlier run of dnsd) goes too; rmdir
                // refuses a directory that still holds anything.
                for path in [entry.files.hosts, entry.files.resolvConf] {
                    rmdir((path as NSString).deletingLastPathComponent)
                }
            } else if let directory = entry.createdDirectory, !entry.files.hosts.hasPrefix(directory + "/") {
                // A runtime's hosts file stays; the directory dnsd made for resolv.conf goes.
                try? FileManager.default.removeItem(atPath: directory)
            }
        }
    }

    /// Attaches `sandbox` to `network` with its own `addresses` there: adds its own
    /// `IP hostname` lines and every endpoint of the network.
    @discardableResult
    public func attach(_ sandbox: String, to network: HostLabel, ownAddresses: [IPAddress]) -> [Failure] {
        lock.withLock {
            guard var entry = sandboxes[sandbox] else { return [] }
            let table = table(of: network)
            let before = entry.networks.updateValue(ownAddresses, forKey: network)
            sandboxes[sandbox] = entry
            let added = tables[table].setOwn(sandbox, hostname: entry.hostname, addresses: ownAddresses)
            var changes = tables[table].removeOwn(sandbox, addresses: (before ?? []).filter { !ownAddresses.contains($0) }) + added
            // Attached already: the file has every endpoint line; only its own lines changed.
            if before == nil { changes += tables[table].endpointLines() }
            var failures: [Failure] = []
            apply(changes, to: sandbox, &failures)
            return failures
        }
    }

    @discardableResult
    public func attach(_ sandbox: String, to network: HostLabel, ownAddresses: [IPv4Address]) -> [Failure] {
        attach(sandbox, to: network, ownAddresses: ownAddresses.map(IPAddress.init))
    }

    /// Detaches `sandbox` from `network`: its lines for that network go away.
    @discardableResult
    public func detach(_ sandbox: String, from network: HostLabel) -> [Failure] {
        lock.withLock {
            guard var entry = sandboxes[sandbox], let own = entry.networks.removeValue(forKey: network) else { return [] }
            sandboxes[sandbox] = entry
            let table = table(of: network)
            var changes = tables[table].removeOwn(sandbox, addresses: own)
            changes += tables[table].endpointLines().map { LineChange(id: $0.id, old: $0.new, new: nil) }
            var failures: [Failure] = []
            apply(changes, to: sandbox, &failures)
            recycleIfUnused(network)
            return failures
        }
    }

    /// Adds or changes endpoint `id` on `network`, in every attached sandbox's file.
    @discardableResult
    public func setEndpoint(_ id: String, on network: HostLabel, _ record: EndpointRecord) -> [Failure] {
        update(removing: [], setting: [(id, network, record)])
    }

    /// Removes endpoint `id` from `network`, in every attached sandbox's file.
    @discardableResult
    public func removeEndpoint(_ id: String, from network: HostLabel) -> [Failure] {
        update(removing: [(id, network)], setting: [])
    }

    /// A batch of endpoint changes (the removals, then the additions or changes), each
    /// attached sandbox's file written once for all of them: one open file for any number of
    /// lines, which is what makes a burst of thousands of endpoints cheap.
    @discardableResult
    public func update(removing: [(id: String, network: HostLabel)],
                       setting: [(id: String, network: HostLabel, record: EndpointRecord)]) -> [Failure] {
        lock.withLock {
            var changes: [HostLabel: [LineChange]] = [:]
            for (id, network) in removing {
                guard let table = tableOfNetwork[network] else { continue }
                changes[network, default: []] += tables[table].removeEndpoint(id)
            }
            for (id, network, record) in setting {
                changes[network, default: []] += tables[table(of: network)].setEndpoint(id, record)
            }
            changes = changes.filter { !$0.value.isEmpty }
            guard !changes.isEmpty else { return [] }
            var failures: [Failure] = []
            for (sandbox, entry) in sandboxes {
                let networks = entry.networks.keys.filter { changes[$0] != nil }
                if networks.count == 1 {
                    apply(changes[networks[0]]!, to: sandbox, &failures)
                } else if !networks.isEmpty {
                    apply(networks.flatMap { changes[$0]! }, to: sandbox, &failures)
                }
            }
            for network in changes.keys { recycleIfUnused(network) }
            return failures
        }
    }

    /// Removes the lines of resumed hosts files that no current entry claimed: peers that went
    /// away while the daemon was down. Call once the store's endpoints have all been set.
    @discardableResult
    public func sweepUnclaimed() -> [Failure] {
        lock.withLock {
            var failures: [Failure] = []
            for (sandbox, entry) in sandboxes {
                do { try entry.file.sweepUnclaimed() } catch {
                    logger.warning("hosts file not swept", metadata: ["sandbox": "\(sandbox)", "error": "\(error)"])
                    failures.append(Failure(sandbox: sandbox, error: error))
                }
            }
            return failures
        }
    }

    /// Every hosts-file write and repair so far, of the files kept now and of those gone.
    public func totals() -> (writes: Int, repairs: Int) {
        lock.withLock {
            sandboxes.values.reduce(retired) { ($0.writes + $1.file.writes, $0.repairs + $1.file.repairs) }
        }
    }

    /// The counts of files no longer kept.
    private var retired = (writes: 0, repairs: 0)

    /// Bytes written to `sandbox`'s hosts file so far, and how often it had to be repaired.
    public func statistics(_ sandbox: String) -> (bytesWritten: Int, repairs: Int)? {
        lock.withLock { sandboxes[sandbox].map { ($0.file.bytesWritten, $0.file.repairs) } }
    }

    private func table(of network: HostLabel) -> Int {
        if let table = tableOfNetwork[network] { return table }
        let table: Int
        if let free = freeTables.popLast() {
            table = free
            tables[table] = NetworkLines(network: network, table: table)
        } else {
            table = tables.count
            tables.append(NetworkLines(network: network, table: table))
        }
        tableOfNetwork[network] = table
        return table
    }

    /// Gives a network's table back once it has no line and no sandbox is attached to it (a
    /// daemon that sees many networks come and go keeps only those in use).
    private func recycleIfUnused(_ network: HostLabel) {
        guard let table = tableOfNetwork[network], tables[table].isEmpty,
              !sandboxes.values.contains(where: { $0.networks[network] != nil }) else { return }
        tableOfNetwork[network] = nil
        tables[table] = NetworkLines(network: network, table: table)
        freeTables.append(table)
    }

    /// Networks with a table, and index pages all files keep (for tests).
    var retained: (tables: Int, pages: Int) {
        lock.withLock { (tableOfNetwork.count, sandboxes.values.reduce(0) { $0 + $1.file.indexPages }) }
    }

    /// Applies `changes` (the model already holds them) to `sandbox`'s hosts file.
    private func apply(_ changes: [LineChange], to sandbox: String, _ failures: inout [Failure]) {
        guard !changes.isEmpty, let file = sandboxes[sandbox]?.file else { return }
        do { try file.apply(changes, from: self) } catch {
            logger.warning("hosts file not updated, will repair on the next change", metadata: [
                "sandbox": "\(sandbox)", "path": "\(file.file.path)", "error": "\(error)",
            ])
            failures.append(Failure(sandbox: sandbox, error: error))
        }
    }
}

extension HostsWriter: HostsLineSource {
    func entry(_ id: LineID) -> HostsEntry? { tables[id.table].entry(at: id.index) }
}
