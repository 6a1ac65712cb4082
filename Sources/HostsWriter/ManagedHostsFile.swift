/// One sandbox's hosts file, kept up to date in place with writes no reader can see half of.
///
/// The file is the user's lines, a marker, the standard lines, then one *slot* per entry: the
/// entry's line padded with spaces to a multiple of 16 bytes. A slot whose first byte is `#` is
/// free. Adding an entry fills a free slot (or a new one at the end) while its first byte is
/// still `#` — a reader seeing it half-written sees a comment — then turns it live by writing
/// its first byte, one byte, which no reader can see torn. Removing writes `#` over that byte.
/// So a reader at any moment sees every entry that exists both before and after an update, and
/// an add writes bytes in proportion to the new line, not to the file. Free slots at the end
/// are cut off, so the file never grows past its largest population.
///
/// A file an earlier run of dnsd left (the daemon restarted) is taken over as it is: its live
/// slots wait to be claimed by the entries the new run sets (no write when the line is the same),
/// and `sweepUnclaimed()` frees the ones nobody claimed. A restart so rewrites nothing that did
/// not change, and no reader ever sees a surviving peer's line missing.
///
/// Before each update the file's inode, size and mtime are compared with what dnsd last wrote:
/// if someone else changed or replaced it, it is rebuilt (still in place) from the user's
/// lines and dnsd's model, so an edit never loses the user's lines nor dnsd's entries.
final class ManagedHostsFile {
    static let marker = "# dnsd: the lines below are managed by dnsd and change as peers come and go; add your own lines above"
    static let standardLines = [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::0\tip6-localnet",
        "ff00::0\tip6-mcastprefix",
        "ff02::1\tip6-allnodes",
        "ff02::2\tip6-allrouters",
    ]
    static let slotAlignment = 16

    private struct Slot {
        var offset: Int
        var capacity: Int
        var key: String?
    }

    let file: InPlaceFile
    private(set) var userLines: [String] = []
    private var slots: [Slot] = []
    private var slotOfKey: [String: Int] = [:]
    private var entries: [String: HostsEntry] = [:]
    /// Live slots of an earlier run not claimed yet, by their line (trailing padding removed).
    private var unclaimed: [String: [Int]] = [:]
    private var size = 0
    private var stamp: InPlaceFile.Stamp?
    /// Bytes this file has had written, for the benchmark and tests.
    private(set) var bytesWritten = 0
    private(set) var repairs = 0

    /// Adopts the file at `path`: keeps the lines a user or runtime already has in it (outside
    /// any previous dnsd part) and writes the managed part after them.
    /// With `resuming` (a restarted daemon taking its sandboxes back), a file laid out by an
    /// earlier run is taken over slot by slot instead.
    init(path: String, resuming: Bool = false) throws {
        file = InPlaceFile(path: path)
        let existing = file.read()
        if resuming, let existing, adoptSlots(of: existing) { return }
        // Any other file keeps its lines (above a marker, if it has one from an earlier dnsd)
        // and gets the managed part written after them.
        if let existing { userLines = Self.userLines(of: existing, ours: nil) }
        try rebuild()
    }

    /// Takes over a file laid out by an earlier run (marker, standard lines, slots): returns
    /// false, changing nothing, for any other layout.
    private func adoptSlots(of text: String) -> Bool {
        guard let stamp = file.stamp(), stamp.size == text.utf8.count else { return false }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard lines.last == "" else { return false }
        lines.removeLast()
        guard let markerIndex = lines.firstIndex(of: Self.marker),
              Array(lines.dropFirst(markerIndex + 1).prefix(Self.standardLines.count)) == Self.standardLines
        else { return false }
        var offset = lines[...(markerIndex + Self.standardLines.count)].reduce(0) { $0 + $1.utf8.count + 1 }
        var adopted: [Slot] = [], waiting: [String: [Int]] = [:], placeholders: [String: Int] = [:]
        for line in lines.dropFirst(markerIndex + 1 + Self.standardLines.count) {
            let length = line.utf8.count + 1
            var key: String?
            if !line.hasPrefix("#") {
                var trimmed = Substring(line)
                while trimmed.last == " " { trimmed.removeLast() }
                guard !trimmed.isEmpty else { return false }
                // Held under a placeholder key (so no add takes it as free) until claimed or swept.
                key = Self.placeholder(adopted.count)
                placeholders[key!] = adopted.count
                waiting[String(trimmed), default: []].append(adopted.count)
            }
            adopted.append(Slot(offset: offset, capacity: length, key: key))
            offset += length
        }
        userLines = Array(lines[..<markerIndex])
        slots = adopted
        slotOfKey = placeholders
        unclaimed = waiting
        size = offset
        self.stamp = stamp
        return true
    }

    /// Frees the slots of an earlier run that no entry claimed (their peers are gone).
    func sweepUnclaimed() throws {
        let indices = unclaimed.values.flatMap { $0 }
        unclaimed = [:]
        // From the end: freeing the last slot cuts only free slots off, never a held one.
        for index in indices.sorted(by: >) { try kill(Self.placeholder(index)) }
    }

    private static func placeholder(_ index: Int) -> String { "unclaimed/\(index)" }

    var entryCount: Int { entries.count }
    var liveEntries: [String: HostsEntry] { entries }

    /// Adds, replaces (`entry` non-nil) or removes (`entry` nil) the entry under `key`.
    func set(_ key: String, _ entry: HostsEntry?) throws {
        if file.stamp() != stamp {
            // Changed or replaced behind dnsd's back: apply to the model, then rebuild in place,
            // keeping whatever the user added (old and new entries are both dnsd's, not theirs).
            let previous = Array(entries.values)
            entries[key] = entry
            repairs += 1
            try rebuild(alsoOurs: previous)
            return
        }
        if let old = entries[key] {
            if old == entry { return }
            try kill(key)
        }
        guard let entry else { return }
        if claim(key, entry) { return }
        try add(key, entry)
    }

    /// Gives `key` an earlier run's live slot holding exactly `entry`'s line, if there is one.
    private func claim(_ key: String, _ entry: HostsEntry) -> Bool {
        guard !unclaimed.isEmpty, var waiting = unclaimed[entry.line], let index = waiting.popLast() else { return false }
        unclaimed[entry.line] = waiting.isEmpty ? nil : waiting
        slotOfKey[Self.placeholder(index)] = nil
        slots[index].key = key
        slotOfKey[key] = index
        entries[key] = entry
        return true
    }

    /// Writes the whole file again from the model (first write and repairs).
    func rebuild(alsoOurs: [HostsEntry] = []) throws {
        if stamp != nil, let current = file.read() {
            userLines = Self.userLines(of: current, ours: Array(entries.values) + alsoOurs, alsoLines: Array(unclaimed.keys))
        }
        var text = userLines.map { $0 + "\n" }.joined()
        text += Self.marker + "\n" + Self.standardLines.map { $0 + "\n" }.joined()
        var bytes = Array(text.utf8)
        slots = []
        slotOfKey = [:]
        unclaimed = [:]
        for key in entries.keys.sorted() {
            let line = Self.slotBytes(entries[key]!, live: true)
            slotOfKey[key] = slots.count
            slots.append(Slot(offset: bytes.count, capacity: line.count, key: key))
            bytes += line
        }
        stamp = try file.replaceContent(bytes)
        size = bytes.count
        bytesWritten += bytes.count
    }

    private func add(_ key: String, _ entry: HostsEntry) throws {
        var line = Self.slotBytes(entry, live: false)
        let index: Int
        if let free = slots.firstIndex(where: { $0.key == nil && $0.capacity >= line.count }) {
            index = free
            // Pad to the free slot's size so the slot keeps its exact extent.
            line = Self.padded(line, to: slots[free].capacity)
        } else {
            index = slots.count
            slots.append(Slot(offset: size, capacity: line.count, key: nil))
            size += line.count
        }
        let offset = slots[index].offset
        let first = Array(entry.line.utf8.prefix(1))
        // 1) the line, still commented out; 2) its first byte: live.
        stamp = try file.write([(offset, line), (offset, first)])
        bytesWritten += line.count + 1
        slots[index].key = key
        slotOfKey[key] = index
        entries[key] = entry
    }

    private func kill(_ key: String) throws {
        guard let index = slotOfKey.removeValue(forKey: key) else { return }
        entries[key] = nil
        slots[index].key = nil
        // Free slots at the end are cut off rather than kept.
        var cut = slots.count
        while cut > 0 && slots[cut - 1].key == nil { cut -= 1 }
        if cut < slots.count {
            let newSize = slots[cut].offset
            stamp = try file.write(index < cut ? [(slots[index].offset, [UInt8(ascii: "#")])] : [], truncateTo: newSize)
            bytesWritten += index < cut ? 1 : 0
            slots.removeSubrange(cut...)
            size = newSize
        } else {
            stamp = try file.write([(slots[index].offset, [UInt8(ascii: "#")])])
            bytesWritten += 1
        }
    }

    /// `line` + spaces to the slot alignment + newline; the first byte `#` unless `live`.
    private static func slotBytes(_ entry: HostsEntry, live: Bool) -> [UInt8] {
        var bytes = Array(entry.line.utf8)
        if !live { bytes[0] = UInt8(ascii: "#") }
        let length = (bytes.count + 1 + slotAlignment - 1) / slotAlignment * slotAlignment
        return padded(bytes + [UInt8(ascii: "\n")], to: length)
    }

    private static func padded(_ line: [UInt8], to length: Int) -> [UInt8] {
        guard line.count < length else { return line }
        return Array(line.dropLast()) + [UInt8](repeating: UInt8(ascii: " "), count: length - line.count) + [UInt8(ascii: "\n")]
    }

    /// The user's lines of `text`: everything before dnsd's marker, and anything after it that
    /// is neither a standard line, a free slot, nor one of dnsd's entries (a line the user
    /// appended at the end is kept, and moves above the marker).
    /// `ours` nil means: everything after the marker is dnsd's (a file from an earlier run).
    static func userLines(of text: String, ours: [HostsEntry]?, alsoLines: [String] = []) -> [String] {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.last == "" { lines.removeLast() }
        guard let markerIndex = lines.firstIndex(of: marker) else { return lines }
        guard let ours else { return Array(lines[..<markerIndex]) }
        let known = Set(standardLines.map(normalized) + ours.map { normalized($0.line) } + alsoLines.map(normalized))
        let after = lines[(markerIndex + 1)...].filter { line in
            let trimmed = normalized(line)
            return !trimmed.isEmpty && !trimmed.hasPrefix("#") && !known.contains(trimmed)
        }
        return Array(lines[..<markerIndex]) + after
    }

    private static func normalized(_ line: String) -> String {
        line.split(whereSeparator: { $0 == " " || $0 == "\t" }).joined(separator: " ")
    }
}
