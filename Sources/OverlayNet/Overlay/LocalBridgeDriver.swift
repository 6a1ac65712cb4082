import Addressing
import Foundation
import Logging
import Netns

/// Networks that live on one host: a Linux bridge in the host namespace with the gateway
/// address, and NAT for traffic leaving the host. Two uses:
///
/// - the `bridge` driver (docker0-like, default 172.17.0.0/16, and user-defined bridge
///   networks): the sandbox's eth0 with its default route through the bridge;
/// - the gateway bridge (172.18.0.0/16): eth1 of a sandbox whose eth0 is on an overlay, giving
///   it a default route out of the host.
///
/// Forwarding is enabled in the host namespace, and one nftables table (`dnsd_nat`) masquerades
/// each bridge's subnet when it leaves through any other interface. Set-up spawns nft once per
/// bridge; attaching does not.
public final class LocalBridgeDriver: @unchecked Sendable {
    public struct BridgeSpec: Sendable, Equatable {
        public var name: HostLabel
        /// The bridge device's name in the host namespace (at most 15 characters).
        public var device: String
        public var subnet: IPv4Subnet
        public var gateway: IPv4Address

        public init(name: HostLabel, device: String, subnet: IPv4Subnet, gateway: IPv4Address) {
            self.name = name
            self.device = device
            self.subnet = subnet
            self.gateway = gateway
        }

        /// docker0's counterpart.
        public static let defaultBridge = BridgeSpec(
            name: try! HostLabel("bridge"), device: "dnsd0", subnet: try! IPv4Subnet(parsing: "172.17.0.0/16"),
            gateway: IPv4Address(172, 17, 0, 1))
        /// The per-host way out for overlay-only sandboxes.
        public static let gatewayBridge = BridgeSpec(
            name: try! HostLabel("gwbridge"), device: "dnsd_gwbridge", subnet: try! IPv4Subnet(parsing: "172.18.0.0/16"),
            gateway: IPv4Address(172, 18, 0, 1))

        /// The device of a user-defined bridge network: from its number, unique in the cluster
        /// (a prefix of the name would let `frontend-a1` and `frontend-a2` share one bridge).
        public static func device(forNetworkNumber number: UInt32) -> String { "dnsb-\(number)" }

        /// The device of a bridge network made before networks had numbers (number 0): a
        /// prefix of its name, as earlier versions named it, so such a bridge is found again.
        public static func device(forUnnumberedNetwork name: String) -> String { "dnsb-" + String(name.prefix(10)) }

        /// Subnets no user-defined network may overlap: the built-in bridges'.
        public static let reservedSubnets = [defaultBridge.subnet, gatewayBridge.subnet]
    }

    /// The subnets routed in the host namespace (main table, the default route left out): a
    /// new network overlapping one would make the host's own traffic ambiguous.
    public func hostRoutes() throws -> [IPv4Subnet] {
        try netlink.routes().filter { $0.prefixLength > 0 }.map { IPv4Subnet(network: $0.destination, prefixLength: $0.prefixLength) }
    }

    private let hostNamespace: NamespaceHandle?
    private let thread: NamespaceThread
    private let netlink: NetlinkSocket
    private let logger: Logger
    private let lock = NSLock()
    private var bridges: [HostLabel: (spec: BridgeSpec, index: Int32)] = [:]

    /// `hostNamespace` nil means the caller's own namespace.
    public init(hostNamespace: NamespaceHandle?, thread: NamespaceThread, logger: Logger) throws {
        self.hostNamespace = hostNamespace
        self.thread = thread
        self.logger = logger
        netlink = try NetlinkSocket.open(in: hostNamespace, using: thread)
    }

    /// Creates (or adopts) the bridge, its gateway address, forwarding and NAT. A device that
    /// is there already is adopted once it is what `spec` says: a link of that name that is not
    /// a bridge is replaced, a stale address removed, the gateway address, up state and the NAT
    /// rule put back.
    public func createBridge(_ spec: BridgeSpec) throws {
        try lock.withLock {
            if bridges[spec.name] != nil { return }
            var created = false
            if let existing = try netlink.link(named: spec.device), existing.kind != "bridge" {
                logger.warning("\(spec.device) is not a bridge; replacing it")
                try netlink.deleteLink(named: spec.device)
            }
            if try netlink.link(named: spec.device) == nil {
                try netlink.createLink(LinkSpec(name: spec.device, kind: .bridge(BridgeOptions(multicastSnooping: false)), up: true))
                created = true
            }
            do {
                let index = try netlink.linkIndex(spec.device)
                try netlink.setLink(index, up: true)
                try netlink.setOnlyAddress(spec.gateway, prefixLength: spec.subnet.prefixLength, on: index)
                try enableForwarding()
                try installNAT(spec)
                bridges[spec.name] = (spec, index)
            } catch {
                if created { try? netlink.deleteLink(named: spec.device) }
                throw error
            }
        }
    }

    /// Removes the bridge and its NAT rule, also when an earlier run made them. Idempotent.
    public func deleteBridge(_ spec: BridgeSpec) throws {
        try lock.withLock {
            let known = bridges.removeValue(forKey: spec.name)?.spec ?? spec
            if try netlink.link(named: known.device) != nil { try netlink.deleteLink(named: known.device) }
            do { try runNFT("delete chain ip dnsd_nat \(chainName(known))\n") } catch {
                // Absent already (nothing was ever installed): nothing to remove.
                logger.debug("no NAT chain to remove for \(known.device): \(error)")
            }
        }
    }

    /// Connects `sandbox` to the bridge network: next `ethN` (or `interface`), address, up, and (usually) the
    /// default route through the bridge's gateway.
    public func attach(_ sandbox: Sandbox, to name: HostLabel, address: IPv4Address, interface: String? = nil,
                       defaultRoute: Bool = true) throws -> AttachedEndpoint {
        try lock.withLock {
            guard let bridge = bridges[name] else { throw OverlayError.unknownNetwork(name) }
            guard bridge.spec.subnet.contains(address) else { throw AddressPool.Failure.outside(address, bridge.spec.subnet) }
            return try sandbox.plug(into: name, from: netlink, master: bridge.index, portPrefix: "vb", address: IPAddress(address),
                                    address4: (address, bridge.spec.subnet.prefixLength), mtu: nil, interface: interface,
                                    gateway: defaultRoute ? bridge.spec.gateway : nil)
        }
    }

    public func detach(_ endpoint: AttachedEndpoint) throws {
        try netlink.deleteLink(named: endpoint.bridgePort)
    }

    private func chainName(_ spec: BridgeSpec) -> String { "masq_" + spec.device.replacingOccurrences(of: "-", with: "_") }

    /// MASQUERADE for the bridge's subnet leaving through any other interface. Idempotent:
    /// the chain is created if missing and flushed before its rule is written.
    private func installNAT(_ spec: BridgeSpec) throws {
        let chain = chainName(spec)
        try runNFT("""
            add table ip dnsd_nat
            add chain ip dnsd_nat \(chain) { type nat hook postrouting priority 100; policy accept; }
            flush chain ip dnsd_nat \(chain)
            add rule ip dnsd_nat \(chain) ip saddr \(spec.subnet) oifname != "\(spec.device)" masquerade

            """)
    }

    /// net.ipv4.ip_forward=1 in the host namespace (/proc/sys/net belongs to the namespace of
    /// the thread that opens it).
    private func enableForwarding() throws {
        try thread.run(in: hostNamespace) { try NetworkSysctl.set("ipv4/ip_forward", "1") }
    }

    private func runNFT(_ script: String) throws {
        try NamespaceCommand.run(["nft", "-f", "-"], in: hostNamespace?.path, input: script)
    }
}
