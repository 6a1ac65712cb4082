import Addressing
import ArgumentParser
import Dispatch
import Foundation
import Node
import Logging
import Netns
import Resolver

/// `dnsd serve-dns`: the responder alone, for one or more sandboxes, from a hosts-style records file.
/// A debugging tool and what the DNS benchmark drives.
struct ServeDNS: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve-dns",
        abstract: "Serve DNS at 127.0.0.11 inside network namespaces from a records file.",
        discussion: """
            The records file has one endpoint per line: 'IP name [alias...]', IP IPv4 or IPv6; '#' \
            starts a comment. Names answer as 'name' and 'name.NETWORK'; a name on an IPv4 line and \
            an IPv6 line answers A and AAAA. Other names are forwarded upstream. \
            SIGHUP reloads the file (a bad file is refused and the old records stay); \
            SIGTERM or SIGINT stops serving and closes the sockets. Several --netns are served by \
            one responder thread, as the daemon serves its sandboxes.

            Example:
              ip netns add c01
              printf '192.168.0.2 c01\\n192.168.0.3 c02 web\\n' > /tmp/vnet.hosts
              dnsd serve-dns --netns c01 --network vnet --records /tmp/vnet.hosts &
              ip netns exec c01 dig +short c02.vnet @127.0.0.11
            """
    )

    @Option(help: "Name of a network namespace to serve (as in /run/netns); repeat for more.")
    var netns: [String]

    @Option(help: "Directory of named namespaces.")
    var netnsDir: String = NamedNamespaces.defaultDirectory

    @Option(help: "Network the records belong to; names answer as NAME and NAME.NETWORK.")
    var network: String

    @Option(help: "Records file: lines of 'IP name [alias...]'.")
    var records: String

    @Option(help: "TTL of answers, in seconds.")
    var ttl: UInt32 = 10

    @Flag(help: "Bind a random port and DNAT 127.0.0.11:53 to it (leaves port 53 to the sandbox's apps).")
    var redirect = false

    @OptionGroup var upstream: UpstreamOptions
    @OptionGroup var log: LogOptions

    func validate() throws {
        do { _ = try HostLabel(network, what: "network") } catch { throw ValidationError("\(error)") }
        guard !netns.isEmpty else { throw ValidationError("missing --netns") }
        for name in netns where name.isEmpty || name.contains("/") { throw ValidationError("invalid --netns '\(name)'") }
        guard (0...86400).contains(ttl) else { throw ValidationError("invalid --ttl \(ttl)") }
    }

    @Option(help: "Serve Prometheus metrics at http://ADDR:PORT/metrics (off by default).")
    var metrics: String?

    func run() throws {
        let logger = log.makeLogger("dnsd.serve-dns")
        ProcessSetup.ignoreBrokenPipes()
        ProcessSetup.raiseFileLimit(logger: logger)
        let networkName = try HostLabel(network, what: "network")
        let namespaces = try netns.map { try NamespaceHandle(name: $0, directory: netnsDir) }
        let store = RecordStore()
        try Self.load(records, network: networkName, into: store)

        var configuration = DNSServer.Configuration()
        configuration.ttl = ttl
        configuration.upstreams = upstream.resolve()
        configuration.upstreamTimeoutMilliseconds = upstream.upstreamTimeout
        let server = try DNSServer(records: store, configuration: configuration, logger: logger)
        // --metrics: the responder's counters and forwarding (what bench/dns.sh measures on and off).
        let exported = metrics.map { _ in DaemonMetrics { [counters = server.counters] in MetricsSample(dns: counters.snapshot()) } }
        if let exported { server.observeForwarding(exported) }
        server.start()
        var metricsServer: MetricsServer?
        if let exported, let metrics, let address = SocketAddress(parsing: metrics) {
            metricsServer = try MetricsServer(host: address.address.description, port: Int(address.port)) { exported.render() }
        }
        defer { metricsServer?.stop() }
        let sandboxes = namespaces.indices.map { SandboxID($0 + 1) }
        store.update { table in
            for sandbox in sandboxes { table.attach(sandbox, to: [networkName]) }
        }
        for (sandbox, namespace) in zip(sandboxes, namespaces) {
            let listening = try server.serve(sandbox, in: namespace, mode: redirect ? .redirect : .direct)
            logger.info("serving", metadata: [
                "netns": "\(namespace.path)", "network": "\(networkName)", "udp": "\(listening.udp)", "tcp": "\(listening.tcp)",
                "upstreams": "\(configuration.upstreams.map(\.description).joined(separator: ","))",
            ])
        }

        let signals = SignalHandlers()
        signals.on(SIGHUP) {
            do {
                try Self.load(records, network: networkName, into: store)
                logger.info("reloaded \(records)")
            } catch {
                logger.error("reload refused, keeping the old records: \(error)")
            }
        }
        let stop = DispatchSemaphore(value: 0)
        signals.on(SIGTERM) { stop.signal() }
        signals.on(SIGINT) { stop.signal() }
        stop.wait()
        for sandbox in sandboxes { server.stopServing(sandbox) }
        server.shutdown()
        logger.info("stopped")
    }

    private static func load(_ path: String, network: HostLabel, into store: RecordStore) throws {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw ValidationError("cannot read records file \(path): \(error.localizedDescription)")
        }
        let endpoints = try RecordsFile.parse(text)
        store.update { changes in
            changes.setNetwork(network)
            changes.replaceEndpoints(on: network, with: endpoints)
        }
    }
}
