import Addressing
import ClusterState
import Foundation
import Logging
import OverlayNet

/// The owner of this host's network devices: each overlay's hidden namespace (bridge, vxlan and,
/// through the overlay driver's peer table, its peers) and each bridge network's bridge. A
/// command holds a network while it attaches to it (`withNetwork`); a network that left the store
/// loses its devices here once no attachment uses it and no command holds it. Its lock is held
/// only across netlink calls.
final class NetworkDevices: NetworkTeardown, @unchecked Sendable {
    let overlay: OverlayDriver
    let bridges: LocalBridgeDriver
    private let hostID: String
    private let logger: Logger
    /// Whether an attachment on this host uses the network of that name (sandboxes, Docker
    /// endpoints): their owners answer.
    private let inUse: @Sendable (String) -> Bool
    private let lock = NSLock()
    /// Commands attaching to a network right now, by network name.
    private var holds: [String: Int] = [:]
    /// Called (under the lock, before the devices go) for a network whose devices are removed:
    /// what else lives in its namespace must go first (the resolver at its gateway: an open
    /// socket would keep the deleted namespace alive). Set once, at composition.
    var willRemove: @Sendable (NetworkRecord) -> Void = { _ in }

    init(overlay: OverlayDriver, bridges: LocalBridgeDriver, hostID: String, logger: Logger, inUse: @escaping @Sendable (String) -> Bool) {
        self.overlay = overlay
        self.bridges = bridges
        self.hostID = hostID
        self.logger = logger
        self.inUse = inUse
    }

    /// Makes `network` exist here (adopting what is there) and keeps it while `body` runs.
    func withNetwork<T>(_ network: NetworkRecord, _ body: () throws -> T) throws -> T {
        try lock.withLock {
            try ensure(network)
            holds[network.name, default: 0] += 1
        }
        defer {
            lock.withLock {
                holds[network.name, default: 1] -= 1
                if holds[network.name] == 0 { holds[network.name] = nil }
            }
        }
        return try body()
    }

    /// Under `lock`: an overlay's hidden namespace (its peers come from the driver's table), or a
    /// bridge network's bridge. An overlay left from an earlier network of the same name (removed
    /// and re-created with another subnet or VNI) is replaced when nothing here uses it.
    private func ensure(_ network: NetworkRecord) throws {
        let label = try network.label
        switch network.driver {
        case .overlay:
            let spec = try Self.overlaySpec(network)
            if let existing = overlay.spec(of: label) {
                if existing == spec { return }
                guard !used(network.name) else {
                    throw NodeError.invalid("network '\(network.name)' changed in the store while sandboxes here still use its old form")
                }
                // What was added to the old one (a gateway resolver, an egress leg) goes with it.
                willRemove(network)
                try overlay.deleteNetwork(label)
            }
            try overlay.createNetwork(spec)
        case .bridge:
            guard network.host == hostID else { throw NodeError.invalid("network '\(network.name)' is a bridge network of host \(network.host ?? "?")") }
            try bridges.createBridge(try Self.bridgeSpec(network))
        }
    }

    private func used(_ name: String) -> Bool { holds[name, default: 0] > 0 || inUse(name) }

    /// A network that left the store (or was re-created differently): its devices here go,
    /// unless something uses them, or they are already a newer network's of that name.
    func networkLeft(_ network: NetworkRecord) {
        do { try remove(network) } catch {
            logger.warning("removing a network's devices failed", metadata: ["network": "\(network.name)", "error": "\(error)"])
        }
    }

    /// Removes this host's devices of `network` (`network rm` here, or the store's removal seen
    /// from the watch) unless an attachment here still uses them.
    func remove(_ network: NetworkRecord) throws {
        let label = try network.label
        try lock.withLock {
            guard !used(network.name) else {
                logger.warning("network left the store but a sandbox here still uses it; its devices stay", metadata: ["network": "\(network.name)"])
                return
            }
            switch network.driver {
            case .overlay:
                if let existing = overlay.spec(of: label), existing != (try Self.overlaySpec(network)) { return }
                guard overlay.hasNetwork(label) || overlay.hasNamespace(label) else { return }
                willRemove(network)
                try overlay.deleteNetwork(label)
            case .bridge:
                if network.host == hostID { try bridges.deleteBridge(try Self.bridgeSpec(network)) }
            }
        }
    }

    /// Removes an attachment's veth, with whichever driver made it.
    func detachInterface(_ attachment: LocalAttachment) throws {
        if attachment.network.driver == .overlay { try overlay.detach(attachment.endpoint) } else {
            try bridges.detach(attachment.endpoint)
        }
    }

    static func overlaySpec(_ network: NetworkRecord) throws -> OverlaySpec {
        // An IPv6-only network has no IPv4 subnet or gateway.
        let family6 = try network.family6
        return OverlaySpec(name: try network.label, subnet: network.subnet.isEmpty ? nil : try network.parsedSubnet,
                           gateway: network.subnet.isEmpty ? nil : network.gatewayAddress ?? IPv4Address(0), subnet6: family6?.subnet,
                           gateway6: family6?.gateway, vni: network.vni)
    }

    /// A bridge network's devices. Its name and subnet were checked when the record was read
    /// (`ClusterRegistry.decodeNetwork`); one that does not parse is an error, never another
    /// bridge's defaults.
    static func bridgeSpec(_ network: NetworkRecord) throws -> LocalBridgeDriver.BridgeSpec {
        LocalBridgeDriver.BridgeSpec(name: try network.label,
                                     device: network.vni != 0 ? LocalBridgeDriver.BridgeSpec.device(forNetworkNumber: network.vni)
                                         : LocalBridgeDriver.BridgeSpec.device(forUnnumberedNetwork: network.name),
                                     subnet: try network.parsedSubnet,
                                     gateway: network.gatewayAddress ?? IPv4Address(0))
    }
}
