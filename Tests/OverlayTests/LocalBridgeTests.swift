import Addressing
import Foundation
import Logging
import Netns
@testable import OverlayNet
import TestSupport
import Testing

@Suite("Local bridge driver and gateway bridge", .timeLimit(.minutes(5)))
struct LocalBridgeTests {
    static let vnet = OverlayTests.vnet

    private func localDriver(_ cluster: Cluster, host n: Int) throws -> LocalBridgeDriver {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        return try LocalBridgeDriver(hostNamespace: cluster.hosts[n - 1].handle, thread: cluster.fixture.thread, logger: logger)
    }

    @Test("run --net=overlay: eth0 on the overlay, eth1 on the gateway bridge with the default route; reaches the host and, NATed, the underlay")
    func gatewayBridge() throws {
        try withCluster(hosts: 2) { cluster in
            let bridges = try localDriver(cluster, host: 1)
            try bridges.createBridge(.gatewayBridge)
            try bridges.createBridge(.gatewayBridge)  // again: adopted
            try cluster.driver(1).createNetwork(OverlayTests.spec)
            let c1 = try cluster.sandbox("c1")
            let overlay = try cluster.driver(1).attach(c1, to: Self.vnet, address: ipa("192.168.0.2"))
            let gateway = try bridges.attach(c1, to: LocalBridgeDriver.BridgeSpec.gatewayBridge.name, address: ip("172.18.0.2"))
            #expect(overlay.interface == "eth0" && gateway.interface == "eth1")
            #expect(try Shell.check(["ip", "-n", c1.name, "route"]).contains("default via 172.18.0.1 dev eth1"))
            #expect(try ping(from: c1, ip("172.18.0.1")))      // the bridge, i.e. the host
            #expect(try ping(from: c1, cluster.vtep(1)))        // the host's own underlay address
            #expect(try ping(from: c1, cluster.vtep(2)))        // another host: leaves h1 masqueraded
            let rules = try Shell.check(["ip", "netns", "exec", cluster.hosts[0].name, "nft", "list", "table", "ip", "dnsd_nat"])
            #expect(rules.contains("ip saddr 172.18.0.0/16 oifname != \"dnsd_gwbridge\" masquerade"))
            try bridges.deleteBridge(LocalBridgeDriver.BridgeSpec.gatewayBridge)
            #expect(try Shell.run(["ip", "-n", cluster.hosts[0].name, "link", "show", "dnsd_gwbridge"]).status != 0)
        }
    }

    @Test("run then connect: eth0 on the local bridge (default route), eth1 on the overlay")
    func runThenConnect() throws {
        try withCluster(hosts: 1) { cluster in
            let bridges = try localDriver(cluster, host: 1)
            try bridges.createBridge(.defaultBridge)
            try cluster.driver(1).createNetwork(OverlayTests.spec)
            let c1 = try cluster.sandbox("c1")
            let local = try bridges.attach(c1, to: LocalBridgeDriver.BridgeSpec.defaultBridge.name, address: ip("172.17.0.2"))
            let overlay = try cluster.driver(1).attach(c1, to: Self.vnet, address: ipa("192.168.0.2"))
            #expect(local.interface == "eth0" && overlay.interface == "eth1")
            #expect(try Shell.check(["ip", "-n", c1.name, "route"]).contains("default via 172.17.0.1 dev eth0"))
            #expect(try ping(from: c1, ip("172.17.0.1")))
            #expect(try ping(from: c1, ip("192.168.0.1")))
            #expect(throws: AddressPool.Failure.self) {
                try bridges.attach(c1, to: LocalBridgeDriver.BridgeSpec.defaultBridge.name, address: ip("10.1.1.1"))
            }
        }
    }
}
