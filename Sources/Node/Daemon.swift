import Addressing
import ClusterState
import Foundation
import HostsWriter
import Logging
import Netns
import OverlayNet
import Resolver
import Store
import Synchronization

/// The per-host daemon, composed here from owners that each keep one concern behind a short
/// lock of its own (DESIGN.md §3, concurrency contract): this host's sandboxes
/// (`SandboxTable`), the runtimes' Docker endpoints (`DockerEndpointTable`), the networks'
/// devices and peer tables (`NetworkDevices`, the overlay driver), the lease (`HostMembership`),
/// the store's projection (`Reconciler`). No lock is held across a store request or any wait:
/// commands on one sandbox are ordered (`KeyedOrder`), commands on different sandboxes run at
/// once, and reads never wait for a write or the store. Background work runs on `Ticker`s.
public final class Daemon: @unchecked Sendable {
    public struct Configuration {
        var hostID: String
        var advertise: IPv4Address
        var dnsMode: NameMode
        var upstreams: [SocketAddress]
        var upstreamTimeoutMilliseconds: Int
        var leaseTTL: Int
        var hostResolvConf: ResolvConf
        /// Where the journal of this host's sandboxes lives.
        var stateDirectory: String
        /// Who hears of forwarded answers and failed tries (the metrics), if anyone.
        var forwardObserver: (any ForwardObserver)? = nil
        /// The host's network namespace (bridges, vxlan sockets, NAT): nil for the process's own.
        /// A daemon embedded in a test runs in a namespace of its own this way.
        var hostNamespace: NamespaceHandle? = nil
        /// Namespaces kept ready for `run` (0: none).
        var warmNamespaces = 4
        /// How often adopted sandboxes and Docker's containers are checked for a namespace or
        /// container that went away (a runtime that never said so).
        public var livenessInterval: TimeInterval = 1

        public init(hostID: String, advertise: IPv4Address, dnsMode: NameMode, upstreams: [SocketAddress],
                    upstreamTimeoutMilliseconds: Int, leaseTTL: Int, hostResolvConf: ResolvConf, stateDirectory: String,
                    forwardObserver: (any ForwardObserver)? = nil, hostNamespace: NamespaceHandle? = nil, warmNamespaces: Int = 4) {
            self.hostNamespace = hostNamespace
            self.warmNamespaces = warmNamespaces
            self.hostID = hostID
            self.advertise = advertise
            self.dnsMode = dnsMode
            self.upstreams = upstreams
            self.upstreamTimeoutMilliseconds = upstreamTimeoutMilliseconds
            self.leaseTTL = leaseTTL
            self.hostResolvConf = hostResolvConf
            self.stateDirectory = stateDirectory
            self.forwardObserver = forwardObserver
        }
    }

    let configuration: Configuration
    let store: any KeyValueStore
    let registry: ClusterRegistry
    let logger: Logger
    let thread: NamespaceThread
    let factory: SandboxFactory
    let devices: NetworkDevices
    let records = RecordStore()
    let dns: DNSServer?
    let hosts: HostsWriter
    let sandboxes: SandboxTable
    let docker: DockerEndpointTable
    let cache: StoreCache
    /// The changes the reconciler applies, for `GET /v1/events`.
    public let events = EventHub()
    let membership: HostMembership
    let reconciler: Reconciler
    let picker: AddressPicker
    let withdrawals: PendingWithdrawals
    let order: KeyedOrder
    let localAddresses = LocalAddresses()
    let commands = CommandsInFlight()
    private var tickers: [Ticker] = []

    var overlay: OverlayDriver { devices.overlay }
    var bridges: LocalBridgeDriver { devices.bridges }

    public init(configuration: Configuration, store: any KeyValueStore, logger: Logger) throws {
        self.configuration = configuration
        self.store = store
        self.logger = logger
        registry = ClusterRegistry(store: store, logger: logger)
        thread = try NamespaceThread(name: "dnsd-netns")
        // A few namespaces kept warm: `run` then names one instead of making one.
        factory = try SandboxFactory(thread: thread, warmNamespaces: configuration.warmNamespaces)
        let overlay = try OverlayDriver(host: .init(id: configuration.hostID, advertise: configuration.advertise, namespace: configuration.hostNamespace),
                                        thread: thread, logger: logger)
        let bridges = try LocalBridgeDriver(hostNamespace: configuration.hostNamespace, thread: thread, logger: logger)
        let sandboxes = SandboxTable(journal: try SandboxJournal(directory: configuration.stateDirectory + "/sandboxes", logger: logger))
        self.sandboxes = sandboxes
        let docker = DockerEndpointTable()
        self.docker = docker
        devices = NetworkDevices(overlay: overlay, bridges: bridges, hostID: configuration.hostID, logger: logger,
                                 inUse: { sandboxes.uses(network: $0) || docker.uses(network: $0) })
        hosts = HostsWriter(mode: configuration.dnsMode, hostResolvConf: configuration.hostResolvConf,
                            upstreams: configuration.upstreams.map(\.address.description), logger: logger)
        if configuration.dnsMode == .dns {
            var dnsConfiguration = DNSServer.Configuration()
            dnsConfiguration.upstreams = configuration.upstreams
            dnsConfiguration.upstreamTimeoutMilliseconds = configuration.upstreamTimeoutMilliseconds
            let server = try DNSServer(records: records, configuration: dnsConfiguration, logger: logger)
            if let observer = configuration.forwardObserver { server.observeForwarding(observer) }
            server.start()
            dns = server
        } else {
            dns = nil
        }
        cache = StoreCache(path: configuration.stateDirectory + "/cluster-cache.json", logger: logger)
        let membership = HostMembership(store: store, registry: registry,
                                        record: HostRecord(id: configuration.hostID, advertise: configuration.advertise.description),
                                        ttl: configuration.leaseTTL, logger: logger)
        self.membership = membership
        let reconciler = Reconciler(hostID: configuration.hostID, registry: registry, records: records, hosts: hosts, peers: overlay,
                                    teardown: devices, cache: cache, events: events, logger: logger,
                                    inUse: { sandboxes.networksInUse().union(docker.networksInUse()) })
        self.reconciler = reconciler
        picker = AddressPicker(claimed: { reconciler.claimedAddresses(on: $0) })
        let order = KeyedOrder()
        self.order = order
        withdrawals = PendingWithdrawals(registry: registry, hostID: configuration.hostID, lease: { membership.lease }, order: order,
                                         released: { reconciler.unsuppress($0) }, logger: logger)
        devices.willRemove = { [unowned self] network in networkDevicesGoing(network.name) }

        var unreachable: Error?
        do { try membership.join() } catch let error as StoreError { unreachable = error }
        let started = DispatchTime.now().uptimeNanoseconds
        func elapsed() -> String { "\((DispatchTime.now().uptimeNanoseconds - started) / 1_000_000) ms" }
        let published: Bool
        // Before any sandbox takes an address on the gateway bridge: the egress legs Docker's
        // containers use keep theirs.
        reserveEgressLegs()
        if let unreachable {
            // Without the store: what this host knew last, until the store is back.
            guard let known = cache.load() else { throw unreachable }
            logger.warning("store unreachable; serving what this host knew until it is back", metadata: ["error": "\(unreachable)"])
            let recovered = recoverLocally(known: known)
            reconciler.seed(known)
            hosts.sweepUnclaimed()
            logger.info("sandboxes adopted again from the journal and the cache", metadata: ["count": "\(recovered.count)", "after": "\(elapsed())"])
            published = false
        } else {
            // Local sandboxes answer DNS again before their records are written back to the store.
            let recovered = recoverLocally(known: nil)
            logger.info("sandboxes adopted again", metadata: ["count": "\(recovered.count)", "after": "\(elapsed())"])
            try reconciler.start()
            hosts.sweepUnclaimed()
            logger.info("records loaded from the store", metadata: ["after": "\(elapsed())"])
            do {
                if let lease = membership.lease { _ = try publishAgain(under: lease, everything: true) }
                published = true
            } catch {
                logger.warning("publishing the recovered sandboxes failed; the keep-alive tries again", metadata: ["error": "\(error)"])
                published = false
            }
            logger.info("sandboxes published again", metadata: ["count": "\(recovered.count)", "after": "\(elapsed())"])
        }
        membership.start(publishFirst: !published, joined: { [unowned self] in try reconciler.start() },
                         publish: { [unowned self] lease, everything in try publishAgain(under: lease, everything: everything) })
        cache.start { [unowned self] in cacheSnapshot() }
        let liveness = LivenessCheck(daemon: self)
        tickers = [
            Ticker("liveness check", every: configuration.livenessInterval, logger: logger) { liveness.round() },
            Ticker("pending withdrawals", every: 0.25, logger: logger) { [unowned self] in withdrawals.retryDue() },
            Ticker("network interest", every: 1, logger: logger) { try reconciler.settleInterest() },
        ]
        for ticker in tickers { ticker.start() }
    }

    /// The networks and endpoints to cache: the reconciler's, and the networks of this host's
    /// own attachments.
    private func cacheSnapshot() -> StoreCache.Snapshot {
        let local = sandboxes.all().flatMap { $0.attachments.filter { $0.published != nil }.map(\.network) }
        let (endpoints, networks) = reconciler.known()
        var byName: [String: NetworkRecord] = [:]
        for network in networks + local { byName[network.name] = network }
        return StoreCache.Snapshot(networks: byName.values.sorted { $0.name < $1.name }, endpoints: endpoints.sorted { $0.id < $1.id })
    }

    /// The lease a change is written under; refused while the daemon has none (it started
    /// without the store and has not reached it yet).
    func currentLease() throws -> LeaseID {
        guard let lease = membership.lease else {
            throw NodeError.unavailable("store unavailable: this daemon started without it and is still trying to reach it")
        }
        return lease
    }

    /// The cluster's networks as this host last saw them in the store (the reconciler's view, in
    /// memory): for loops that look every second, where a store listing each time would be waste.
    public func knownNetworks() -> [NetworkRecord] { reconciler.known().networks }

    /// A network by name: the watch's copy (no round trip), or the store's for one this host has
    /// not heard of yet (made a moment ago on another host).
    func network(_ name: HostLabel) throws -> NetworkRecord {
        if let known = reconciler.network(named: name.text) { return known }
        return try registry.network(name)
    }

    /// What the metrics read at a scrape: counters and owners' sizes, no lock a command holds.
    public func metricsSample() -> MetricsSample {
        var sample = MetricsSample()
        sample.dns = dns?.counters.snapshot() ?? []
        let (endpoints, networks) = reconciler.known()
        var byNetwork: [String: (local: Int, remote: Int)] = Dictionary(uniqueKeysWithValues: networks.map { ($0.name, (0, 0)) })
        for endpoint in endpoints {
            var counts = byNetwork[endpoint.network] ?? (0, 0)
            if endpoint.host == configuration.hostID { counts.local += 1 } else { counts.remote += 1 }
            byNetwork[endpoint.network] = counts
        }
        sample.endpoints = byNetwork
        sample.sandboxes = sandboxes.count
        sample.storeUp = membership.reachable.load(ordering: .relaxed)
        let watch = reconciler.watchProgress()
        sample.watchRevision = watch.revision
        sample.lastStoreEvent = watch.lastEvent
        sample.storeEvents = reconciler.eventsReceived.load(ordering: .relaxed)
        sample.watchedNetworks = reconciler.watchedNetworks().count
        let files = hosts.totals()
        sample.hostsFileWrites = files.writes
        sample.hostsFileRepairs = files.repairs
        sample.peerProgrammingErrors = reconciler.peerErrors.load(ordering: .relaxed) + overlay.replayFailures
        sample.pendingWithdrawals = withdrawals.count
        return sample
    }

    /// A best-effort step (a cleanup whose failure must not stop what follows): a failure is
    /// logged with `what` failed, never dropped.
    func attempt(_ what: String, _ body: () throws -> Void) {
        do { try body() } catch {
            logger.warning("\(what) failed", metadata: ["error": "\(error)"])
        }
    }

    /// Refuses every later command, then waits (up to 5 s) for those under way to finish or roll back.
    public func refuseCommands() {
        commands.refuseNew(waitingUpTo: 5)
    }

    public func shutdown() {
        for ticker in tickers { ticker.stop() }
        membership.stop()
        reconciler.stop()
        cache.stop()
        factory.shutdown()
        // Sandboxes keep running: their namespaces, interfaces and files stay; the lease lapses
        // unless the daemon comes back (issue 6 covers re-adoption).
        dns?.shutdown()
    }
}

/// The commands being carried out, and whether new ones are still taken (not while stopping).
final class CommandsInFlight: @unchecked Sendable {
    private let condition = NSCondition()
    private var running = 0
    private var refusing = false

    func run<T>(_ body: () throws -> T) throws -> T {
        try condition.withLock {
            if refusing { throw NodeError.unavailable("the daemon is stopping") }
            running += 1
        }
        defer {
            condition.withLock {
                running -= 1
                condition.broadcast()
            }
        }
        return try body()
    }

    func refuseNew(waitingUpTo seconds: TimeInterval) {
        let deadline = Date().addingTimeInterval(seconds)
        condition.withLock {
            refusing = true
            while running > 0, condition.wait(until: deadline) {}
        }
    }
}
