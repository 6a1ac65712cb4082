import Addressing
import Foundation
import Logging
import Netns
import Resolver
import Synchronization
import TestSupport

/// A responder serving real namespaces, with a real dnsmasq upstream, and the standard records:
///
///   vnet 192.168.0.0/24 + fd00::/64: c01 .2 (alias db), c02 .3 + fd00::3 (aliases web, api),
///                        c03 .4 + fd00::4 (alias web), v6only fd00::6 alone (alias six),
///                        many0..many99 .100-.199 all with alias `many` (an answer too big for UDP)
///   net2 192.168.2.0/24 + fd00:2::/64: c04 .2 + fd00:2::2 (alias secret)
///
/// Everything it makes (namespaces, sockets, the dnsmasq process and its files) is removed by
/// `close()`, which `withFixture` calls also when the test fails.
final class ResolverFixture: @unchecked Sendable {
    static let vnet = try! HostLabel("vnet")
    static let net2 = try! HostLabel("net2")
    private static let counter = Atomic<Int>(0)

    let namespaces = NamedNamespaces()
    let thread: NamespaceThread
    let store = RecordStore()
    let server: DNSServer
    let upstream: Dnsmasq?
    private(set) var sandboxes: [String] = []
    private var nextSandbox = 1

    init(upstream: Bool = true, configure: (inout DNSServer.Configuration) -> Void = { _ in }) throws {
        thread = try NamespaceThread(name: "fixture")
        let dnsmasq = upstream ? try Dnsmasq() : nil
        self.upstream = dnsmasq
        var configuration = DNSServer.Configuration()
        configuration.upstreamTimeoutMilliseconds = 400
        if let dnsmasq { configuration.upstreams = [SocketAddress(parsing: "\(dnsmasq.address):\(dnsmasq.port)")!] }
        configure(&configuration)
        var logger = Logger(label: "test")
        logger.logLevel = ProcessInfo.processInfo.environment["DNSD_TEST_LOG"] == nil ? .critical : .debug
        server = try DNSServer(records: store, configuration: configuration, logger: logger)
        server.start()
        Self.loadStandardRecords(into: store)
    }

    static func loadStandardRecords(into store: RecordStore) {
        func label(_ s: String) -> HostLabel { try! HostLabel(s) }
        store.update { c in
            c.setNetwork(vnet, subnets: [try! IPSubnet(parsing: "192.168.0.0/24"), try! IPSubnet(parsing: "fd00::/64")])
            c.setNetwork(net2, subnets: [try! IPSubnet(parsing: "192.168.2.0/24"), try! IPSubnet(parsing: "fd00:2::/64")])
            c.setEndpoint("c01", on: vnet, EndpointRecord(name: label("c01"), aliases: [label("db")], ipv4: [IPv4Address(192, 168, 0, 2)]))
            c.setEndpoint("c02", on: vnet, EndpointRecord(
                name: label("c02"), aliases: [label("web"), label("api")], ipv4: [IPv4Address(192, 168, 0, 3)],
                ipv6: [IPv6Address("fd00::3")!]))
            c.setEndpoint("c03", on: vnet, EndpointRecord(
                name: label("c03"), aliases: [label("web")], ipv4: [IPv4Address(192, 168, 0, 4)], ipv6: [IPv6Address("fd00::4")!]))
            c.setEndpoint("v6only", on: vnet, EndpointRecord(name: label("v6only"), aliases: [label("six")], ipv6: [IPv6Address("fd00::6")!]))
            for i in 0..<100 {
                c.setEndpoint("many\(i)", on: vnet, EndpointRecord(
                    name: label("many\(i)"), aliases: [label("many")], ipv4: [IPv4Address(192, 168, 0, UInt8(100 + i))]))
            }
            c.setEndpoint("c04", on: net2, EndpointRecord(
                name: label("c04"), aliases: [label("secret")], ipv4: [IPv4Address(192, 168, 2, 2)], ipv6: [IPv6Address("fd00:2::2")!]))
        }
    }

    /// A new namespace served by the responder, attached to `networks`; returns its name.
    func sandbox(on networks: [HostLabel], mode: DNSServer.Mode = .direct) throws -> (name: String, id: SandboxID, client: SandboxClient) {
        let name = "\(TestRun.namePrefix)\(Self.counter.add(1, ordering: .relaxed).newValue)"
        let handle = try namespaces.create(name, on: thread)
        sandboxes.append(name)
        let id = SandboxID(nextSandbox)
        nextSandbox += 1
        store.update { $0.attach(id, to: networks) }
        try server.serve(id, in: handle, mode: mode)
        return (name, id, SandboxClient(namespace: handle, thread: thread))
    }

    func close() {
        server.shutdown()
        for name in sandboxes { try? namespaces.delete(name) }
        upstream?.stop()
        thread.shutdown()
    }
}

/// Runs `body` with a fresh fixture and always tears it down.
func withFixture<T>(
    upstream: Bool = true, configure: (inout DNSServer.Configuration) -> Void = { _ in },
    _ body: (ResolverFixture) throws -> T
) throws -> T {
    let fixture = try ResolverFixture(upstream: upstream, configure: configure)
    defer { fixture.close() }
    return try body(fixture)
}
