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

/// The per-host daemon: writes local changes to the store first, and projects the store onto
/// this host (peers, DNS records, hosts files) through the `Reconciler`. Holds the drivers and
/// the local sandboxes; one lock serialises local changes.
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
        /// How often adopted sandboxes are checked for a namespace or container that went away.
        var livenessInterval: TimeInterval = 1

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
    let overlay: OverlayDriver
    let bridges: LocalBridgeDriver
    let records = RecordStore()
    let dns: DNSServer?
    let hosts: HostsWriter
    let journal: SandboxJournal
    let cache: StoreCache
    /// The changes the reconciler applies, for `GET /v1/events`.
    public let events = EventHub()
    /// Whether the store answered the last keep-alive (for metrics).
    let storeReachable = Atomic<Bool>(false)
    /// Set by `shutdown`: the keep-alive and reconnect loops end.
    let isShutDown = Atomic<Bool>(false)
    /// Whether the daemon holds a lease in the store (false while it started without the store).
    private(set) var connected = false
    /// Set (under `lock`) once the daemon is stopping: later commands are refused.
    private(set) var stopping = false
    /// The host's lease; "0" (none) until the store first answers, and every command is refused
    /// until then.
    private(set) var lease = LeaseID("0")
    let lock = NSLock()
    var sandboxes: [String: LocalSandbox] = [:]
    /// Docker's endpoints on this host, by Docker's endpoint id (the remote network driver).
    var dockerEndpoints: [String: DockerEndpoint] = [:]
    /// Per overlay network: the resolver dnsd serves at its gateway address (for Docker's
    /// containers, whose 127.0.0.11 is Docker's own: `docker run --dns GATEWAY`).
    var gatewayResolvers: [String: SandboxID] = [:]
    private var nextSandbox = 1
    /// Local address pools of the default bridge and the gateway bridge.
    var defaultPool = try! AddressPool(subnet: LocalBridgeDriver.BridgeSpec.defaultBridge.subnet)
    var gatewayPool = try! AddressPool(subnet: LocalBridgeDriver.BridgeSpec.gatewayBridge.subnet)
    var reconciler: Reconciler!

    public init(configuration: Configuration, store: any KeyValueStore, logger: Logger) throws {
        self.configuration = configuration
        self.store = store
        self.logger = logger
        registry = ClusterRegistry(store: store, logger: logger)
        thread = try NamespaceThread(name: "dnsd-netns")
        // A few namespaces kept warm: `run` then names one instead of making one.
        factory = try SandboxFactory(thread: thread, warmNamespaces: configuration.warmNamespaces)
        overlay = try OverlayDriver(host: .init(id: configuration.hostID, advertise: configuration.advertise, namespace: configuration.hostNamespace),
                                    thread: thread, logger: logger)
        bridges = try LocalBridgeDriver(hostNamespace: configuration.hostNamespace, thread: thread, logger: logger)
        journal = try SandboxJournal(directory: configuration.stateDirectory + "/sandboxes", logger: logger)
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
        var unreachable: Error?
        do {
            lease = try takeLease()
            connected = true
            storeReachable.store(true, ordering: .relaxed)
        } catch let error as StoreError {
            unreachable = error
        }
        reconciler = Reconciler(hostID: configuration.hostID, registry: registry, records: records, hosts: hosts, peers: overlay,
                                cache: cache, events: events, logger: logger)
        reconciler.teardown = self
        let started = DispatchTime.now().uptimeNanoseconds
        func elapsed() -> String { "\((DispatchTime.now().uptimeNanoseconds - started) / 1_000_000) ms" }
        if let unreachable {
            // Without the store: what this host knew last, until the store is back.
            guard let known = cache.load() else { throw unreachable }
            logger.warning("store unreachable; serving what this host knew until it is back", metadata: ["error": "\(unreachable)"])
            let recovered = lock.withLock { recoverLocally(known: known) }
            reconciler.seed(known)
            hosts.sweepUnclaimed()
            logger.info("sandboxes adopted again from the journal and the cache", metadata: ["count": "\(recovered.count)", "after": "\(elapsed())"])
            connectLater(recovered)
        } else {
            // Local sandboxes answer DNS again before their records are written back to the store.
            let recovered = lock.withLock { recoverLocally(known: nil) }
            logger.info("sandboxes adopted again", metadata: ["count": "\(recovered.count)", "after": "\(elapsed())"])
            try reconciler.start()
            hosts.sweepUnclaimed()
            logger.info("records loaded from the store", metadata: ["after": "\(elapsed())"])
            var published = true
            do { try lock.withLock { try republish(recovered) } } catch {
                logger.warning("publishing the recovered sandboxes failed; the keep-alive tries again", metadata: ["error": "\(error)"])
                published = false
            }
            logger.info("sandboxes published again", metadata: ["count": "\(recovered.count)", "after": "\(elapsed())"])
            startKeepAlive(publishFirst: !published)
        }
        cache.start { [unowned self] in cacheSnapshot() }
        startLivenessChecks(interval: configuration.livenessInterval)
    }

    /// Retries the store until it answers, then does what a start with the store does: a lease,
    /// the host record, the listing and watch (reconciling the cached view), the republish.
    private func connectLater(_ recovered: [Republication]) {
        Thread.detachNewThread { [self] in
            while !isShutDown.load(ordering: .relaxed) {
                Thread.sleep(forTimeInterval: 0.5)
                do {
                    let granted = try takeLease()
                    try lock.withLock {
                        lease = granted
                        try reconciler.start()
                        try republish(recovered)
                        connected = true
                    }
                    storeReachable.store(true, ordering: .relaxed)
                    logger.info("store reachable again; this host is published and watching")
                    startKeepAlive()
                    return
                } catch {
                    logger.debug("store still unreachable: \(error)")
                }
            }
        }
    }

    /// The networks and endpoints to cache: the reconciler's, and the networks of this host's
    /// own attachments.
    private func cacheSnapshot() -> StoreCache.Snapshot {
        let local = lock.withLock { sandboxes.values.flatMap { $0.attachments.filter { $0.published != nil }.map(\.network) } }
        let (endpoints, networks) = reconciler.known()
        var byName: [String: NetworkRecord] = [:]
        for network in networks + local { byName[network.name] = network }
        return StoreCache.Snapshot(networks: byName.values.sorted { $0.name < $1.name }, endpoints: endpoints.sorted { $0.id < $1.id })
    }

    func nextSandboxID() -> SandboxID {
        defer { nextSandbox += 1 }
        return SandboxID(nextSandbox)
    }

    /// A new lease with this host's record under it.
    private func takeLease() throws -> LeaseID {
        let granted = try store.grantLease(ttl: configuration.leaseTTL)
        try registry.registerHost(HostRecord(id: configuration.hostID, advertise: configuration.advertise.description), lease: granted)
        return granted
    }

    /// Keeps the host's lease alive; if it expired (the store was unreachable for longer than
    /// the TTL), or publishing failed before (`publishFirst`), takes a new one and publishes this
    /// host and its sandboxes again, until that succeeds.
    private func startKeepAlive(publishFirst: Bool = false) {
        let interval = max(0.5, Double(configuration.leaseTTL) / 3)
        Thread.detachNewThread { [self] in
            var mustPublish = publishFirst
            while !isShutDown.load(ordering: .relaxed) {
                Thread.sleep(forTimeInterval: interval)
                if isShutDown.load(ordering: .relaxed) { return }
                do {
                    if !mustPublish, try store.keepAlive(lease) {
                        storeReachable.store(true, ordering: .relaxed)
                        continue
                    }
                    logger.warning("publishing this host again (lease expired or an earlier attempt failed)")
                    mustPublish = true
                    try lock.withLock {
                        lease = try takeLease()
                        try republish(sandboxes.values.map { Republication(name: $0.name, endpoints: $0.attachments.compactMap(\.published)) }
                                      + dockerRepublications())
                    }
                    mustPublish = false
                    storeReachable.store(true, ordering: .relaxed)
                } catch {
                    storeReachable.store(false, ordering: .relaxed)
                    logger.warning("lease keep-alive failed: \(error)")
                }
            }
        }
    }

    /// Records `local` as this host's (in memory and in the journal).
    func remember(_ local: LocalSandbox) {
        sandboxes[local.name.text] = local
        journal.save(local.journalEntry)
    }

    /// Drops `name` from this host's sandboxes (in memory and in the journal).
    func forget(_ name: String) {
        sandboxes[name] = nil
        journal.remove(name)
    }

    /// The cluster's networks as this host last saw them in the store (the reconciler's view, in
    /// memory): for loops that look every second, where a store listing each time would be waste.
    public func knownNetworks() -> [NetworkRecord] { reconciler.known().networks }

    /// What the metrics read at a scrape.
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
        sample.sandboxes = lock.withLock { sandboxes.count }
        sample.storeUp = storeReachable.load(ordering: .relaxed)
        let watch = reconciler.watchProgress()
        sample.watchRevision = watch.revision
        sample.lastStoreEvent = watch.lastEvent
        let files = hosts.totals()
        sample.hostsFileWrites = files.writes
        sample.hostsFileRepairs = files.repairs
        sample.peerProgrammingErrors = reconciler.peerErrors.load(ordering: .relaxed)
        return sample
    }

    /// A best-effort step (a cleanup whose failure must not stop what follows): a failure is
    /// logged with `what` failed, never dropped.
    func attempt(_ what: String, _ body: () throws -> Void) {
        do { try body() } catch {
            logger.warning("\(what) failed", metadata: ["error": "\(error)"])
        }
    }

    /// Waits for the command under way to finish (or roll back), then refuses every later one.
    public func refuseCommands() {
        lock.withLock { stopping = true }
    }

    public func shutdown() {
        isShutDown.store(true, ordering: .relaxed)
        reconciler.stop()
        cache.stop()
        factory.shutdown()
        // Sandboxes keep running: their namespaces, interfaces and files stay; the lease lapses
        // unless the daemon comes back (issue 6 covers re-adoption).
        dns?.shutdown()
    }
}
