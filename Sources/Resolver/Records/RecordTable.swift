import Addressing

/// One consistent snapshot of everything the responder answers from: the zones of all
/// networks in the cluster and which networks each served sandbox is attached to.
///
/// Immutable: a serving thread takes a snapshot per batch of packets and reads it without locks
/// while `RecordStore` builds the next one aside.
public final class RecordTable: Sendable {
    public let zones: [NetworkZone]
    let zoneIndex: NameIndex
    let attachments: [SandboxID: [Int]]

    init(zones: [NetworkZone], attachments: [SandboxID: [HostLabel]]) {
        self.zones = zones
        let index = NameIndex(zones.enumerated().map { ($0.element.name.text, Int32($0.offset)) })
        zoneIndex = index
        var resolved: [SandboxID: [Int]] = [:]
        for (sandbox, networks) in attachments {
            resolved[sandbox] = networks.compactMap { index.find($0.text).map(Int.init) }
        }
        self.attachments = resolved
    }

    public static let empty = RecordTable(zones: [], attachments: [:])

    /// Indexes into `zones` of the networks `sandbox` is attached to, in attachment order.
    @inline(__always)
    func attachedZones(_ sandbox: SandboxID) -> [Int] { attachments[sandbox] ?? [] }

    /// The zone of the network whose name is `label` (lower-case bytes), if the cluster has one.
    @inline(__always)
    func zone(named label: UnsafeRawBufferPointer) -> Int? { zoneIndex.find(label).map(Int.init) }
}
