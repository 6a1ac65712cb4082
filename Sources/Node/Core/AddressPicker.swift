import Addressing
import ClusterState
import Foundation

/// Picks the addresses an attachment claims from this host's view of the network's claims (the
/// reconciler's, from the watch), so the claims go to the store in the same transaction as the
/// name and the endpoint, without a listing first: one address per family of the network, each
/// family the same way. Addresses picked by commands still in flight here are skipped, and so
/// are those claimed here in the last `recentSeconds` (the watch may not have shown them yet), so
/// concurrent attaches on this host never pick one address; a pick that the store refuses anyway
/// (another host's claim the view was behind on) is skipped by the caller, which refreshes the
/// view from one listing.
final class AddressPicker: @unchecked Sendable {
    private let lock = NSLock()
    private var inFlight: [String: Set<IPAddress>] = [:]
    /// Claimed here, and when: kept out of picks until the watch has certainly shown them.
    private var recent: [String: [IPAddress: Date]] = [:]
    static let recentSeconds: TimeInterval = 30
    private let claimed: @Sendable (String) -> Set<IPAddress>

    init(claimed: @escaping @Sendable (String) -> Set<IPAddress>) { self.claimed = claimed }

    /// The lowest address of `network`'s `family` that is neither claimed, nor in flight, nor in
    /// `excluding`; it stays in flight until `done`.
    func pick(_ family: NetworkRecord.Family, on network: String, excluding: Set<IPAddress>) throws -> IPAddress {
        let taken = claimed(network)
        return try lock.withLock {
            let now = Date()
            recent[network] = recent[network]?.filter { now.timeIntervalSince($0.value) < Self.recentSeconds }
            let busy = (inFlight[network] ?? []).union(recent[network]?.keys ?? [:].keys)
            for address in ClusterRegistry.candidates(in: family)
            where !taken.contains(address) && !busy.contains(address) && !excluding.contains(address) {
                inFlight[network, default: []].insert(address)
                return address
            }
            throw ClusterError.subnetExhausted(family.subnet.description)
        }
    }

    /// Notes that `address` was claimed here just now.
    func claimed(_ address: IPAddress, on network: String) {
        lock.withLock { recent[network, default: [:]][address] = Date() }
    }

    /// Marks `address` as no longer in flight (claimed or given up).
    func done(_ address: IPAddress, on network: String) {
        lock.withLock {
            inFlight[network]?.remove(address)
            if inFlight[network]?.isEmpty == true { inFlight[network] = nil }
        }
    }

    /// Marks `address` as in flight (a requested one), false when another command has it.
    func hold(_ address: IPAddress, on network: String) -> Bool {
        lock.withLock { inFlight[network, default: []].insert(address).inserted }
    }
}
