import Addressing
import ClusterState
import Foundation
import HostsWriter
import Logging
import Netns
import OverlayNet
import Resolver
import Store

/// The per-host daemon: writes local changes to the store first, and projects the store onto
/// this host (peers, DNS records, hosts files) through the `Reconciler`. Holds the drivers and
/// the local sandboxes; one lock serialises local changes.
final class Daemon: @unchecked Sendable {
    struct Configuration {
        var hostID: String
        var advertise: IPv4Address
        var dnsMode: NameMode
        var upstreams: [SocketAddress]
        var leaseTTL: Int
        var hostResolvConf: ResolvConf
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
    private(set) var lease: LeaseID
    let lock = NSLock()
    var sandboxes: [String: LocalSandbox] = [:]
    private var nextSandbox = 1
    /// Local address pools of the default bridge and the gateway bridge.
    var defaultPool = try! AddressPool(subnet: LocalBridgeDriver.BridgeSpec.defaultBridge.subnet)
    var gatewayPool = try! AddressPool(subnet: LocalBridgeDriver.BridgeSpec.gatewayBridge.subnet)
    var reconciler: Reconciler!

    init(configuration: Configuration, store: any KeyValueStore, logger: Logger) throws {
        self.configuration = configuration
        self.store = store
        self.logger = logger
        registry = ClusterRegistry(store: store, logger: logger)
        thread = try NamespaceThread(name: "dnsd-netns")
        factory = SandboxFactory(thread: thread)
        overlay = try OverlayDriver(host: .init(id: configuration.hostID, advertise: configuration.advertise), thread: thread, logger: logger)
        bridges = try LocalBridgeDriver(hostNamespace: nil, thread: thread, logger: logger)
        hosts = HostsWriter(mode: configuration.dnsMode, hostResolvConf: configuration.hostResolvConf,
                            upstreams: configuration.upstreams.map(\.address.description), logger: logger)
        if configuration.dnsMode == .dns {
            var dnsConfiguration = DNSServer.Configuration()
            dnsConfiguration.upstreams = configuration.upstreams
            let server = try DNSServer(records: records, configuration: dnsConfiguration, logger: logger)
            server.start()
            dns = server
        } else {
            dns = nil
        }
        lease = try store.grantLease(ttl: configuration.leaseTTL)
        try registry.registerHost(HostRecord(id: configuration.hostID, advertise: configuration.advertise.description), lease: lease)
        reconciler = Reconciler(daemon: self)
        lock.withLock { recover() }
        try reconciler.start()
        startKeepAlive()
    }

    func nextSandboxID() -> SandboxID {
        defer { nextSandbox += 1 }
        return SandboxID(nextSandbox)
    }

    /// Keeps the host's lease alive; if it expired (the store was unreachable for longer than
    /// the TTL), takes a new one and publishes this host and its endpoints again.
    private func startKeepAlive() {
        let interval = max(0.5, Double(configuration.leaseTTL) / 3)
        Thread.detachNewThread { [self] in
            while true {
                Thread.sleep(forTimeInterval: interval)
                do {
                    if try store.keepAlive(lease) { continue }
                    logger.warning("host lease expired; publishing this host again")
                    try lock.withLock { try republish() }
                } catch {
                    logger.warning("lease keep-alive failed: \(error)")
                }
            }
        }
    }

    /// Under `lock`: a new lease, and everything of this host written again under it.
    private func republish() throws {
        lease = try store.grantLease(ttl: configuration.leaseTTL)
        try registry.registerHost(HostRecord(id: configuration.hostID, advertise: configuration.advertise.description), lease: lease)
        for sandbox in sandboxes.values {
            try? registry.holdName(sandbox.name, host: configuration.hostID, lease: lease)
            for attachment in sandbox.attachments {
                guard let published = attachment.published, let network = try? attachment.network.label else { continue }
                try? registry.holdAddress(attachment.endpoint.address, on: network, host: configuration.hostID, lease: lease)
                try registry.publish(published, lease: lease)
            }
        }
    }

    /// The gateway bridge and default bridge exist before the first sandbox needs them.
    func ensureBridge(_ spec: LocalBridgeDriver.BridgeSpec) throws { try bridges.createBridge(spec) }

    func shutdown() {
        reconciler.stop()
        // Sandboxes keep running: their namespaces, interfaces and files stay; the lease lapses
        // unless the daemon comes back (issue 6 covers re-adoption).
        dns?.shutdown()
    }
}
