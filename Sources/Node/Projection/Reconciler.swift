import Addressing
import ClusterState
import Foundation
import Logging
import Store
import Synchronization

/// Projects the store onto this host, for every change, this host's own included: for each
/// network, its DNS zone (every cluster network is in scope for the resolver as soon as the
/// store has it, with or without endpoints) and, when it goes, its devices here; for each
/// endpoint of a network this host is on, DNS records and hosts-file lines, and for endpoints
/// on other hosts one neighbour and one FDB entry on each overlay network that exists here.
/// Starts from a listing and watches from the revision after it; if the store compacted that
/// history, it lists again.
///
/// A host pays only for its own networks: it watches every network record (they define DNS
/// scope) but the endpoints and address claims only of the networks something here is on
/// (`Reconciler+Interest.swift`), listed when it joins one and dropped when it leaves.
///
/// It owns its input (the store, through `ClusterRegistry`) and sees its outputs only through
/// their interfaces (`Projections.swift`): it knows nothing of the daemon, and only emits: each
/// remote endpoint goes to the peer table (which the overlay driver keeps per network and
/// replays into a network made later), each network that left to the devices' owner.
///
/// It also keeps what allocators read without a store round trip: the address claims of each
/// watched network, from the same listings and watch.
final class Reconciler: @unchecked Sendable {
    private let hostID: String
    let registry: ClusterRegistry
    private let records: any DNSProjection
    private let hosts: any HostsProjection
    private let peers: any PeerProjection
    /// Told of networks that leave the store: the owner of this host's network devices.
    private let teardown: any NetworkTeardown
    private let cache: StoreCache?
    let events: EventHub
    let logger: Logger
    /// Peers the kernel refused (for metrics).
    let peerErrors = Atomic<Int>(0)
    let lock = NSLock()
    /// The endpoints as last applied, by store key.
    var applied: [String: EndpointState] = [:]
    /// The networks as last applied, by name.
    private var networks: [String: NetworkRecord] = [:]
    /// Address claims by network, as last seen.
    var claims: [String: Set<IPAddress>] = [:]
    /// This host's endpoints withdrawn here before the store heard of it (a sandbox that vanished
    /// while the store was away): kept out of every projection until the store deletes them.
    var suppressed: Set<String> = []
    var watch: (any RangeWatch)?
    private let filesQueue = DispatchQueue(label: "dnsd-hosts-files")
    var stopped = false
    /// True once a listing has been applied and its watch runs (`start`).
    var started = false
    /// The networks whose endpoints and claims are watched, with the revisions their listings
    /// reflected (events at or before them are already in the listing).
    var interest: [String: ListedRevisions] = [:]
    /// Commands attaching to a network right now (`using`): it stays watched while they run.
    var holds: [String: Int] = [:]
    /// Settle rounds in a row each watched network was found unused.
    var idleRounds: [String: Int] = [:]
    /// The networks something on this host is on (sandboxes, runtimes' containers, Docker
    /// endpoints): their owners answer. Never called under `lock`.
    let inUse: @Sendable () -> Set<String>
    /// Joins (shared, one network's at a time), leaves and (re)starts (exclusive): each lists
    /// and changes the watch's ranges.
    let interestGate = InterestGate()
    /// Store events received (all watched ranges), for metrics.
    let eventsReceived = Atomic<Int>(0)
    /// The newest store revision applied, and when the last change came (for metrics).
    private var revision: Int64 = 0
    private var lastEvent: Date?

    init(hostID: String, registry: ClusterRegistry, records: any DNSProjection, hosts: any HostsProjection,
         peers: any PeerProjection, teardown: any NetworkTeardown, cache: StoreCache?, events: EventHub, logger: Logger,
         inUse: @escaping @Sendable () -> Set<String>) {
        self.hostID = hostID
        self.inUse = inUse
        self.teardown = teardown
        self.registry = registry
        self.records = records
        self.hosts = hosts
        self.peers = peers
        self.cache = cache
        self.events = events
        self.logger = logger
    }

    /// The newest store revision applied and when the last store event arrived.
    func watchProgress() -> (revision: Int64, lastEvent: Date?) { lock.withLock { (revision, lastEvent) } }

    /// Lists the networks, then the endpoints and claims of each network this host is on, and
    /// watches each range from the revision after its listing. Replaces any earlier watch (a
    /// restart after compaction, a new lease): what changed meanwhile is applied as a difference.
    func start() throws {
        try interestGate.exclusive { try startInTurn() }
    }

    private func startInTurn() throws {
        let (networkList, revision) = try registry.networksWithRevision()
        let wanted = lock.withLock { Set(interest.keys).union(holds.keys) }.union(inUse())
        var listings: [String: NetworkListing] = [:]
        for name in wanted.sorted() { listings[name] = try list(name) }
        let gone: [NetworkRecord] = lock.withLock {
            self.revision = max(self.revision, revision)
            var changes: [String: NetworkRecord?] = Dictionary(networkList.map { ($0.name, .some($0)) }, uniquingKeysWith: { a, _ in a })
            for name in networks.keys where changes[name] == nil { changes[name] = .some(nil) }
            let gone = applyNetworks(changes)
            interest = listings.mapValues(\.revisions)
            claims = listings.mapValues(\.claims)
            idleRounds = [:]
            let endpoints = listings.values.flatMap(\.endpoints)
            let byKey = Dictionary(endpoints.map { (key($0), $0) }, uniquingKeysWith: { first, _ in first })
            // Kept out until the store deleted them: a listing of their network without them says it has.
            suppressed = suppressed.filter { byKey[$0] != nil || listings[Self.network(ofKey: $0)] == nil }
            apply(removing: applied.filter { byKey[$0.key] == nil }.map(\.value),
                  putting: endpoints.filter { applied[key($0)] != $0 }, filesInline: true)
            return gone
        }
        tearDown(gone)
        let previous = lock.withLock { () -> (any RangeWatch)? in
            defer { watch = nil }
            return watch
        }
        // A watch that ended (or one a restart replaces) is released: its thread and connection.
        previous?.cancel()
        let handle = try registry.store.watch(ranges: [:], events: { [weak self] events in
            self?.apply(events)
        }, failed: { [weak self] error in
            guard let self else { return }
            logger.warning("watch ended (\(error)); listing again")
            DispatchQueue.global().async { self.restart() }
        })
        // Each range from the revision after its listing, with the keys that listing had (a store
        // without history to replay reports those gone since as deleted).
        handle.add(prefix: Keys.networks, from: revision + 1, listed: Set(networkList.map { Keys.networks + $0.name }))
        for (name, listing) in listings {
            watchRanges(of: name, listing, on: handle)
        }
        let keep = lock.withLock { () -> Bool in
            guard !stopped else { return false }
            watch = handle
            started = true
            return true
        }
        if !keep { handle.cancel() }
    }

    /// Applies a cached view of the store (a start while the store is unreachable): records,
    /// hosts files and peers as they were; `start()` later reconciles with the real store.
    func seed(_ snapshot: StoreCache.Snapshot) {
        lock.withLock {
            _ = applyNetworks(Dictionary(snapshot.networks.map { ($0.name, Optional($0)) }, uniquingKeysWith: { a, _ in a }))
            apply(removing: [], putting: snapshot.endpoints, filesInline: true)
        }
    }

    /// What is applied now: every endpoint and network.
    func known() -> (endpoints: [EndpointState], networks: [NetworkRecord]) {
        lock.withLock { (Array(applied.values), Array(networks.values)) }
    }

    /// The network record as last seen in the store, if any.
    func network(named name: String) -> NetworkRecord? { lock.withLock { networks[name] } }

    /// Lets the store's copy of these endpoints through again (their release was taken: what
    /// the store says of them from now on is the truth).
    func unsuppress(_ endpoints: [EndpointState]) {
        lock.withLock { suppressed.subtract(endpoints.map(key)) }
    }

    /// The addresses claimed on `network`, as last seen in the store.
    func claimedAddresses(on network: String) -> Set<IPAddress> { lock.withLock { claims[network] ?? [] } }

    /// Takes this host's endpoints out of DNS, hosts files and events now, ahead of the store
    /// (which is told later, when it answers): until the store deletes them, a listing or a
    /// watch event that still has them changes nothing.
    func suppress(_ endpoints: [EndpointState]) {
        lock.withLock {
            let keys = endpoints.map(key)
            suppressed.formUnion(keys)
            apply(removing: keys.compactMap { applied[$0] }, putting: [])
        }
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
                logger.warning("listing the store failed (\(error)); retrying in \(delay) s")
                Thread.sleep(forTimeInterval: delay)
                delay = min(delay * 2, 2)
            }
        }
    }

    func stop() {
        let handle = lock.withLock { () -> (any RangeWatch)? in
            stopped = true
            defer { watch = nil }
            return watch
        }
        handle?.cancel()
    }

    func key(_ endpoint: EndpointState) -> String { "\(endpoint.network)/\(endpoint.id)" }

    /// The network of an endpoint key (`NETWORK/ID`).
    static func network(ofKey key: String) -> String { String(key.prefix { $0 != "/" }) }

    private func apply(_ events: [WatchEvent]) {
        eventsReceived.add(events.count, ordering: .relaxed)
        let gone: [NetworkRecord] = lock.withLock {
            lastEvent = Date()
            if let newest = events.map(\.entry.modRevision).max() { revision = max(revision, newest) }
            // The last event of each key wins; nil: deleted (or unreadable). An endpoint or a
            // claim counts only on a watched network and after its listing (a range just
            // removed, or one from before a join's listing, may still have events on the way).
            var finalNetworks: [String: NetworkRecord?] = [:]
            var finalEndpoints: [String: EndpointState?] = [:]
            for event in events {
                let revision = event.entry.modRevision
                switch ClusterRegistry.change(event, logger: logger) {
                case .network(let name, let record)?: finalNetworks[name] = .some(record)
                case .endpoint(let k, let state)?:
                    guard let listed = interest[Self.network(ofKey: k)], revision > listed.endpoints else { continue }
                    finalEndpoints[k] = .some(state)
                case .addressClaim(let network, let address, let held)?:
                    guard let listed = interest[network], revision > listed.claims else { continue }
                    if held { claims[network, default: []].insert(address) } else { claims[network]?.remove(address) }
                case nil: continue
                }
            }
            // Networks first: an endpoint's network is known (and its zone in scope) before its records.
            let gone = applyNetworks(finalNetworks)
            for (k, state) in finalEndpoints where state == nil { suppressed.remove(k) }
            apply(removing: finalEndpoints.compactMap { k, state in state == nil ? applied[k] : nil },
                  putting: finalEndpoints.values.compactMap { $0 })
            return gone
        }
        tearDown(gone)
    }

    /// Under `lock`: takes network changes (nil: removed) into the DNS scope and the known
    /// networks, and programs the peers of a network that just became known. Returns the
    /// records whose local devices must go (removed, or re-created with other parameters),
    /// for `tearDown` outside the lock.
    private func applyNetworks(_ changes: [String: NetworkRecord?]) -> [NetworkRecord] {
        var gone: [NetworkRecord] = []
        var appeared: [NetworkRecord] = []
        records.update { table in
            for (name, record) in changes {
                let old = networks[name]
                if let old, old == record { continue }
                if let old { gone.append(old) }
                guard let label = try? HostLabel(name, what: "network") else { continue }
                if let record, let families = try? record.families {
                    networks[name] = record
                    table.setNetwork(label, subnets: families.map(\.subnet))
                    // Networks and endpoints come on streams of their own: a removal of this
                    // name that arrived late took the endpoints applied since with it.
                    for endpoint in applied.values where endpoint.network == name {
                        if let record = endpoint.record { table.setEndpoint(endpoint.id, on: label, record) }
                    }
                    appeared.append(record)
                } else {
                    networks[name] = nil
                    claims[name] = nil
                    table.removeNetwork(label)
                }
            }
        }
        if events.isFollowed {
            let now = EventHub.now()
            events.publish(gone.filter { changes[$0.name] == .some(nil) }.map {
                ChangeEvent(time: now, kind: .network, action: .remove, network: $0.name, driver: $0.driver.rawValue, subnet: $0.subnet,
                            subnet6: $0.subnet6)
            } + appeared.map {
                ChangeEvent(time: now, kind: .network, action: .add, network: $0.name, driver: $0.driver.rawValue, subnet: $0.subnet,
                            subnet6: $0.subnet6)
            })
        }
        if !changes.isEmpty { cache?.markChanged() }
        return gone
    }

    /// Tells the devices' owner of networks that left the store (or changed identity), outside
    /// `lock`, in store order.
    private func tearDown(_ records: [NetworkRecord]) {
        for record in records { teardown.networkLeft(record) }
    }

    /// Under `lock`: DNS records first, all in one table update, then kernel peers; then the
    /// hosts-file lines, which for a watch batch are written on `filesQueue` so that a burst of
    /// events (thousands of endpoints, each a line in hundreds of files) never holds the next
    /// batch's DNS answers back. The queue is serial: files see the changes in store order.
    /// A listing (`filesInline`) writes them before returning, as recovery's sweep expects.
    func apply(removing: [EndpointState], putting: [EndpointState], filesInline: Bool = false, announce: Bool = true) {
        var gone = removing, added: [(EndpointState, HostLabel)] = []
        for endpoint in putting {
            let k = key(endpoint)
            if suppressed.contains(k) { continue }
            if let old = applied[k] {
                if old == endpoint { continue }
                gone.append(old)
            }
            guard endpoint.record != nil, let label = try? HostLabel(endpoint.network, what: "network") else { continue }
            added.append((endpoint, label))
        }
        guard !gone.isEmpty || !added.isEmpty else { return }
        records.update { table in
            for old in gone {
                if let label = try? HostLabel(old.network, what: "network") { table.removeEndpoint(old.id, from: label) }
            }
            for (endpoint, label) in added { table.setEndpoint(endpoint.id, on: label, endpoint.record!) }
        }
        for old in gone {
            applied[key(old)] = nil
            programPeer(old, add: false)
        }
        for (endpoint, _) in added {
            applied[key(endpoint)] = endpoint
            programPeer(endpoint, add: true)
        }
        if announce && events.isFollowed {
            let now = EventHub.now(), me = hostID
            func event(_ endpoint: EndpointState, _ action: ChangeEvent.Action) -> ChangeEvent {
                ChangeEvent(time: now, kind: .endpoint, action: action, network: endpoint.network, name: endpoint.name,
                            aliases: endpoint.aliases, address: endpoint.ipv4, address6: endpoint.ipv6, host: endpoint.host, local: endpoint.host == me)
            }
            events.publish(gone.map { event($0, .remove) } + added.map { event($0.0, .add) })
        }
        let hosts = self.hosts
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
        cache?.markChanged()
    }

    /// One remote endpoint into (or out of) its network's peer table; the overlay driver
    /// programs it now if the network exists here, or when it is made. Endpoints of bridge
    /// networks (one host's alone) have no peers.
    private func programPeer(_ endpoint: EndpointState, add: Bool) {
        let addresses = endpoint.addresses
        guard endpoint.host != hostID, networks[endpoint.network]?.driver != .bridge,
              let label = try? HostLabel(endpoint.network, what: "network"), !addresses.isEmpty, let vtep = IPv4Address(endpoint.vtep)
        else { return }
        do {
            if add { try peers.addPeer(addresses, vtep: vtep, on: label) } else {
                try peers.removePeer(addresses, vtep: vtep, on: label)
            }
        } catch {
            peerErrors.add(1, ordering: .relaxed)
            logger.warning("peer \(add ? "add" : "remove") failed", metadata: ["endpoint": "\(endpoint.id)", "error": "\(error)"])
        }
    }
}
