import Addressing
import ClusterState
import Foundation
import Logging
import Netns
@testable import Node
import Resolver
import Store
import TestSupport
import Testing

/// The core's commands called directly (issue 12): a `Daemon` embedded in the test process on a
/// local store, its host namespace a namespace of the test's own (bridges, NAT and vxlan
/// sockets there, never in the machine's), no binary spawned. Results are typed; refusals are
/// `NodeError`s, of the kind whose status the HTTP API answers.
@Suite("Commands: the core's API on a local store, no binary", .serialized, .timeLimit(.minutes(5)))
struct CommandTests {
    final class Fixture: @unchecked Sendable {
        let thread: NamespaceThread
        let hostName = TestRun.namePrefix + "nodehost"
        let directory = TestRun.temporaryPath("node")
        let daemon: Daemon
        private(set) var made: [String] = []

        init() throws {
            thread = try NamespaceThread(name: "node-tests")
            let host = try NamedNamespaces().create(hostName, on: thread)
            try Shell.check(["ip", "-n", hostName, "link", "set", "lo", "up"], timeout: 10)
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let logger = Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }
            let store = try LocalStore(directory: directory + "/store", logger: logger)
            daemon = try Daemon(configuration: .init(
                hostID: "h1", advertise: IPv4Address(198, 18, 0, 1), dnsMode: .dns,
                upstreams: [SocketAddress(IPv4Address(127, 0, 0, 1), port: 9)], upstreamTimeoutMilliseconds: 300, leaseTTL: 10,
                hostResolvConf: ResolvConf(nameservers: ["198.18.0.53"], search: []), stateDirectory: directory + "/state",
                hostNamespace: host, warmNamespaces: 0), store: store, logger: logger)
        }

        func name(_ base: String) -> String {
            let name = "\(TestRun.token)\(base)"
            made.append(name)
            return name
        }

        func perform<Body, Reply>(_ call: APICall<Body, Reply>) throws -> CommandResult { try daemon.perform(call) }

        func close() {
            for name in made { _ = try? perform(API.remove(name)) }
            daemon.shutdown()
            for name in made {
                try? NamedNamespaces().delete(name)
                try? FileManager.default.removeItem(atPath: "/etc/netns/\(name)")
            }
            try? NamedNamespaces().delete(hostName)
            try? FileManager.default.removeItem(atPath: directory)
            thread.shutdown()
        }
    }

    private func refusal(_ body: () throws -> CommandResult) -> Int? {
        do {
            _ = try body()
            return nil
        } catch let error as NodeError {
            // The kinds as the control API answers them.
            switch error {
            case .invalid: return 400
            case .notFound: return 404
            case .conflict: return 409
            case .unavailable: return 503
            case .failed: return 500
            }
        } catch {
            return -1
        }
    }

    @Test("networks: create, list, inspect, remove; refusals carry their status")
    func networks() throws {
        let fx = try Fixture()
        defer { fx.close() }
        guard case .network(let created) = try fx.perform(API.createNetwork(NetworkCreation(name: "cnet", driver: "bridge",
                                                                                                 subnet: "192.168.97.0/24", gateway: nil)))
        else { Issue.record("not a network"); return }
        #expect(created.subnet == "192.168.97.0/24" && created.gateway == "192.168.97.1" && created.vni != 0)
        guard case .networks(let all) = try fx.perform(API.listNetworks()) else { Issue.record("not networks"); return }
        #expect(all.map(\.name) == ["cnet"])
        #expect(refusal { try fx.perform(API.createNetwork(NetworkCreation(name: "cnet", driver: "bridge", subnet: "10.50.0.0/24", gateway: nil))) } == 409)
        #expect(refusal { try fx.perform(API.createNetwork(NetworkCreation(name: "other", driver: "bridge", subnet: "192.168.97.128/25", gateway: nil))) } == 400)
        #expect(refusal { try fx.perform(API.createNetwork(NetworkCreation(name: "bad_name", driver: nil, subnet: "10.51.0.0/24", gateway: nil))) } == 400)
        #expect(refusal { try fx.perform(API.inspectNetwork("nosuch")) } == 404)
        guard case .removed(let removed) = try fx.perform(API.removeNetwork("cnet")) else { Issue.record("not removed"); return }
        #expect(removed.name == "cnet")
        guard case .networks(let none) = try fx.perform(API.listNetworks()) else { return }
        #expect(none.isEmpty)
    }

    @Test("sandboxes: run, list, inspect, DNS view, connect, disconnect, stop; refusals carry their status")
    func sandboxes() throws {
        let fx = try Fixture()
        defer { fx.close() }
        _ = try fx.perform(API.createNetwork(NetworkCreation(name: "snet", driver: "bridge", subnet: "192.168.98.0/24", gateway: nil)))
        _ = try fx.perform(API.createNetwork(NetworkCreation(name: "tnet", driver: "bridge", subnet: "192.168.99.0/24", gateway: nil)))
        let a = fx.name("a"), b = fx.name("b")
        guard case .sandbox(let info) = try fx.perform(API.run(SandboxCreation(name: a, hostname: nil, network: "snet", aliases: ["web"], ip: nil)))
        else { Issue.record("not a sandbox"); return }
        #expect(info.attachments.map(\.network) == ["snet"] && info.attachments.first?.address == "192.168.98.2" && info.hostsFile == "/etc/netns/\(a)/hosts")
        _ = try fx.perform(API.run(SandboxCreation(name: b, hostname: nil, network: "snet", aliases: nil, ip: "192.168.98.20")))
        #expect(refusal { try fx.perform(API.run(SandboxCreation(name: a, hostname: nil, network: "snet", aliases: nil, ip: nil))) } == 409)
        #expect(refusal { try fx.perform(API.run(SandboxCreation(name: fx.name("c"), hostname: nil, network: "snet", aliases: nil, ip: "192.168.98.20"))) } == 409)
        #expect(refusal { try fx.perform(API.run(SandboxCreation(name: fx.name("d"), hostname: nil, network: "nosuch", aliases: nil, ip: nil))) } == 404)
        guard case .sandboxes(let all) = try fx.perform(API.listSandboxes()) else { return }
        #expect(all.map(\.name) == [a, b].sorted())
        guard case .dnsView(let view) = try fx.perform(API.dnsView(b)) else { return }
        #expect(view.networks.map(\.name) == ["snet"] && Set(view.networks.first?.names.map(\.name) ?? []) == [a, b], "\(view)")
        guard case .sandbox(let connected) = try fx.perform(API.connect(a, NetworkConnection(network: "tnet", aliases: nil, ip: nil))) else { return }
        #expect(connected.attachments.map(\.network) == ["snet", "tnet"] && connected.attachments.last?.interface == "eth1")
        #expect(refusal { try fx.perform(API.connect(a, NetworkConnection(network: "tnet", aliases: nil, ip: nil))) } == 409)
        guard case .sandbox(let disconnected) = try fx.perform(API.disconnect(a, from: "tnet")) else { return }
        #expect(disconnected.attachments.map(\.network) == ["snet"])
        #expect(refusal { try fx.perform(API.disconnect(a, from: "tnet")) } == 404)
        guard case .removed = try fx.perform(API.stop(b)) else { return }
        #expect(refusal { try fx.perform(API.inspectSandbox(b)) } == 404)
        #expect(refusal { try fx.perform(API.stop(b)) } == 404)
        guard case .removed = try fx.perform(API.remove(b)) else { Issue.record("rm of a sandbox already gone is fine"); return }
        #expect(!NamedNamespaces().exists(b))
        #expect(refusal { try fx.perform(API.removeNetwork("snet")) } == 409, "still used by a")
    }
}
