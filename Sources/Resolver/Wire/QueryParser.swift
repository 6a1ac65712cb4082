/// Parses incoming queries without allocating: one parser per serving thread, its scratch
/// buffers reused for every packet.
public final class QueryParser {
    /// What a packet turned out to be.
    public enum Outcome {
        /// A well-formed standard query with one question.
        case query(Query)
        /// The header is readable but the rest is not, or the request is one dnsd does not do:
        /// answer with just a header carrying this code (FORMERR, NOTIMP).
        case headerOnly(id: UInt16, flags: UInt16, code: ResponseCode)
        /// Unreadable (shorter than a header) or itself a response: never answer it.
        case drop
    }

    private let nameBuffer: UnsafeMutableRawBufferPointer
    private let labelOffsets: UnsafeMutablePointer<UInt8>

    public init() {
        nameBuffer = .allocate(byteCount: 256, alignment: 8)
        labelOffsets = .allocate(capacity: 128)
    }

    deinit {
        nameBuffer.deallocate()
        labelOffsets.deallocate()
    }

    public func parse(_ packet: UnsafeRawBufferPointer) -> Outcome {
        guard packet.count >= HeaderBits.headerSize else { return .drop }
        let id = packet.loadBigEndianUInt16(at: 0)
        let flags = packet.loadBigEndianUInt16(at: 2)
        guard flags & HeaderBits.response == 0 else { return .drop }
        if flags & HeaderBits.opcodeMask != 0 { return .headerOnly(id: id, flags: flags, code: .notImplemented) }
        let questions = packet.loadBigEndianUInt16(at: 4)
        let answers = Int(packet.loadBigEndianUInt16(at: 6))
        let authorities = Int(packet.loadBigEndianUInt16(at: 8))
        let additionals = Int(packet.loadBigEndianUInt16(at: 10))
        let formerr = Outcome.headerOnly(id: id, flags: flags, code: .formatError)
        guard questions == 1 else { return formerr }

        let decoded: (end: Int, length: Int, labels: Int)
        do {
            decoded = try WireName.decode(
                packet, at: HeaderBits.headerSize, minimumPointer: HeaderBits.headerSize,
                into: nameBuffer, labelOffsets: labelOffsets)
        } catch { return formerr }
        var pos = decoded.end
        guard pos + 4 <= packet.count else { return formerr }
        let type = RecordType(rawValue: packet.loadBigEndianUInt16(at: pos))
        let recordClass = RecordClass(rawValue: packet.loadBigEndianUInt16(at: pos + 2))
        pos += 4
        let questionEnd = pos

        // Queries normally carry nothing in the answer and authority sections; skip what is there.
        for _ in 0..<(answers + authorities) {
            guard let next = Self.skipRecord(packet, at: pos) else { return formerr }
            pos = next.end
        }
        var edns: EDNS?
        for _ in 0..<additionals {
            guard let record = Self.skipRecord(packet, at: pos) else { return formerr }
            if record.type == .opt {
                // One OPT at most, owned by the root name (RFC 6891 §6.1.1).
                guard edns == nil, packet[pos] == 0 else { return formerr }
                edns = EDNS(
                    udpPayloadSize: Int(record.recordClass),
                    version: UInt8(truncatingIfNeeded: record.ttl >> 16),
                    dnssecOK: record.ttl & 0x8000 != 0)
            }
            pos = record.end
        }
        let name = QueryName(
            wire: UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(nameBuffer)[0..<decoded.length]),
            offsets: UnsafePointer(labelOffsets), labelCount: decoded.labels)
        return .query(Query(
            id: id, flags: flags, type: type, recordClass: recordClass,
            questionEnd: questionEnd, edns: edns, name: name))
    }

    /// Skips one resource record; nil if it runs past the packet.
    @inline(__always)
    private static func skipRecord(_ packet: UnsafeRawBufferPointer, at start: Int)
        -> (end: Int, type: RecordType, recordClass: UInt16, ttl: UInt32)?
    {
        guard let afterName = try? WireName.skip(packet, at: start), afterName + 10 <= packet.count else { return nil }
        let type = RecordType(rawValue: packet.loadBigEndianUInt16(at: afterName))
        let recordClass = packet.loadBigEndianUInt16(at: afterName + 2)
        let ttl = UInt32(packet.loadBigEndianUInt16(at: afterName + 4)) << 16
            | UInt32(packet.loadBigEndianUInt16(at: afterName + 6))
        let length = Int(packet.loadBigEndianUInt16(at: afterName + 8))
        let end = afterName + 10 + length
        guard end <= packet.count else { return nil }
        return (end, type, recordClass, ttl)
    }
}

extension UnsafeRawBufferPointer {
    @inline(__always)
    func loadBigEndianUInt16(at offset: Int) -> UInt16 {
        UInt16(self[offset]) << 8 | UInt16(self[offset + 1])
    }
}

extension UnsafeMutableRawBufferPointer {
    @inline(__always)
    func storeBigEndian(_ value: UInt16, at offset: Int) {
        self[offset] = UInt8(value >> 8)
        self[offset + 1] = UInt8(truncatingIfNeeded: value)
    }

    @inline(__always)
    func storeBigEndian(_ value: UInt32, at offset: Int) {
        self[offset] = UInt8(value >> 24)
        self[offset + 1] = UInt8(truncatingIfNeeded: value >> 16)
        self[offset + 2] = UInt8(truncatingIfNeeded: value >> 8)
        self[offset + 3] = UInt8(truncatingIfNeeded: value)
    }
}
