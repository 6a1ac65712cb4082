import Addressing
import ClusterState
import Foundation

/// Picks the address an attachment claims from this host's view of the network's claims (the
/// reconciler's, from the watch), so the claim goes to the store in the same transaction as the
/// name and the endpoint, without a listing first. Addresses picked by commands still in flight
/// here are skipped, and so are those claimed here in the last `recentSeconds` (the watch may not
/// have shown them yet), so concurrent attaches on this host never pick one address; a pick that
/// the store refuses anyway (another host's claim the view was behind on) is skipped by the
/// caller, which refreshes the view from one listing.
final class AddressPicker: @unchecked Sendable {
    private let lock = NSLock()
    private var inFlight: [String: Set<IPv4Address>] = [:]
    /// Claimed here, and when: kept out of picks until the watch has certainly shown them.
    private var recent: [String: [IPv4Address: Date]] = [:]
    static let recentSeconds: TimeInterval = 30
    private let claimed: @Sendable (String) -> Set<IPv4Address>

    init(claimed: @escaping @Sendable (String) -> Set<IPv4Address>) { self.claimed = claimed }

    /// The lowest address of `network` that is neither claimed, nor in flight, nor in
    /// `excluding`; it stays in flight until `done`.
    func pick(on network: NetworkRecord, excluding: Set<IPv4Address>) throws -> IPv4Address {
        let subnet = try network.parsedSubnet
        let taken = claimed(network.name)
        return try lock.withLock {
            let now = Date()
            recent[network.name] = recent[network.name]?.filter { now.timeIntervalSince($0.value) < Self.recentSeconds }
            let busy = (inFlight[network.name] ?? []).union(recent[network.name]?.keys ?? [:].keys)
            for value in ClusterRegistry.assignable(on: network, subnet: subnet) {
                let address = IPv4Address(value)
                if address == network.gatewayAddress || taken.contains(address) || busy.contains(address) || excluding.contains(address) {
                    continue
                }
                inFlight[network.name, default: []].insert(address)
                return address
            }
            throw ClusterError.subnetExhausted(subnet.description)
        }
    }

    /// Notes that `address` was claimed here just now.
    func claimed(_ address: IPv4Address, on network: String) {
        lock.withLock { recent[network, default: [:]][address] = Date() }
    }

    /// Marks `address` as no longer in flight (claimed or given up).
    func done(_ address: IPv4Address, on network: String) {
        lock.withLock {
            inFlight[network]?.remove(address)
            if inFlight[network]?.isEmpty == true { inFlight[network] = nil }
        }
    }

    /// Marks `address` as in flight (a requested one), false when another command has it.
    func hold(_ address: IPv4Address, on network: String) -> Bool {
        lock.withLock { inFlight[network, default: []].insert(address).inserted }
    }
}
