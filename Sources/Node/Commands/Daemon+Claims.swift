import Addressing
import ClusterState
import Foundation
import OverlayNet
import Store

/// An attachment's claims in the cluster: the name (for a new sandbox), an address and the
/// endpoint record, committed in one store transaction (`ClusterRegistry.claim`). The address is
/// picked from this host's view of the claims; when the store says it was taken (another host's
/// claim the view was behind on) the next one is tried. A commit that gets no answer may have
/// been applied: its release is queued with the pending withdrawals, never waited for.
extension Daemon {
    /// Refuses, before anything is claimed, a network this host cannot attach to: a bridge
    /// network lives on its one host.
    func checkAttachable(_ network: NetworkRecord) throws {
        if network.driver == .bridge, network.host != configuration.hostID {
            throw NodeError.invalid("network '\(network.name)' is a bridge network of host \(network.host ?? "?")")
        }
    }

    /// What an attachment of `sandbox` to `network` with `addresses` (IPv4 first, then IPv6 on
    /// a dual-stack network) publishes.
    func endpointState(_ sandbox: HostLabel, aliases: [HostLabel], on network: NetworkRecord, addresses: [IPAddress]) -> EndpointState {
        // The MAC comes from the primary address: IPv4, or IPv6 on an IPv6-only network.
        let primary = addresses.first ?? IPAddress(IPv4Address(0))
        return EndpointState(id: "\(configuration.hostID)-\(sandbox.text)", network: network.name, name: sandbox.text,
                             aliases: aliases.map(\.text), ipv4: addresses.first { $0.family == .v4 }?.description ?? "",
                             ipv6: addresses.first { $0.family == .v6 }?.description,
                             mac: MACAddress(derivedFrom: primary).description, host: configuration.hostID,
                             vtep: configuration.advertise.description)
    }

    /// The addresses an attachment tries: per family of the network, the one `requested` of that
    /// family (checked against the network), or the lowest free one as this host sees the claims
    /// less `refused`. Each stays in flight (no other command here picks it) until `picker.done`;
    /// a failure part-way gives back those already picked.
    func pickAddresses(on network: NetworkRecord, requested: [IPAddress], excluding refused: Set<IPAddress>) throws -> [IPAddress] {
        for address in requested { try ClusterRegistry.validate(address, on: network) }
        var picked: [IPAddress] = []
        do {
            for family in try network.families {
                if let wanted = requested.first(where: { $0.family == family.subnet.family }) {
                    guard picker.hold(wanted, on: network.name) else { throw ClusterError.addressTaken(wanted.description) }
                    picked.append(wanted)
                } else {
                    picked.append(try picker.pick(family, on: network.name, excluding: refused))
                }
            }
        } catch {
            for address in picked { picker.done(address, on: network.name) }
            throw error
        }
        return picked
    }

    /// One commit of `state` (and of `name`, for a new sandbox): the addresses found taken (empty:
    /// claimed); the cluster's refusals are thrown. When the store does not answer, the commit
    /// may have been applied: its release is queued (tried when the store answers, before any new
    /// claim of the name) and what the store may have is kept out of this host's projections
    /// meanwhile; the store error is thrown.
    func commitClaim(_ state: EndpointState, name: HostLabel?, on network: NetworkRecord, lease: LeaseID) throws -> Set<IPAddress> {
        guard state.primaryAddress != nil, let sandbox = try? HostLabel(state.name) else {
            throw NodeError.failed("an endpoint to claim without an address or a name")
        }
        let claim = ClusterRegistry.AttachmentClaim(name: name, network: network, endpoint: state)
        do {
            let taken = try registry.claim(claim, host: configuration.hostID, lease: lease)
            guard taken.isEmpty else { return taken }
        } catch let error as StoreError {
            reconciler.suppress([state])
            withdrawals.add(sandbox, endpoints: [state], releasingName: name != nil)
            throw error
        }
        for address in state.addresses { picker.claimed(address, on: network.name) }
        return []
    }

    /// Claims an attachment of sandbox `sandbox` to `network` in the cluster, in one transaction
    /// when nothing is contended: `name` too when given (a new sandbox), an address of each of
    /// the network's families (`requested`, or the lowest free one as this host sees the claims),
    /// and the endpoint record. Its undo (one transaction again) is added to `undo`. Returns the
    /// published endpoint.
    func claim(name: HostLabel?, as sandbox: HostLabel, aliases: [HostLabel], on network: NetworkRecord, requested: [IPAddress],
               lease: LeaseID, undo: Rollback) throws -> EndpointState {
        let label = try network.label
        // Addresses the store holds although this host's view had them free: the view was
        // behind. After the first refusal, the view is refreshed from one listing; each commit
        // that fails names the addresses it found taken, and only those are skipped (on a
        // dual-stack network the other family's pick may be free). Bounded: a key that keeps
        // changing is contention, reported as such, never a loop.
        var refused: Set<IPAddress> = []
        var listed = false
        for _ in 0..<Self.claimAttempts {
            let addresses = try pickAddresses(on: network, requested: requested, excluding: refused)
            defer { for address in addresses { picker.done(address, on: network.name) } }
            let state = endpointState(sandbox, aliases: aliases, on: network, addresses: addresses)
            let taken = try commitClaim(state, name: name, on: network, lease: lease)
            if taken.isEmpty {
                undoClaim(of: state, name: name, lease: lease, in: undo)
                return state
            }
            // A requested address another claim holds is a refusal.
            if let address = requested.first(where: taken.contains) { throw ClusterError.addressTaken(address.description) }
            refused.formUnion(taken)
            if !listed {
                refused.formUnion(try registry.claimedAddresses(on: label).subtracting(requested))
                listed = true
            }
        }
        throw ContendedKey(key: Keys.ipam(network.name), attempts: Self.claimAttempts)
    }

    /// How many commits one attachment tries before it reports contention.
    static let claimAttempts = 64

    /// Records in `undo` the release of a claim made.
    func undoClaim(of state: EndpointState, name: HostLabel?, lease: LeaseID, in undo: Rollback) {
        undo.add("claims of \(state.name) on \(state.network)") { [self] in
            try registry.release(name: name, endpoints: [state], host: configuration.hostID, lease: lease)
        }
    }
}
