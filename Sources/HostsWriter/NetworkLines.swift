import Addressing

/// Names one of dnsd's hosts lines across all of a writer's files: the network's table and the
/// line's number in it. A file keeps, per line it holds, only where its slot is; the text lives
/// once, in the writer's `NetworkLines`.
struct LineID: Hashable, Comparable, Sendable {
    var table: Int
    var index: Int

    static func < (a: LineID, b: LineID) -> Bool { (a.table, a.index) < (b.table, b.index) }
}

/// Where a hosts file finds the current text of the lines it holds.
protocol HostsLineSource {
    func entry(_ id: LineID) -> HostsEntry?
}

/// One line changing in the files that hold it: what it was (nil: absent) and what it becomes.
struct LineChange {
    var id: LineID
    var old: HostsEntry?
    var new: HostsEntry?
}

/// One network's hosts lines, kept once for every file attached to it.
///
/// Each line has a small dense number, reused after the line goes, so a file can find its slot
/// for the line in a flat array instead of a dictionary of its own: at 1000 sandboxes x 2,500
/// peers (2.5M lines in files) the text and keys exist 2,500 times, not 2.5M times.
/// Peer lines are keyed by endpoint and address, a sandbox's own `IP hostname` line by sandbox
/// and address (it is held only by that sandbox's file).
struct NetworkLines {
    let network: HostLabel
    let table: Int
    private(set) var records: [String: EndpointRecord] = [:]
    private var entries: [HostsEntry?] = []
    private var indexOfKey: [String: Int] = [:]
    private var freeIndices: [Int] = []

    init(network: HostLabel, table: Int) {
        self.network = network
        self.table = table
    }

    /// No endpoint and no sandbox's own line.
    var isEmpty: Bool { records.isEmpty && indexOfKey.isEmpty }

    func entry(at index: Int) -> HostsEntry? { index < entries.count ? entries[index] : nil }

    /// Sets endpoint `id`'s record: the changes of its lines (none when nothing changed).
    mutating func setEndpoint(_ id: String, _ record: EndpointRecord) -> [LineChange] {
        let old = records.updateValue(record, forKey: id)
        let entries = record.entries(on: network)
        let added = entries.compactMap { set(Self.peerKey(id, $0.address), $0) }
        // Released after the new ones are numbered (a number is never reused within one
        // change), but removed first in the files, so an add can take the slot a removal freed.
        let kept = Set(entries.map(\.address))
        let removed = (old.map(Self.addresses) ?? []).filter { !kept.contains($0) }.compactMap { release(Self.peerKey(id, $0)) }
        return removed + added
    }

    /// Removes endpoint `id`: the removal of each of its lines.
    mutating func removeEndpoint(_ id: String) -> [LineChange] {
        guard let old = records.removeValue(forKey: id) else { return [] }
        return Self.addresses(old).compactMap { release(Self.peerKey(id, $0)) }
    }

    /// Every endpoint's lines, as additions: what a sandbox attaching to the network gets.
    func endpointLines() -> [LineChange] {
        var changes: [LineChange] = []
        changes.reserveCapacity(records.count)
        for (id, record) in records {
            for address in Self.addresses(record) {
                guard let index = indexOfKey[Self.peerKey(id, address)] else { continue }
                changes.append(LineChange(id: LineID(table: table, index: index), old: nil, new: entries[index]))
            }
        }
        return changes
    }

    /// A sandbox's own `IP hostname` lines on this network.
    mutating func setOwn(_ sandbox: String, hostname: HostLabel, addresses: [IPAddress]) -> [LineChange] {
        addresses.compactMap { set(Self.ownKey(sandbox, $0), HostsEntry(address: $0, hostname: hostname)) }
    }

    mutating func removeOwn(_ sandbox: String, addresses: [IPAddress]) -> [LineChange] {
        addresses.compactMap { release(Self.ownKey(sandbox, $0)) }
    }

    /// Numbers `key`'s line (reusing a free number) or changes it; nil when it is already `entry`.
    private mutating func set(_ key: String, _ entry: HostsEntry) -> LineChange? {
        if let index = indexOfKey[key] {
            guard entries[index] != entry else { return nil }
            defer { entries[index] = entry }
            return LineChange(id: LineID(table: table, index: index), old: entries[index], new: entry)
        }
        let index: Int
        if let free = freeIndices.popLast() {
            index = free
            entries[index] = entry
        } else {
            index = entries.count
            entries.append(entry)
        }
        indexOfKey[key] = index
        return LineChange(id: LineID(table: table, index: index), old: nil, new: entry)
    }

    private mutating func release(_ key: String) -> LineChange? {
        guard let index = indexOfKey.removeValue(forKey: key) else { return nil }
        let change = LineChange(id: LineID(table: table, index: index), old: entries[index], new: nil)
        entries[index] = nil
        freeIndices.append(index)
        if indexOfKey.isEmpty {
            // The last line went: start numbering again from nothing, giving back the storage a
            // large population left (files hold no line of this table once the change is applied).
            entries = []
            freeIndices = []
            indexOfKey = [:]
        }
        return change
    }

    /// An endpoint's addresses as its lines show them: one line each.
    private static func addresses(_ record: EndpointRecord) -> [String] {
        record.ipv4.map(\.description) + record.ipv6.map(\.description)
    }

    private static func peerKey(_ id: String, _ address: String) -> String { "peer/\(id)/\(address)" }
    private static func ownKey(_ sandbox: String, _ address: IPAddress) -> String { "own/\(sandbox)/\(address)" }
}
