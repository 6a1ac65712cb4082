/// Reading domain names off the wire (RFC 1035 §3.1, §4.1.4), into a caller's buffer.
///
/// The decoder lower-cases as it copies, follows compression pointers only backwards (each
/// pointer must land before the start of the segment that contains it, so a loop is impossible
/// and a chain ends after at most a few jumps), and refuses names longer than 255 bytes.
enum WireName {
    enum Failure: Error { case truncated, badPointer, badLabelType, tooLong }

    /// Decodes the name at `start` into `out` (wire form: length-prefixed lower-case labels,
    /// ending with the root's zero byte) and records each label's offset in `labelOffsets`.
    /// Returns the position just past the name in `packet`, the length written and the label count.
    @inline(__always)
    static func decode(
        _ packet: UnsafeRawBufferPointer, at start: Int, minimumPointer: Int,
        into out: UnsafeMutableRawBufferPointer, labelOffsets: UnsafeMutablePointer<UInt8>
    ) throws(Failure) -> (end: Int, length: Int, labels: Int) {
        var pos = start
        var segmentStart = start
        var end = -1
        var written = 0
        var labels = 0
        while true {
            guard pos < packet.count else { throw .truncated }
            let length = Int(packet[pos])
            switch length & 0xC0 {
            case 0xC0:
                guard pos + 1 < packet.count else { throw .truncated }
                let target = (length & 0x3F) << 8 | Int(packet[pos + 1])
                guard target < segmentStart, target >= minimumPointer else { throw .badPointer }
                if end < 0 { end = pos + 2 }
                pos = target
                segmentStart = target
            case 0x00:
                if length == 0 {
                    guard written + 1 <= 255 else { throw .tooLong }
                    out[written] = 0
                    written += 1
                    return (end < 0 ? pos + 1 : end, written, labels)
                }
                guard pos + 1 + length <= packet.count else { throw .truncated }
                guard written + 1 + length + 1 <= 255 else { throw .tooLong }
                labelOffsets[labels] = UInt8(written)
                labels += 1
                out[written] = UInt8(length)
                for i in 0..<length {
                    let c = packet[pos + 1 + i]
                    out[written + 1 + i] = (c >= 0x41 && c <= 0x5A) ? c | 0x20 : c
                }
                written += 1 + length
                pos += 1 + length
            default:
                // 0x40 and 0x80 prefixes (extended label types) are obsolete.
                throw .badLabelType
            }
        }
    }

    /// Skips the name at `start` without copying; returns the position just past it.
    static func skip(_ packet: UnsafeRawBufferPointer, at start: Int) throws(Failure) -> Int {
        var pos = start
        var total = 0
        while true {
            guard pos < packet.count else { throw .truncated }
            let length = Int(packet[pos])
            switch length & 0xC0 {
            case 0xC0:
                guard pos + 1 < packet.count else { throw .truncated }
                return pos + 2
            case 0x00:
                if length == 0 { return pos + 1 }
                total += length + 1
                guard total < 255 else { throw .tooLong }
                pos += 1 + length
            default:
                throw .badLabelType
            }
        }
    }
}
