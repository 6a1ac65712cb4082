import Addressing
import Netns

/// A container's network namespace as the driver sees it: the namespace, a netlink socket
/// inside it, and the interfaces dnsd gave it.
public final class Sandbox: @unchecked Sendable {
    public let name: String
    public let namespace: NamespaceHandle
    let netlink: NetlinkSocket
    /// Whether dnsd made the namespace (and so deletes it).
    let owned: Bool

    init(name: String, namespace: NamespaceHandle, netlink: NetlinkSocket, owned: Bool) {
        self.name = name
        self.namespace = namespace
        self.netlink = netlink
        self.owned = owned
    }

    /// The next free `ethN` name in the sandbox (Docker's order: eth0 first, then eth1...).
    func nextInterfaceName() throws -> String {
        let names = Set(try netlink.links().map(\.name))
        var n = 0
        while names.contains("eth\(n)") { n += 1 }
        return "eth\(n)"
    }
}

/// Makes and removes sandboxes: named namespaces like `ip netns add`, with `lo` up.
public struct SandboxFactory: Sendable {
    public let namespaces: NamedNamespaces
    let thread: NamespaceThread

    public init(namespaces: NamedNamespaces = NamedNamespaces(), thread: NamespaceThread) {
        self.namespaces = namespaces
        self.thread = thread
    }

    public func create(_ name: String) throws -> Sandbox {
        let handle = try namespaces.create(name, on: thread)
        do {
            return Sandbox(name: name, namespace: handle, netlink: try NetlinkSocket.open(in: handle, using: thread), owned: true)
        } catch {
            try? namespaces.delete(name)
            throw error
        }
    }

    /// A namespace someone else made (a container runtime): dnsd adds interfaces, never deletes it.
    public func adopt(path: String, name: String) throws -> Sandbox {
        let handle = try NamespaceHandle(path: path)
        return Sandbox(name: name, namespace: handle, netlink: try NetlinkSocket.open(in: handle, using: thread), owned: false)
    }

    /// Deletes a sandbox dnsd made: its interfaces go with its namespace.
    public func delete(_ sandbox: Sandbox) throws {
        guard sandbox.owned else { return }
        try namespaces.delete(sandbox.name)
    }
}
