import Addressing
import Synchronization
import ClusterState
import ControlAPI
import Foundation
import Logging
import Node

/// What ties a host's dockerd to dnsd beyond the driver calls: the names of networks Docker
/// creates with the dnsd driver (made dnsd networks), dnsd's overlay networks made usable from
/// this host's Docker (created there with the dnsd driver), and the names of Docker's
/// containers (published when they start; withdrawn by the driver's `Leave` when they stop).
/// Each loop retries while dockerd is away, and resynchronises when it is back.
final class DockerIntegration: @unchecked Sendable {
    let engine: DockerEngine
    let daemon: Daemon
    let logger: Logger
    private let stopped = NSLock()
    private var isStopped = false
    /// Networks this dockerd refused to create, with the subnet and when (tried again later).
    private var refused: [String: (subnets: String, at: Date)] = [:]
    /// Set once the first resynchronisation has taken back every running container's endpoints:
    /// before that, the sweep would take an endpoint not adopted yet for a dead one.
    private let adoptedOnce = Atomic<Bool>(false)
    /// Endpoints whose taking back was refused once (logged at error once, then retried quietly).
    private let refusedEndpoints = Mutex<Set<String>>([])
    /// Docker networks of driver dnsd with no dnsd network, and for how many checks in a row.
    private var orphaned: [String: Int] = [:]
    /// Docker network id -> name, for the dnsd-driver networks of this dockerd: `DeleteNetwork`
    /// carries only the id, and dockerd has forgotten the network by then.
    private let namesLock = NSLock()
    private var networkNames: [String: (name: String, subnets: String?)] = [:]
    /// Docker networks dnsd itself is removing (a refused one, a stale copy): their
    /// `DeleteNetwork` leaves the cluster's network of that name alone.
    private var removing: Set<String> = []

    init(engine: DockerEngine, daemon: Daemon, logger: Logger) {
        self.engine = engine
        self.daemon = daemon
        self.logger = logger
    }

    var stopping: Bool { stopped.withLock { isStopped } }

    func stop() {
        stopped.withLock { isStopped = true }
        for ticker in tickers { ticker.stop() }
    }

    /// The periodic loops (the daemon's one `Ticker` mechanism: a failing round is logged once,
    /// then retried with backoff while dockerd is away).
    private var tickers: [Ticker] = []

    func start() {
        Thread.detachNewThread { [self] in followNames() }
        tickers = [
            // Each dnsd overlay network exists in this host's dockerd (driver dnsd), and a
            // dnsd-driver network the cluster no longer has (removed on another host) goes from
            // it after three checks in a row (a network Docker is creating gets its dnsd network
            // within ms).
            Ticker("docker network sync", every: 1, logger: logger) { [unowned self] in try syncNetworks() },
            // This host's Docker endpoints whose container no longer runs are withdrawn (a
            // dockerd that restarted or died never says `Leave` for them).
            Ticker("docker endpoint sweep", every: 3, logger: logger) { [unowned self] in
                guard adoptedOnce.load(ordering: .acquiring) else { return }
                let running = try engine.runningEndpoints()
                takeBack(running)
                daemon.dockerSweep(running: running.endpoints)
            },
            // Address releases the store did not take when Docker asked (no dockerd needed).
            Ticker("docker address releases", every: 1, logger: logger) { [unowned self] in daemon.dockerRetryReleases() },
        ]
        for ticker in tickers { ticker.start() }
    }

    /// `CreateNetwork` of Docker network `id`, checked already (`Daemon.dockerCheckNetwork`): once
    /// dockerd has stored it (just after the call returns: only then does its name exist), the
    /// dnsd network of that name and subnet exists. A name dnsd refuses (not a DNS label, or a
    /// dnsd network's with another subnet) is the one thing Docker never lets a driver judge in
    /// time: Docker's network is removed again at once, and the log says why.
    func networkCreated(id: String, pool: String, gateway: String?, pool6: String?, gateway6: String?) {
        Thread.detachNewThread { [self] in
            for _ in 0..<250 {
                if let network = try? engine.network(id) {
                    namesLock.withLock { networkNames[id] = (network.name, Self.subnets(network)) }
                    made(network.name, id: id, creation: NetworkCreation(name: network.name, driver: "overlay", subnet: pool, gateway: gateway,
                                                                         subnet6: pool6, gateway6: gateway6))
                    return
                }
                usleep(20_000)
            }
            logger.warning("docker never showed the network it created", metadata: ["network": "\(id)"])
        }
    }

    /// The dnsd network of Docker network `id` made: a refusal (a name dnsd refuses, another
    /// subnet under that name) removes Docker's network again; a store that does not answer is
    /// tried again for a minute first, and never taken for a refusal.
    private func made(_ name: String, id: String, creation: NetworkCreation) {
        for attempt in 0..<30 {
            do {
                try ensureDnsdNetwork(creation)
                return
            } catch let error where APIError(error).status == 503 {
                if attempt == 0 { logger.warning("the store does not answer; making the dnsd network for the docker network later", metadata: ["network": "\(name)"]) }
                sleep(2)
            } catch {
                logger.error("docker network refused by dnsd, removed again", metadata: ["network": "\(name)", "error": "\(APIError(error).message)"])
                do { try removeDockerNetwork(id) } catch {
                    logger.warning("cannot remove the refused docker network", metadata: ["network": "\(name)", "error": "\(error)"])
                }
                return
            }
        }
        logger.error("the dnsd network for a docker network was never made: the store did not answer", metadata: ["network": "\(name)"])
    }

    /// The dnsd network for a Docker network: made if missing; an existing one must have its
    /// subnets.
    func ensureDnsdNetwork(_ creation: NetworkCreation) throws {
        let name = creation.name
        if case .networks(let networks) = try daemon.perform(.listNetworks), let existing = networks.first(where: { $0.name == name }) {
            guard existing.subnet == creation.subnet, existing.subnet6 == creation.subnet6.map(Self.canonical) else {
                throw DockerPluginError("dnsd network '\(name)' has subnets \(Self.subnets(existing)), not \(Self.subnets(creation))")
            }
            return
        }
        _ = try daemon.perform(.createNetwork(try Command.network(creation)))
        logger.info("dnsd network created for a docker network", metadata: ["network": "\(name)", "subnet": "\(Self.subnets(creation))"])
    }

    /// A subnet in dnsd's text (IPv6 compressed as RFC 5952 writes it), or as given if it does
    /// not parse.
    static func canonical(_ subnet: String) -> String { (try? IPSubnet(parsing: subnet).description) ?? subnet }

    /// A network's subnets as one text, dnsd's record and Docker's copy alike: what tells a copy
    /// of the network from one of an earlier network of that name.
    static func subnets(_ record: NetworkRecord) -> String { ([record.subnet] + (record.subnet6.map { [$0] } ?? [])).joined(separator: " and ") }
    static func subnets(_ network: DockerEngine.Network) -> String? {
        network.subnet.map { ([$0] + (network.subnet6.map { [canonical($0)] } ?? [])).joined(separator: " and ") }
    }
    private static func subnets(_ creation: NetworkCreation) -> String {
        ([creation.subnet] + (creation.subnet6.map { [$0] } ?? [])).joined(separator: " and ")
    }

    /// `DeleteNetwork` of Docker network `id` (`docker network rm` on this host): the dnsd network
    /// goes from the cluster (refused while any host has an endpoint on it: then Docker's removal
    /// fails with dnsd's line); the other hosts' dockerds lose their copies by the sync. A network
    /// dnsd no longer has is fine.
    func networkDeleted(id: String) throws {
        let (known, ours) = namesLock.withLock { (networkNames[id], removing.contains(id)) }
        guard !ours else { return }
        // dockerd may have forgotten the network by now: then it was never one of dnsd's here.
        guard let network = try known ?? engine.network(id).map({ ($0.name, Self.subnets($0)) }), !network.name.isEmpty else { return }
        // A name dnsd refuses was never a dnsd network (Docker's copy was removed at its creation).
        guard let label = try? HostLabel(network.name, what: "network") else { return }
        // Only the dnsd network this is a copy of: one made again since with other subnets stays.
        if case .networks(let networks) = try daemon.perform(.listNetworks),
           let current = networks.first(where: { $0.name == network.name }), let subnets = network.subnets, Self.subnets(current) != subnets {
            return
        }
        do {
            _ = try daemon.perform(.removeNetwork(label))
            namesLock.withLock { networkNames[id] = nil }
            logger.info("dnsd network removed with the docker network", metadata: ["network": "\(network.name)"])
        } catch NodeError.notFound {
            return
        }
    }

    /// Removes a Docker network of dnsd's driver that is not (or no longer) a dnsd network's copy,
    /// leaving the cluster's network of that name alone.
    private func removeDockerNetwork(_ id: String) throws {
        namesLock.withLock { _ = removing.insert(id) }
        defer { namesLock.withLock { _ = removing.remove(id) } }
        try engine.removeNetwork(id)
    }

    private func syncNetworks() throws {
        let docker = try engine.networks().filter { $0.driver == "dnsd" }
        namesLock.withLock {
            for network in docker { networkNames[network.id] = (network.name, Self.subnets(network)) }
        }
        // Docker 20.10's networks all have IPv4: an IPv6-only dnsd network has no copy there.
        let networks = daemon.knownNetworks().filter { $0.driver == .overlay && !$0.isIPv6Only }
        // A copy is the network's when both name and subnet agree: one of an earlier network of
        // that name (removed and made again with another subnet) is an orphan too.
        let current = Set(networks.map { "\($0.name) \(Self.subnets($0))" })
        removeOrphans(docker.filter { !current.contains("\($0.name) \(Self.subnets($0) ?? "")") })
        for network in networks where !docker.contains(where: { $0.name == network.name }) {
            create(network)
        }
    }

    /// Removes the dnsd-driver networks of this dockerd that the cluster has not had for three
    /// checks (a network Docker is creating gets its dnsd network within ms).
    private func removeOrphans(_ orphans: [DockerEngine.Network]) {
        orphaned = orphaned.filter { id, _ in orphans.contains { $0.id == id } }
        for network in orphans {
            orphaned[network.id, default: 0] += 1
            guard orphaned[network.id, default: 0] >= 3 else { continue }
            do {
                try removeDockerNetwork(network.id)
                logger.info("docker network removed: its dnsd network left the cluster or changed", metadata: ["network": "\(network.name)"])
            } catch {
                logger.debug("docker network \(network.name) stays: \(error)")
            }
        }
    }

    /// Creates a dnsd overlay network in this dockerd. A refusal is logged and tried again after
    /// a minute, or at once for a network of that name with another subnet.
    private func create(_ network: NetworkRecord) {
        if let last = refused[network.name], last.subnets == Self.subnets(network), Date().timeIntervalSince(last.at) < 60 { return }
        do {
            try engine.createNetwork(name: network.name, subnet: network.subnet, gateway: network.gateway, subnet6: network.subnet6,
                                     gateway6: network.gateway6)
            refused[network.name] = nil
            logger.info("dnsd network made usable from docker", metadata: ["network": "\(network.name)"])
        } catch {
            refused[network.name] = (Self.subnets(network), Date())
            logger.warning("cannot create the docker network", metadata: ["network": "\(network.name)", "error": "\(error)"])
        }
    }

    /// Follows container starts; at each (re)connection first every running container: its
    /// endpoints on dnsd networks taken back (after a restart of dnsd) or named, then this host's
    /// Docker endpoints that no running container has any more withdrawn.
    private func followNames() {
        while !stopping {
            do {
                let running = try engine.runningEndpoints()
                for (id, _) in running.containers {
                    if let container = try engine.container(id) { adopt(container) }
                }
                daemon.dockerSweep(running: running.endpoints)
                adoptedOnce.store(true, ordering: .releasing)
                try engine.followStarts { [self] id in publish(container: id) }
            } catch {
                logger.debug("docker events: \(error)")
            }
            for _ in 0..<5 where !stopping { usleep(100_000) }
        }
    }

    /// At `Join`: if Docker already lists the endpoint's container in the network, its name is
    /// published before the container starts, so its peers are programmed on every host before
    /// its first packet (otherwise the start event publishes it).
    func joined(networkID: String, endpointID: String) {
        guard let name = (try? engine.network(networkID))?.endpointNames[endpointID] else {
            logger.debug("docker endpoint not named at join", metadata: ["endpoint": "\(endpointID.prefix(12))"])
            return
        }
        do { try daemon.dockerPublish(endpointID, name: name, aliases: []) } catch {
            logger.error("cannot publish a docker container's name", metadata: ["container": "\(name)", "error": "\(error)"])
        }
    }

    /// Each sweep: running containers with an endpoint on a dnsd network that dnsd has not
    /// taken back or named yet (an adoption or a publish that failed: the store was away, dnsd
    /// started without it) are taken back now; a refusal that lasts is logged once.
    private func takeBack(_ running: DockerEngine.Running) {
        let dnsdNetworks = Set(daemon.knownNetworks().filter { $0.driver == .overlay }.map(\.name))
        let waiting = daemon.dockerEndpointsWithoutName(among: Set(running.containers.flatMap { container in
            container.endpoints.filter { dnsdNetworks.contains($0.key) }.map(\.value)
        }))
        for (id, endpoints) in running.containers where endpoints.values.contains(where: waiting.contains) {
            do {
                if let container = try engine.container(id) { adopt(container) }
            } catch {
                logger.debug("docker container \(id.prefix(12)) not read: \(error)")
            }
        }
    }

    /// A running container's endpoints on dnsd networks: known ones named, others (from before a
    /// restart) adopted. A refusal is logged at error once per endpoint, then at debug.
    private func adopt(_ container: DockerEngine.Container) {
        let known = Set(daemon.dockerEndpointIDs())
        let dnsdNetworks = Set(daemon.knownNetworks().map(\.name))
        for (network, endpoint) in container.endpoints where dnsdNetworks.contains(network) {
            do {
                if known.contains(endpoint.endpointID) {
                    try daemon.dockerPublish(endpoint.endpointID, name: container.name, aliases: endpoint.aliases)
                } else {
                    try daemon.dockerAdopt(endpoint.endpointID, network: network, address: endpoint.address, address6: endpoint.address6,
                                           name: container.name,
                                           aliases: endpoint.aliases, sandboxKey: container.sandboxKey)
                    logger.info("docker endpoint taken back", metadata: ["container": "\(container.name)", "network": "\(network)"])
                }
            } catch {
                let first = refusedEndpoints.withLock { $0.insert(endpoint.endpointID).inserted }
                logger.log(level: first ? .error : .debug, "cannot take back a docker endpoint",
                           metadata: ["container": "\(container.name)", "network": "\(network)", "error": "\(error)"])
            }
        }
    }

    /// Publishes the names of container `id` on each dnsd endpoint it has on this host.
    private func publish(container id: String) {
        let container: DockerEngine.Container
        do {
            guard let found = try engine.container(id) else { return }
            container = found
        } catch {
            logger.warning("cannot read a started container from dockerd; its names wait for the next resynchronisation",
                           metadata: ["container": "\(id.prefix(12))", "error": "\(error)"])
            return
        }
        let known = Set(daemon.dockerEndpointIDs())
        for (network, endpoint) in container.endpoints where known.contains(endpoint.endpointID) {
            do {
                try daemon.dockerPublish(endpoint.endpointID, name: container.name, aliases: endpoint.aliases)
            } catch {
                logger.error("cannot publish a docker container's name", metadata: ["container": "\(container.name)", "network": "\(network)", "error": "\(error)"])
            }
        }
    }
}
