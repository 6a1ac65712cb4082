/// The text of a hosts file dnsd manages, and nothing of its state: the user's lines, dnsd's
/// marker, the standard lines, then one slot per line of dnsd's (the line padded with at least
/// one space to a multiple of 16 bytes; `#` and spaces when free).
///
/// The padding is what tells dnsd's lines from a user's anywhere after the marker: a slot's
/// line (newline included) is a multiple of 16 bytes long and ends in a space; a line a user
/// appends (`echo "10.1.2.3 db" >> /etc/hosts`, a file whose last line has no newline) is not,
/// and is kept as theirs, also by a daemon that was not running when it was added.
enum HostsFileLayout {
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

    /// Everything before the first slot.
    static func header(userLines: [String]) -> [UInt8] {
        Array((userLines.map { $0 + "\n" }.joined() + marker + "\n" + standardLines.map { $0 + "\n" }.joined()).utf8)
    }

    /// `entry`'s line + at least one space to the slot alignment + newline; the first byte `#`
    /// unless `live`.
    static func slotBytes(_ entry: HostsEntry, live: Bool) -> [UInt8] {
        var bytes = Array(entry.line.utf8)
        if !live { bytes[0] = UInt8(ascii: "#") }
        let length = (bytes.count + 2 + slotAlignment - 1) / slotAlignment * slotAlignment
        return padded(bytes + [UInt8(ascii: "\n")], to: length)
    }

    /// Whether `line` (without its newline) has the shape of one of dnsd's slots.
    static func isSlot(_ line: Substring) -> Bool {
        (line.utf8.count + 1) % slotAlignment == 0 && line.utf8.last == UInt8(ascii: " ")
    }

    /// `line` (ending in a newline) widened to `length` with spaces before its newline.
    static func padded(_ line: [UInt8], to length: Int) -> [UInt8] {
        guard line.count < length else { return line }
        return Array(line.dropLast()) + [UInt8](repeating: UInt8(ascii: " "), count: length - line.count) + [UInt8(ascii: "\n")]
    }

    /// A file laid out by dnsd, read back: its user's lines (before the marker, and any line
    /// after it that is not slot-shaped, which stays where it is), its slots (offset, length
    /// with the newline, and the live line without its padding, nil when free) and its size.
    struct Parsed {
        var userLines: [String]
        var slots: [(offset: Int, length: Int, live: String?)]
        var size: Int
    }

    /// `text` read as dnsd's layout (marker, standard lines, slots, a final newline); nil for
    /// any other layout, and for a file whose last line lacks its newline (a slot written after
    /// it would join it).
    static func parse(_ text: String) -> Parsed? {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard lines.last == "" else { return nil }
        lines.removeLast()
        guard let markerIndex = lines.firstIndex(of: marker),
              Array(lines.dropFirst(markerIndex + 1).prefix(standardLines.count)) == standardLines
        else { return nil }
        var offset = lines[...(markerIndex + standardLines.count)].reduce(0) { $0 + $1.utf8.count + 1 }
        var slots: [(offset: Int, length: Int, live: String?)] = []
        var appended: [String] = []
        for line in lines.dropFirst(markerIndex + 1 + standardLines.count) {
            defer { offset += line.utf8.count + 1 }
            guard isSlot(Substring(line)) else {
                appended.append(line)
                continue
            }
            var live: String?
            if !line.hasPrefix("#") {
                var trimmed = Substring(line)
                while trimmed.last == " " { trimmed.removeLast() }
                guard !trimmed.isEmpty else { return nil }
                live = String(trimmed)
            }
            slots.append((offset, line.utf8.count + 1, live))
        }
        return Parsed(userLines: Array(lines[..<markerIndex]) + appended, slots: slots, size: offset)
    }

    /// The user's lines of `text`: everything before dnsd's marker, and anything after it that
    /// is neither a standard line, a free slot, nor one of dnsd's entries (a line the user
    /// appended at the end is kept, and moves above the marker).
    /// `ours` nil means: the file is from an earlier run, whose entries are unknown: every
    /// slot-shaped line after the marker is dnsd's, every other one the user's.
    static func userLines(of text: String, ours: [HostsEntry]?, alsoLines: [String] = []) -> [String] {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.last == "" { lines.removeLast() }
        guard let markerIndex = lines.firstIndex(of: marker) else { return lines }
        guard let ours else {
            let standard = Set(standardLines)
            return Array(lines[..<markerIndex])
                + lines[(markerIndex + 1)...].filter { !isSlot(Substring($0)) && !standard.contains($0) && !$0.isEmpty }
        }
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
