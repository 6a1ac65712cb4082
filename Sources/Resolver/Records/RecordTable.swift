import Addressing

/// One consistent snapshot of everything the responder answers from: the zones of all
/// networks in the cluster and which networks each served sandbox is attached to.
///
/// Immutable: a serving thread takes a snapshot per batch of packets and reads it without locks
/// while `RecordStore` builds the next one aside.
public final class RecordTable: Sendable {
    public let zones: [NetworkZone]
    let zoneIndex: [LabelKey: Int]
    let attachments: [SandboxID: [Int]]

    init(zones: [NetworkZone], attachments: [SandboxID: [HostLabel]]) {
        self.zones = zones
        var index: [LabelKey: Int] = [:]
        for (i, zone) in zones.enumerated() { index[LabelKey(zone.name)] = i }
        zoneIndex = index
        var resolved: [SandboxID: [Int]] = [:]
        for (sandbox, networks) in attachments {
            resolved[sandbox] = networks.compactMap { index[LabelKey($0)] }
        }
        self.attachments = resolved
    }

    public static let empty = RecordTable(zones: [], attachments: [:])

    /// Indexes into `zones` of the networks `sandbox` is attached to, in attachment order.
    @inline(__always)
    func attachedZones(_ sandbox: SandboxID) -> [Int] { attachments[sandbox] ?? [] }

    /// The zone of the network called `label`, if the cluster has one.
    @inline(__always)
    func zone(named label: LabelKey) -> Int? { zoneIndex[label] }
}
