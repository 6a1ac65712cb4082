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

    /// What an attachment of `sandbox` to `network` at `address` publishes.
    func endpointState(_ sandbox: HostLabel, aliases: [HostLabel], on network: NetworkRecord, address: IPv4Address) -> EndpointState {
        EndpointState(id: "\(configuration.hostID)-\(sandbox.text)", network: network.name, name: sandbox.text,
                      aliases: aliases.map(\.text), ipv4: address.description, mac: MACAddress(derivedFrom: address).description,
                      host: configuration.hostID, vtep: configuration.advertise.description)
    }

    /// The address an attachment tries first: `requested` (checked against the network), or the
    /// lowest free one as this host sees the claims. It stays in flight (no other command here
    /// picks it) until `picker.done`.
    func firstAddress(on network: NetworkRecord, requested: IPv4Address?) throws -> IPv4Address {
        guard let requested else { return try picker.pick(on: network, excluding: []) }
        try ClusterRegistry.validate(requested, on: network)
        guard picker.hold(requested, on: network.name) else { throw ClusterError.addressTaken(requested.description) }
        return requested
    }

    /// One commit of `state` (and of `name`, for a new sandbox): true when claimed, false when
    /// its address was taken; the cluster's refusals are thrown. When the store does not answer,
    /// the commit may have been applied: its release is queued (tried when the store answers,
    /// before any new claim of the name) and what the store may have is kept out of this host's
    /// projections meanwhile; the store error is thrown.
    func commitClaim(_ state: EndpointState, name: HostLabel?, on network: NetworkRecord, lease: LeaseID) throws -> Bool {
        guard let address = IPv4Address(state.ipv4), let sandbox = try? HostLabel(state.name) else {
            throw NodeError.failed("an endpoint to claim without an address or a name")
        }
        let claim = ClusterRegistry.AttachmentClaim(name: name, network: network, address: address, endpoint: state)
        do {
            guard try registry.claim(claim, host: configuration.hostID, lease: lease) else { return false }
        } catch let error as StoreError {
            reconciler.suppress([state])
            withdrawals.add(sandbox, endpoints: [state], releasingName: name != nil)
            throw error
        }
        picker.claimed(address, on: network.name)
        return true
    }

    /// Claims an attachment of sandbox `sandbox` to `network` in the cluster, in one transaction
    /// when nothing is contended: `name` too when given (a new sandbox), an address (`requested`,
    /// or the lowest free one as this host sees the claims), and the endpoint record. Its undo
    /// (one transaction again) is added to `undo`. Returns the published endpoint.
    func claim(name: HostLabel?, as sandbox: HostLabel, aliases: [HostLabel], on network: NetworkRecord, requested: IPv4Address?,
               lease: LeaseID, undo: Rollback) throws -> EndpointState {
        let label = try network.label
        // Addresses the store refused although this host's view had them free: the view was
        // behind. After the first, the view is refreshed from one listing.
        var refused: Set<IPv4Address> = []
        var listed = false
        while true {
            let address = requested == nil ? try picker.pick(on: network, excluding: refused) : try firstAddress(on: network, requested: requested)
            defer { picker.done(address, on: network.name) }
            let state = endpointState(sandbox, aliases: aliases, on: network, address: address)
            if try commitClaim(state, name: name, on: network, lease: lease) {
                undoClaim(of: state, name: name, lease: lease, in: undo)
                return state
            }
            if requested != nil { throw ClusterError.addressTaken(address.description) }
            if !listed {
                refused.formUnion(try registry.claimedAddresses(on: label))
                listed = true
            }
            refused.insert(address)
        }
    }

    /// Records in `undo` the release of a claim made.
    func undoClaim(of state: EndpointState, name: HostLabel?, lease: LeaseID, in undo: Rollback) {
        undo.add("claims of \(state.name) on \(state.network)") { [self] in
            try registry.release(name: name, endpoints: [state], host: configuration.hostID, lease: lease)
        }
    }
}
