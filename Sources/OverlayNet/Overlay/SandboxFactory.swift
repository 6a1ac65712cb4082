import Netns

/// Makes and removes sandboxes: named namespaces like `ip netns add`, with `lo` up.
public struct SandboxFactory: Sendable {
    public let namespaces: NamedNamespaces
    let thread: NamespaceThread
    private let pool: NamespacePool?

    /// `warmNamespaces`: how many namespaces to keep made ahead of time (0: none); see
    /// `NamespacePool`. Call `shutdown()` when done with a factory that keeps some.
    public init(namespaces: NamedNamespaces = NamedNamespaces(), thread: NamespaceThread, warmNamespaces: Int = 0) throws {
        self.namespaces = namespaces
        self.thread = thread
        pool = warmNamespaces > 0 ? try NamespacePool(size: warmNamespaces, namespaces: namespaces) : nil
    }

    /// Drops the warm namespaces (they were never named: nothing is left behind).
    public func shutdown() { pool?.shutdown() }

    /// How many warm namespaces are ready now.
    public var warmCount: Int { pool?.count ?? 0 }

    /// A new sandbox named `name` (visible to `ip netns`): a warm namespace given the name when
    /// one is ready, else a new one.
    public func create(_ name: String) throws -> Sandbox {
        if let warm = pool?.take() {
            let handle = try namespaces.name(warm.handle, as: name)
            return Sandbox(name: name, namespace: handle, netlink: warm.netlink, owned: true)
        }
        let (handle, netlink) = try namespaces.create(name, on: thread, also: NetlinkSocket.inNewNamespace)
        return Sandbox(name: name, namespace: handle, netlink: netlink, owned: true)
    }

    /// A namespace someone else made (a container runtime): dnsd adds interfaces, never deletes it.
    public func adopt(path: String, name: String) throws -> Sandbox {
        let handle = try NamespaceHandle(path: path)
        return Sandbox(name: name, namespace: handle, netlink: try NetlinkSocket.open(in: handle, using: thread), owned: false)
    }

    /// Reopens a sandbox dnsd made in an earlier run (after a daemon restart): owned, and its next
    /// interface is numbered after the `ethN` it already has.
    public func reopen(_ name: String) throws -> Sandbox {
        let handle = try NamespaceHandle(path: namespaces.path(name))
        let netlink = try NetlinkSocket.open(in: handle, using: thread)
        let existing = try netlink.links().compactMap { link -> Int? in
            link.name.hasPrefix("eth") ? Int(link.name.dropFirst(3)) : nil
        }
        return Sandbox(name: name, namespace: handle, netlink: netlink, owned: true, interfacesAdded: (existing.max() ?? -1) + 1)
    }

    /// Deletes a sandbox dnsd made: its interfaces go with its namespace, which the kernel tears
    /// down (in the background, batched) once the last reference is gone — drop the `Sandbox`
    /// too, since its socket is one. Far cheaper than deleting each veth, which waits for an
    /// RCU grace period per device.
    public func delete(_ sandbox: Sandbox) throws {
        guard sandbox.owned else { return }
        try namespaces.delete(sandbox.name)
    }
}

extension NetlinkSocket {
    /// The set-up of every namespace dnsd makes (sandboxes, warm ones, overlay namespaces), run
    /// on the thread while it is inside: no IPv6 on the interfaces to come (see
    /// `NetworkSysctl.disableIPv6OnNewInterfaces`), and a netlink socket there.
    static func inNewNamespace() throws -> NetlinkSocket {
        try NetworkSysctl.disableIPv6OnNewInterfaces()
        return try NetlinkSocket()
    }
}
