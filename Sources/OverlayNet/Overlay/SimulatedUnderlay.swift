import Addressing
import Netns

/// Simulated hosts on one machine, for tests, benchmarks and the demo: a namespace holding an
/// underlay bridge, and per host a namespace whose `eth0` (198.18.0.N/24 by default) is a port
/// of that bridge. Nothing here reaches outside the machine.
public final class SimulatedUnderlay: @unchecked Sendable {
    public struct Host: Sendable {
        public let name: String
        public let namespace: NamespaceHandle
        public let address: IPv4Address
    }

    public let prefix: String
    public let namespaces: NamedNamespaces
    private let thread: NamespaceThread
    private let wire: NetlinkSocket
    private let bridge: Int32
    public private(set) var hosts: [Host] = []

    /// Creates `PREFIXul` with bridge `ul0`.
    public init(prefix: String, namespaces: NamedNamespaces = NamedNamespaces(), thread: NamespaceThread) throws {
        self.prefix = prefix
        self.namespaces = namespaces
        self.thread = thread
        let handle = try namespaces.create(prefix + "ul", on: thread)
        do {
            wire = try NetlinkSocket.open(in: handle, using: thread)
            try wire.createLink(LinkSpec(name: "ul0", kind: .bridge(), up: true))
            bridge = try wire.linkIndex("ul0")
        } catch {
            try? namespaces.delete(prefix + "ul")
            throw error
        }
    }

    /// Adds host `PREFIXhN` with `eth0` = `address`/24 (default 198.18.0.N).
    @discardableResult
    public func addHost(address: IPv4Address? = nil) throws -> Host {
        let n = hosts.count + 1
        let name = prefix + "h\(n)"
        let address = address ?? IPv4Address(198, 18, 0, UInt8(n))
        let handle = try namespaces.create(name, on: thread)
        do {
            try wire.createLink(LinkSpec(name: "u\(n)", kind: .veth(peer: VethPeer(name: "eth0", namespaceFD: handle.fd)), master: bridge, up: true))
            let local = try NetlinkSocket.open(in: handle, using: thread)
            let eth0 = try local.linkIndex("eth0")
            try local.addAddress(address, prefixLength: 24, to: eth0)
            try local.setLink(eth0, up: true)
        } catch {
            try? namespaces.delete(name)
            throw error
        }
        let host = Host(name: name, namespace: handle, address: address)
        hosts.append(host)
        return host
    }

    /// Deletes every host namespace and the underlay (the veths go with them).
    public func remove() {
        for host in hosts { try? namespaces.delete(host.name) }
        hosts.removeAll()
        try? wire.deleteLink(named: "ul0")
        try? namespaces.delete(prefix + "ul")
    }
}
