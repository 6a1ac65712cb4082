import Addressing
import ClusterState
import Foundation
import Logging
import Store

/// Projects the store onto this host, for every change, this host's own included: DNS records
/// and hosts-file lines for every endpoint, and for endpoints on other hosts, one neighbour and
/// one FDB entry on each overlay network that exists here. Starts from a listing and watches
/// from the revision after it; if the store compacted that history, it lists again.
final class Reconciler: @unchecked Sendable {
    private unowned let daemon: Daemon
    private let lock = NSLock()
    /// The endpoints as last applied, by store key.
    private var applied: [String: EndpointState] = [:]
    private var networks: [String: NetworkRecord] = [:]
    private var watch: (any WatchHandle)?
    private let filesQueue = DispatchQueue(label: "dnsd-hosts-files")
    private var stopped = false

    init(daemon: Daemon) { self.daemon = daemon }

    func start() throws {
        let (endpoints, revision) = try daemon.registry.endpoints()
        lock.withLock {
            let current = Dictionary(endpoints.map { (key($0), $0) }, uniquingKeysWith: { first, _ in first })
            apply(removing: applied.filter { current[$0.key] == nil }.map(\.value),
                  putting: endpoints.filter { applied[key($0)] != $0 }, filesInline: true)
        }
        watch = try daemon.store.watch(prefix: Keys.endpoints, from: revision + 1, events: { [weak self] events in
            self?.apply(events)
        }, failed: { [weak self] error in
            guard let self else { return }
            daemon.logger.warning("watch ended (\(error)); listing again")
            DispatchQueue.global().async { self.restart() }
        })
    }

    /// Applies a cached view of the store (a start while the store is unreachable): records,
    /// hosts files and peers as they were; `start()` later reconciles with the real store.
    func seed(_ snapshot: StoreCache.Snapshot) {
        lock.withLock {
            for network in snapshot.networks { networks[network.name] = network }
            apply(removing: [], putting: snapshot.endpoints, filesInline: true)
        }
    }

    /// What is applied now: every endpoint and the networks read so far.
    func known() -> (endpoints: [EndpointState], networks: [NetworkRecord]) {
        lock.withLock { (Array(applied.values), Array(networks.values)) }
    }

    /// Lists and watches again (after the store compacted the history the watch needed),
    /// retrying while the store cannot be reached; the projections stay as they are meanwhile.
    private func restart() {
        var delay = 0.1
        while !lock.withLock({ stopped }) {
            do {
                try start()
                return
            } catch {
                daemon.logger.warning("listing the store failed (\(error)); retrying in \(delay) s")
                Thread.sleep(forTimeInterval: delay)
                delay = min(delay * 2, 2)
            }
        }
    }

    func stop() {
        lock.withLock { stopped = true }
        watch?.cancel()
    }

    private func key(_ endpoint: EndpointState) -> String { "\(endpoint.network)/\(endpoint.id)" }

    private func apply(_ events: [WatchEvent]) {
        lock.withLock {
            // The last event of each key wins; nil: deleted.
            var final: [String: EndpointState?] = [:]
            for event in events {
                let k = String(event.entry.key.dropFirst(Keys.endpoints.count))
                switch event.kind {
                case .put:
                    guard let endpoint = ClusterRegistry.decodeEndpoint(event.entry, logger: daemon.logger) else { continue }
                    final[k] = .some(endpoint)
                case .delete:
                    final[k] = .some(nil)
                }
            }
            apply(removing: final.compactMap { k, state in state == nil ? applied[k] : nil },
                  putting: final.values.compactMap { $0 })
        }
    }

    /// The network an endpoint is on (read once from the store).
    private func network(_ name: String) -> NetworkRecord? {
        if let known = networks[name] { return known }
        guard let label = try? HostLabel(name, what: "network"), let record = try? daemon.registry.network(label) else { return nil }
        networks[name] = record
        return record
    }

    /// Under `lock`: DNS records first, all in one table update, then kernel peers; then the
    /// hosts-file lines, which for a watch batch are written on `filesQueue` so that a burst of
    /// events (thousands of endpoints, each a line in hundreds of files) never holds the next
    /// batch's DNS answers back. The queue is serial: files see the changes in store order.
    /// A listing (`filesInline`) writes them before returning, as recovery's sweep expects.
    private func apply(removing: [EndpointState], putting: [EndpointState], filesInline: Bool = false) {
        var gone = removing, added: [(EndpointState, HostLabel)] = []
        for endpoint in putting {
            let k = key(endpoint)
            if let old = applied[k] {
                if old == endpoint { continue }
                gone.append(old)
            }
            guard endpoint.record != nil, let label = try? HostLabel(endpoint.network, what: "network") else { continue }
            added.append((endpoint, label))
        }
        guard !gone.isEmpty || !added.isEmpty else { return }
        let subnets = Dictionary(added.map { ($0.0.network, (try? network($0.0.network)?.parsedSubnet).flatMap { $0 }) },
                                 uniquingKeysWith: { first, _ in first })
        daemon.records.update { table in
            for old in gone {
                if let label = try? HostLabel(old.network, what: "network") { table.removeEndpoint(old.id, from: label) }
            }
            for (endpoint, label) in added {
                if let subnet = subnets[endpoint.network].flatMap({ $0 }) { table.setNetwork(label, subnets: [subnet]) }
                table.setEndpoint(endpoint.id, on: label, endpoint.record!)
            }
        }
        for old in gone {
            applied[key(old)] = nil
            programPeer(old, add: false)
        }
        for (endpoint, _) in added {
            applied[key(endpoint)] = endpoint
            programPeer(endpoint, add: true)
        }
        let hosts = daemon.hosts
        let writeFiles = { @Sendable [gone, added] in
            _ = hosts.update(removing: gone.compactMap { old in (try? HostLabel(old.network, what: "network")).map { (old.id, $0) } },
                         setting: added.map { ($0.0.id, $0.1, $0.0.record!) })
        }
        if filesInline {
            filesQueue.sync {}  // what is queued first
            writeFiles()
        } else {
            filesQueue.async(execute: writeFiles)
        }
        daemon.cache.markChanged()
    }

    private func programPeer(_ endpoint: EndpointState, add: Bool) {
        guard endpoint.host != daemon.configuration.hostID, network(endpoint.network)?.driver == .overlay,
              let label = try? HostLabel(endpoint.network, what: "network"), let address = IPv4Address(endpoint.ipv4),
              let vtep = IPv4Address(endpoint.vtep), daemon.overlay.hasNetwork(label)
        else { return }
        do {
            if add { try daemon.overlay.addPeer(address, vtep: vtep, on: label) } else {
                try daemon.overlay.removePeer(address, vtep: vtep, on: label)
            }
        } catch {
            daemon.logger.warning("peer \(add ? "add" : "remove") failed", metadata: ["endpoint": "\(endpoint.id)", "error": "\(error)"])
        }
    }

    /// The remote endpoints of `network`, to program when the network first appears here.
    func remoteEndpoints(on network: String) -> [EndpointState] {
        lock.withLock { applied.values.filter { $0.network == network && $0.host != daemon.configuration.hostID } }
    }
}
