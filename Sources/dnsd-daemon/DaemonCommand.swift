import CommandLineSupport
import Addressing
import ArgumentParser
import BuildInfo
import Dispatch
import Foundation
import Node
import HostsWriter
import Logging
import Resolver
import Store

/// `dnsd daemon`: the per-host daemon.
struct DaemonCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "daemon",
        abstract: "Run the per-host daemon: overlay networks, names, DNS at 127.0.0.11, hosts files.",
        discussion: """
            Every host of a cluster runs one daemon against the same store. A single host needs no \
            store: the default `--store local` keeps the cluster state in the state directory.

            Example (host h1 of a cluster using etcd):
              dnsd daemon --store etcd://198.18.0.254:2379 \\
                --advertise 198.18.0.1 --host-id h1

            The same from a file (the package's service runs \
            `dnsd daemon --config /etc/dnsd/dnsd.json`), one key per flag:
              {"store": "etcd://198.18.0.254:2379",
               "advertise": "198.18.0.1", "host-id": "h1"}
            """
    )

    @Option(help: "Read the daemon's settings from this JSON file (keys: the long flag names, e.g. \"host-id\"; \"upstream\" a list); flags on the command line override it.")
    var config: String?

    @Option(help: "Store: local, etcd://H:P[,H:P...] or consul://H:P.")
    var store: String = "local"

    @Option(help: "This host's identifier in the cluster (letters, digits, '-').")
    var hostId: String = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "host"

    @Option(help: "The underlay address other hosts reach this host's VXLAN endpoint at.")
    var advertise: String = "127.0.0.1"

    @Option(help: "Directory for the local store and daemon state.")
    var stateDir: String = "/var/lib/dnsd"

    @Option(help: "Control socket path (env DNSD_SOCK).")
    var sock: String = ProcessInfo.processInfo.environment["DNSD_SOCK"] ?? APIClient.defaultPath

    @Option(help: "dns: the embedded responder answers at 127.0.0.11 and hosts files are kept too; hosts: hosts files only.")
    var dnsMode: String = "dns"

    @Option(help: "Seconds the host's lease lives without a keep-alive: how fast a dead host's names vanish.")
    var leaseTtl: Int = 10

    @Option(help: "Seconds between checks for containers that died without their runtime saying so (no CNI DEL, no Docker Leave); a container is withdrawn after two checks find its namespace empty.")
    var livenessInterval: Double = 1

    @Option(help: "Serve Prometheus metrics at http://ADDR:PORT/metrics (off by default; e.g. 127.0.0.1:9153).")
    var metrics: String?

    @Option(help: "Serve Docker's remote network and IPAM driver API on this socket (e.g. /run/docker/plugins/dnsd.sock: Docker then knows the driver dnsd).")
    var dockerPlugin: String?

    @Option(help: "dockerd's API socket, for the names of Docker's networks and containers (with --docker-plugin).")
    var dockerApi: String = "/var/run/docker.sock"

    @OptionGroup var upstream: UpstreamOptions
    @OptionGroup var log: LogOptions

    func validate() throws {
        guard (try? HostLabel(hostId, what: "host id")) != nil else { throw ValidationError("invalid --host-id '\(hostId)': letters, digits and '-' only") }
        guard IPv4Address(advertise) != nil else { throw ValidationError("invalid --advertise '\(advertise)': expected an IPv4 address") }
        guard NameMode(rawValue: dnsMode) != nil else { throw ValidationError("invalid --dns-mode '\(dnsMode)': expected dns or hosts") }
        guard (2...3600).contains(leaseTtl) else { throw ValidationError("invalid --lease-ttl \(leaseTtl): expected 2-3600") }
        guard (0.2...3600).contains(livenessInterval) else {
            throw ValidationError("invalid --liveness-interval \(livenessInterval): expected 0.2-3600 seconds")
        }
        if let metrics, SocketAddress(parsing: metrics) == nil {
            throw ValidationError("invalid --metrics '\(metrics)': expected ADDR:PORT, e.g. 127.0.0.1:9153")
        }
        _ = try Self.parseStore(store)
    }

    enum StoreSpec { case local, etcd([String]), consul(String) }

    static func parseStore(_ text: String) throws -> StoreSpec {
        if text == "local" { return .local }
        func endpoints(_ rest: Substring) throws -> [String] {
            let list = rest.split(separator: ",").map(String.init)
            guard !list.isEmpty, list.allSatisfy({ SocketAddress(parsing: $0, defaultPort: 2379) != nil || $0.contains(":") }) else {
                throw ValidationError("invalid --store '\(text)': expected etcd://HOST:PORT[,HOST:PORT...] or consul://HOST:PORT")
            }
            return list
        }
        if text.hasPrefix("etcd://") { return .etcd(try endpoints(text.dropFirst(7))) }
        if text.hasPrefix("consul://") { return .consul(try endpoints(text.dropFirst(9))[0]) }
        throw ValidationError("invalid --store '\(text)': expected local, etcd://HOST:PORT or consul://HOST:PORT")
    }

    func run() throws {
        let logger = log.makeLogger("dnsd")
        logger.info("\(BuildInfo.line) starting")
        ProcessSetup.ignoreBrokenPipes()
        ProcessSetup.raiseFileLimit(logger: logger)
        // Signals are taken before anything is built: a SIGTERM during start-up waits for it.
        let signals = SignalHandlers()
        let stop = DispatchSemaphore(value: 0)
        signals.on(SIGTERM) { stop.signal() }
        signals.on(SIGINT) { stop.signal() }
        // A daemon started from a terminal outlives the terminal: SIGHUP changes nothing.
        signals.on(SIGHUP) { logger.info("SIGHUP ignored: the daemon keeps running (stop it with SIGTERM)") }
        let kv: any KeyValueStore
        switch try Self.parseStore(store) {
        case .local: kv = try LocalStore(directory: stateDir, logger: logger)
        case .etcd(let endpoints):
            // A member that stops answering costs each request this long before the next member
            // is tried: well under the lease TTL, so one dead member never lets the lease lapse.
            kv = EtcdStore(endpoints: endpoints, timeoutMilliseconds: max(500, min(2000, leaseTtl * 1000 / 4)), logger: logger)
        case .consul(let address): kv = ConsulStore(address: address, logger: logger)
        }
        let resolv = ResolvConf(parsing: (try? String(contentsOfFile: "/etc/resolv.conf", encoding: .utf8)) ?? "")
        // The metrics read the daemon once it exists (they are made first: the responder needs
        // its forward observer before it starts).
        let built = DaemonReference()
        let exported = metrics.map { _ in DaemonMetrics { built.daemon?.metricsSample() ?? MetricsSample() } }
        let daemon: Daemon
        do {
            var configuration = Daemon.Configuration(
                hostID: hostId, advertise: IPv4Address(advertise)!, dnsMode: NameMode(rawValue: dnsMode)!,
                upstreams: upstream.resolve(), upstreamTimeoutMilliseconds: upstream.upstreamTimeout,
                leaseTTL: leaseTtl, hostResolvConf: resolv, stateDirectory: stateDir, forwardObserver: exported)
            configuration.livenessInterval = livenessInterval
            daemon = try Daemon(configuration: configuration, store: kv, logger: logger)
        } catch {
            throw CLIError("cannot start: \(error)")
        }
        built.daemon = daemon
        var metricsServer: MetricsServer?
        if let exported, let metrics, let address = SocketAddress(parsing: metrics) {
            do {
                metricsServer = try MetricsServer(host: address.address.description, port: Int(address.port)) { exported.render() }
            } catch {
                throw CLIError("cannot serve metrics on \(metrics): \(error)")
            }
        }
        let control = APIServer(path: sock, logger: logger)
        do {
            try control.start(routes: ControlRoutes(perform: { command in try daemon.perform(command) }), events: daemon.events)
        } catch {
            throw CLIError("cannot listen on \(sock): \(error)")
        }
        var plugin: APIServer?
        var docker: DockerIntegration?
        if let dockerPlugin {
            let integration = DockerIntegration(engine: DockerEngine(socket: dockerApi), daemon: daemon, logger: logger)
            let server = APIServer(path: dockerPlugin, logger: logger)
            do {
                try server.start(routes: DockerPluginRoutes(daemon: daemon, logger: logger, docker: integration), events: nil)
            } catch {
                throw CLIError("cannot listen on \(dockerPlugin): \(error)")
            }
            integration.start()
            plugin = server
            docker = integration
        }
        logger.info("\(BuildInfo.line) ready", metadata: ["host": "\(hostId)", "store": "\(store)", "socket": "\(sock)", "mode": "\(dnsMode)"])
        stop.wait()
        // A command under way finishes (or rolls back) before the daemon goes: no new clients,
        // then the command lock taken for good, then the replies of those served meanwhile.
        control.stop()
        plugin?.stop()
        docker?.stop()
        daemon.refuseCommands()
        control.waitForClients(seconds: 2)
        metricsServer?.stop()
        daemon.shutdown()
        logger.info("dnsd daemon stopped")
    }
}

/// The daemon, once made, for the metrics made before it.
final class DaemonReference: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Daemon?
    var daemon: Daemon? {
        get { lock.withLock { value } }
        set { lock.withLock { value = newValue } }
    }
}

