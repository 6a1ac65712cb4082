import Addressing
import ClusterState
import HostsWriter
import OverlayNet
import Resolver

/// What the reconciler projects the store onto, one small interface each, so that it owns its
/// inputs (the store) and knows nothing of the daemon: the resolver's record table, the hosts
/// files, the kernel's peers on overlays, and the local devices of networks that go.

/// The resolver's records: zones (networks) and their endpoints, changed in batches.
public protocol DNSProjection: Sendable {
    func update(_ body: (inout RecordStore.Changes) -> Void)
}

extension RecordStore: DNSProjection {}

/// The hosts files of this host's sandboxes, changed in batches.
public protocol HostsProjection: Sendable {
    @discardableResult
    func update(removing: [(id: String, network: HostLabel)],
                setting: [(id: String, network: HostLabel, record: EndpointRecord)]) -> [HostsWriter.Failure]
}

extension HostsWriter: HostsProjection {}

/// Remote endpoints as kernel peers (a neighbour per address and an FDB entry): each network's
/// peer table, programmed into its overlay whenever that exists here.
/// `addresses`: the endpoint's, primary first (IPv4 where it has one; its MAC comes from it).
public protocol PeerProjection: Sendable {
    func addPeer(_ addresses: [IPAddress], vtep: IPv4Address, on network: HostLabel) throws
    func removePeer(_ addresses: [IPAddress], vtep: IPv4Address, on network: HostLabel) throws
}

extension OverlayDriver: PeerProjection {}

/// A network that left the store (or came back with other parameters): its devices here go.
public protocol NetworkTeardown: Sendable {
    func networkLeft(_ record: NetworkRecord)
}
