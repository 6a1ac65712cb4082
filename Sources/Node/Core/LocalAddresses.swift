import Addressing
import Foundation
import OverlayNet

/// The addresses of this host's nameless bridges (the default bridge and the gateway bridge),
/// handed out here alone: no store, one short lock.
final class LocalAddresses: @unchecked Sendable {
    private let lock = NSLock()
    private var pools: [String: AddressPool]

    init() {
        pools = [:]
        for spec in [LocalBridgeDriver.BridgeSpec.defaultBridge, .gatewayBridge] {
            // The built-in specs are valid subnets: a failure here is a programming error.
            pools[spec.name.text] = try! AddressPool(subnet: spec.subnet)
        }
    }

    func allocate(on spec: LocalBridgeDriver.BridgeSpec) throws -> IPv4Address {
        try lock.withLock { try pools[spec.name.text]!.allocate() }
    }

    func release(_ address: IPv4Address, on spec: LocalBridgeDriver.BridgeSpec) {
        lock.withLock { pools[spec.name.text]?.release(address) }
    }

    /// Takes `address` again after a restart (it is on a surviving sandbox's interface).
    func reserve(_ address: IPv4Address, on spec: LocalBridgeDriver.BridgeSpec) throws {
        try lock.withLock { try pools[spec.name.text]!.reserve(address) }
    }
}
