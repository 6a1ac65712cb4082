/// One sandbox's hosts file, kept up to date in place with writes no reader can see half of.
///
/// The file is the user's lines, a marker, the standard lines, then one *slot* per entry: the
/// entry's line padded with spaces to a multiple of 16 bytes. A slot whose first byte is `#` is
/// free. Adding an entry fills a free slot (or a new one at the end) while its first byte is
/// still `#` — a reader seeing it half-written sees a comment — then turns it live by writing
/// its first byte, one byte, which no reader can see torn. Removing writes `#` over that byte,
/// then blanks the rest of the line, so a departed peer's name leaves no trace in the file.
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
///
/// The file keeps no text of its own lines, nor a list of its slots: per line it holds only the
/// line's slot (offset and size, 8 bytes) in an index by `LineID` (pages of 512, grown a page at
/// a time), plus a short sorted list of free slots (the text layout is `HostsFileLayout`); the text comes from the writer's model (`HostsLineSource`) when it is
/// written. At 1000 sandboxes x 2,500 peers that is 2.5M slots. A failed write leaves the file
/// to be rebuilt by the next update.
final class ManagedHostsFile {
    /// A slot's extent in the file: 8 bytes, one per line of every file. In the index, capacity
    /// 0 means the file does not hold the line, `unwritten` that it holds it but has not written
    /// it yet (to be done by a rebuild).
    private struct Slot: Equatable {
        var offset: UInt32
        var capacity: UInt32

        static let none = Slot(offset: 0, capacity: 0)
        static let unwritten = Slot(offset: 0, capacity: .max)

        init(offset: UInt32, capacity: UInt32) {
            self.offset = offset
            self.capacity = capacity
        }

        init(at offset: Int, capacity: Int) throws {
            guard offset + capacity < Int(UInt32.max) else { throw TooLarge(size: offset + capacity) }
            self.offset = UInt32(offset)
            self.capacity = UInt32(capacity)
        }

        var end: Int { Int(offset) + Int(capacity) }
        var isPlaced: Bool { capacity != 0 && capacity != .max }
    }

    struct TooLarge: Error, CustomStringConvertible {
        var size: Int
        var description: String { "hosts file would grow past 4 GiB (\(size) bytes)" }
    }

    let file: InPlaceFile
    private(set) var userLines: [String] = []
    /// Per table, per line index: the slot holding that line in this file, in pages grown one at
    /// a time (an array grown by copying would leave 1000s of files' old copies as heap holes).
    private var slotOfLine: [[[Slot]]] = []
    private static let pageSize = 512
    /// Per table, how many lines this file holds: at 0 the table's pages go.
    private var heldCount: [Int] = []

    /// Index pages kept (for tests).
    var indexPages: Int { slotOfLine.reduce(0) { $0 + $1.count } }
    /// Free slots (their first byte is `#`), by offset; the last one never ends the file.
    private var free: [Slot] = []
    /// Live slots of an earlier run not claimed yet, by their line (trailing padding removed).
    private var unclaimed: [String: [Slot]] = [:]
    /// The file needs rebuilding from the model (an earlier write failed), and the lines it may
    /// still show that are dnsd's (so they are not taken for the user's).
    private var needsRebuild = false
    private var pendingOldLines: [HostsEntry] = []
    private var size = 0
    private var stamp: InPlaceFile.Stamp?
    /// Bytes this file has had written, for the benchmark and tests.
    private(set) var bytesWritten = 0
    private(set) var repairs = 0
    /// Updates that wrote the file (an edit of some lines, or a rebuild).
    private(set) var writes = 0

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
        if let existing { userLines = HostsFileLayout.userLines(of: existing, ours: nil) }
        try rebuild(NoLines())
    }

    private struct NoLines: HostsLineSource {
        func entry(_ id: LineID) -> HostsEntry? { nil }
    }

    /// Takes over a file laid out by an earlier run (marker, standard lines, slots): returns
    /// false, changing nothing, for any other layout.
    private func adoptSlots(of text: String) -> Bool {
        guard let stamp = file.stamp(), stamp.size == text.utf8.count, let layout = HostsFileLayout.parse(text) else { return false }
        var freeSlots: [Slot] = [], waiting: [String: [Slot]] = [:]
        for line in layout.slots {
            guard let slot = try? Slot(at: line.offset, capacity: line.length) else { return false }
            // A live line is held as unclaimed (so no add takes it as free) until claimed or swept.
            if let live = line.live { waiting[live, default: []].append(slot) } else { freeSlots.append(slot) }
        }
        userLines = layout.userLines
        free = freeSlots
        unclaimed = waiting
        size = layout.size
        self.stamp = stamp
        // Free slots ending the file are cut like any other (an earlier run left none).
        if let last = free.last, last.end == size {
            let slot = free.removeLast()
            try? edit { try release(slot, $0) }
        }
        return true
    }

    /// Frees the slots of an earlier run that no entry claimed (their peers are gone).
    func sweepUnclaimed() throws {
        let slots = unclaimed.values.flatMap { $0 }
        unclaimed = [:]
        // From the end: freeing the last slot cuts only free slots off, never a held one.
        try edit { editor in
            for slot in slots.sorted(by: { $0.offset > $1.offset }) { try release(slot, editor) }
        }
    }

    /// Applies `changes` to the lines this file holds; `source` is the model after them.
    /// Throws on the first failed write: the file is then rebuilt by the next call.
    func apply(_ changes: [LineChange], from source: some HostsLineSource) throws {
        if needsRebuild || file.stamp() != stamp {
            // Changed or replaced behind dnsd's back: take the changes into the model, then
            // rebuild in place, keeping whatever the user added (the lines before the changes
            // are dnsd's, not theirs).
            for change in changes { setSlot(change.id, change.new != nil ? .unwritten : .none) }
            if !needsRebuild { repairs += 1 }
            try rebuild(source, recognising: changes.compactMap(\.old))
            return
        }
        var done = 0
        do {
            try edit { editor in
                for change in changes {
                    let old = slot(change.id)
                    if old != .none {
                        setSlot(change.id, .none)
                        if old.isPlaced { try release(old, editor) }
                    }
                    if let new = change.new, !claim(change.id, new) { try add(change.id, new, editor) }
                    done += 1
                }
            }
        } catch {
            // Whatever is half done is redone from the model by the next update.
            for change in changes[done...] { setSlot(change.id, change.new != nil ? .unwritten : .none) }
            pendingOldLines += changes[done...].compactMap(\.old)
            throw error
        }
    }

    /// Writes through one open file (one open, fstat and close for any number of lines).
    private func edit(_ body: (InPlaceFile.Editor) throws -> Void) throws {
        try writing { try file.edit(body) }
    }

    /// Runs a write of the file: its stamp is what dnsd wrote last; a failure leaves the file to
    /// be rebuilt by the next update.
    private func writing(_ write: () throws -> InPlaceFile.Stamp) throws {
        do {
            stamp = try write()
            writes += 1
        } catch {
            needsRebuild = true
            throw error
        }
    }

    private func slot(_ id: LineID) -> Slot {
        let (page, at) = id.index.quotientAndRemainder(dividingBy: Self.pageSize)
        guard id.table < slotOfLine.count, page < slotOfLine[id.table].count else { return .none }
        return slotOfLine[id.table][page][at]
    }

    private func setSlot(_ id: LineID, _ slot: Slot) {
        let (page, at) = id.index.quotientAndRemainder(dividingBy: Self.pageSize)
        if id.table >= slotOfLine.count {
            guard slot != .none else { return }
            slotOfLine += Array(repeating: [], count: id.table + 1 - slotOfLine.count)
            heldCount += Array(repeating: 0, count: id.table + 1 - heldCount.count)
        }
        while page >= slotOfLine[id.table].count {
            guard slot != .none else { return }
            slotOfLine[id.table].append(Array(repeating: .none, count: Self.pageSize))
        }
        let old = slotOfLine[id.table][page][at]
        slotOfLine[id.table][page][at] = slot
        if old == .none, slot != .none {
            heldCount[id.table] += 1
        } else if old != .none, slot == .none {
            heldCount[id.table] -= 1
            // The file holds no line of this table any more (it left the network, or the network
            // emptied): its pages go.
            if heldCount[id.table] == 0 { slotOfLine[id.table] = [] }
        }
    }

    /// Gives `id` an earlier run's live slot holding exactly `entry`'s line, if there is one.
    private func claim(_ id: LineID, _ entry: HostsEntry) -> Bool {
        guard !unclaimed.isEmpty, var waiting = unclaimed[entry.line], let slot = waiting.popLast() else { return false }
        unclaimed[entry.line] = waiting.isEmpty ? nil : waiting
        setSlot(id, slot)
        return true
    }

    /// Writes the whole file again from the model (first write and repairs): every line held,
    /// in line order. `recognising`: dnsd's lines the file may still show that the model no
    /// longer has.
    private func rebuild(_ source: some HostsLineSource, recognising old: [HostsEntry] = []) throws {
        var held: [LineID] = []
        for (table, pages) in slotOfLine.enumerated() {
            for (page, slots) in pages.enumerated() {
                for (at, slot) in slots.enumerated() where slot != .none {
                    held.append(LineID(table: table, index: page * Self.pageSize + at))
                }
            }
        }
        let entries = held.map { source.entry($0) }
        if stamp != nil, let current = file.read() {
            userLines = HostsFileLayout.userLines(of: current, ours: entries.compactMap { $0 } + old + pendingOldLines, alsoLines: Array(unclaimed.keys))
        }
        var bytes = HostsFileLayout.header(userLines: userLines)
        for (id, entry) in zip(held, entries) {
            guard let entry else { setSlot(id, .none); continue }
            let line = HostsFileLayout.slotBytes(entry, live: true)
            setSlot(id, try Slot(at: bytes.count, capacity: line.count))
            bytes += line
        }
        free = []
        unclaimed = [:]
        try writing { try file.replaceContent(bytes) }
        needsRebuild = false
        pendingOldLines = []
        size = bytes.count
        bytesWritten += bytes.count
    }

    private func add(_ id: LineID, _ entry: HostsEntry, _ editor: InPlaceFile.Editor) throws {
        var line = HostsFileLayout.slotBytes(entry, live: false)
        var slot = try Slot(at: size, capacity: line.count)
        let reused = free.firstIndex { Int($0.capacity) >= line.count }
        if let reused {
            slot = free[reused]
            // Pad to the free slot's size so the slot keeps its exact extent.
            line = HostsFileLayout.padded(line, to: Int(slot.capacity))
        }
        // 1) the line, still commented out; 2) its first byte: live.
        try editor.write(line, at: Int(slot.offset))
        try editor.write([entry.firstByte], at: Int(slot.offset))
        bytesWritten += line.count + 1
        if let reused { free.remove(at: reused) } else { size = slot.end }
        setSlot(id, slot)
    }

    /// Frees `slot` (`#` over its first byte); free slots at the end are cut off rather than
    /// kept.
    private func release(_ slot: Slot, _ editor: InPlaceFile.Editor) throws {
        guard slot.end == size else {
            // 1) `#`: the line is dead at once for every reader; 2) spaces over the rest (a
            // reader in between sees a comment, never a torn live line).
            try editor.write([UInt8(ascii: "#")], at: Int(slot.offset))
            try editor.write([UInt8](repeating: UInt8(ascii: " "), count: Int(slot.capacity) - 2), at: Int(slot.offset) + 1)
            bytesWritten += Int(slot.capacity) - 1
            let at = free.firstIndex { $0.offset > slot.offset } ?? free.endIndex
            free.insert(slot, at: at)
            return
        }
        var newSize = Int(slot.offset)
        var cut = free.endIndex
        while cut > free.startIndex, free[cut - 1].end == newSize {
            cut -= 1
            newSize = Int(free[cut].offset)
        }
        try editor.truncate(to: newSize)
        free.removeSubrange(cut...)
        size = newSize
    }
}
