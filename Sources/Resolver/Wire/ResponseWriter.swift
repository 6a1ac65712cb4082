/// Builds one response in a caller-owned buffer: header, the query's question copied verbatim,
/// answer records whose owner name is a compression pointer to that question, and an OPT
/// record when the client sent one.
///
/// `limit` is the transport's bound (the client's UDP size, or 65535 over TCP). A record that
/// would cross it marks the writer overflowed; `finish` then sends the header and question with
/// TC set and no answers, so the client retries over TCP (RFC 2181 §9, RFC 7766).
public struct ResponseWriter {
    private let buffer: UnsafeMutableRawBufferPointer
    private let limit: Int
    private var position = 0
    private var questionEnd = 0
    private var answers: UInt16 = 0
    private var authorities: UInt16 = 0
    private var flags: UInt16 = 0
    private var withOPT = false
    public private(set) var overflowed = false

    /// Bytes of the OPT record dnsd appends: root name, type, class, TTL, empty rdata.
    static let optSize = 11
    private static let hostmaster: [UInt8] = Array("hostmaster".utf8)
    /// Compression pointer to the question name at offset 12.
    private static let questionPointer: UInt16 = 0xC00C

    public init(buffer: UnsafeMutableRawBufferPointer, limit: Int) {
        self.buffer = buffer
        self.limit = min(limit, buffer.count)
    }

    /// Starts an answer to `query` read from `packet`.
    public mutating func start(answering query: Query, from packet: UnsafeRawBufferPointer, authoritative: Bool) {
        flags = HeaderBits.response | HeaderBits.recursionAvailable
            | (query.flags & (HeaderBits.recursionDesired | HeaderBits.checkingDisabled))
        if authoritative { flags |= HeaderBits.authoritative }
        buffer.storeBigEndian(query.id, at: 0)
        buffer.storeBigEndian(UInt16(1), at: 4)
        let questionLength = query.questionEnd - HeaderBits.headerSize
        // The caller's buffer is at least 512 bytes and a question at most 259: always fits.
        UnsafeMutableRawBufferPointer(rebasing: buffer[HeaderBits.headerSize..<query.questionEnd])
            .copyMemory(from: UnsafeRawBufferPointer(rebasing: packet[HeaderBits.headerSize..<query.questionEnd]))
        position = HeaderBits.headerSize + questionLength
        questionEnd = position
        answers = 0
        authorities = 0
        overflowed = false
        withOPT = query.edns != nil
    }

    /// Records in the answer section so far.
    public var answerCount: UInt16 { answers }

    /// Where a zone's apex name comes from for `appendSOA`.
    public enum Apex {
        /// At this offset in the message (a label of the copied question).
        case at(Int)
        /// Not in the message: written out (wire form, root byte included).
        case name(UnsafeRawBufferPointer)
    }

    /// The synthesized SOA of a network's zone (RFC 2308: what a negative answer carries so
    /// caches know how long to keep it): `net. SOA net. hostmaster.net. 1 3600 600 86400 ttl`,
    /// in the answer section (a SOA query) or the authority section (NXDOMAIN, NODATA). Must
    /// come after every answer record.
    public mutating func appendSOA(apex: Apex, ttl: UInt32, inAnswer: Bool) {
        let ownerLength: Int
        switch apex {
        case .at: ownerLength = 2
        case .name(let wire): ownerLength = wire.count
        }
        // owner + type/class/ttl/length + MNAME pointer + RNAME ("hostmaster" + pointer) + 5 numbers
        let rdataLength = 2 + 1 + 10 + 2 + 20
        guard reserve(ownerLength + 10 + rdataLength) else { return }
        let target: Int
        switch apex {
        case .at(let offset):
            target = offset
            buffer.storeBigEndian(UInt16(0xC000 | offset), at: position)
        case .name(let wire):
            target = position
            UnsafeMutableRawBufferPointer(rebasing: buffer[position..<(position + wire.count)]).copyMemory(from: wire)
        }
        position += ownerLength
        buffer.storeBigEndian(RecordType.soa.rawValue, at: position)
        buffer.storeBigEndian(RecordClass.internet.rawValue, at: position + 2)
        buffer.storeBigEndian(ttl, at: position + 4)
        buffer.storeBigEndian(UInt16(rdataLength), at: position + 8)
        position += 10
        let pointer = UInt16(0xC000 | target)
        buffer.storeBigEndian(pointer, at: position)
        buffer[position + 2] = 10
        for i in 0..<10 { buffer[position + 3 + i] = Self.hostmaster[i] }
        buffer.storeBigEndian(pointer, at: position + 13)
        position += 15
        // serial, refresh, retry, expire, minimum (the negative-caching TTL: the record TTL)
        buffer.storeBigEndian(UInt32(1), at: position)
        buffer.storeBigEndian(UInt32(3600), at: position + 4)
        buffer.storeBigEndian(UInt32(600), at: position + 8)
        buffer.storeBigEndian(UInt32(86400), at: position + 12)
        buffer.storeBigEndian(ttl, at: position + 16)
        position += 20
        if inAnswer { answers += 1 } else { authorities += 1 }
    }

    @inline(__always)
    private mutating func reserve(_ bytes: Int) -> Bool {
        if overflowed { return false }
        if position + bytes + (withOPT ? Self.optSize : 0) > limit {
            overflowed = true
            return false
        }
        return true
    }

    @inline(__always)
    private mutating func recordHeader(type: RecordType, ttl: UInt32, dataLength: Int) {
        buffer.storeBigEndian(Self.questionPointer, at: position)
        buffer.storeBigEndian(type.rawValue, at: position + 2)
        buffer.storeBigEndian(RecordClass.internet.rawValue, at: position + 4)
        buffer.storeBigEndian(ttl, at: position + 6)
        buffer.storeBigEndian(UInt16(dataLength), at: position + 10)
        position += 12
    }

    public mutating func appendA(_ address: UInt32, ttl: UInt32) {
        guard reserve(16) else { return }
        recordHeader(type: .a, ttl: ttl, dataLength: 4)
        buffer.storeBigEndian(address, at: position)
        position += 4
        answers += 1
    }

    public mutating func appendAAAA(high: UInt64, low: UInt64, ttl: UInt32) {
        guard reserve(28) else { return }
        recordHeader(type: .aaaa, ttl: ttl, dataLength: 16)
        buffer.storeBigEndian(UInt32(high >> 32), at: position)
        buffer.storeBigEndian(UInt32(truncatingIfNeeded: high), at: position + 4)
        buffer.storeBigEndian(UInt32(low >> 32), at: position + 8)
        buffer.storeBigEndian(UInt32(truncatingIfNeeded: low), at: position + 12)
        position += 16
        answers += 1
    }

    /// A PTR record whose target is `target` in uncompressed wire form.
    public mutating func appendPTR(target: UnsafeRawBufferPointer, ttl: UInt32) {
        guard reserve(12 + target.count) else { return }
        recordHeader(type: .ptr, ttl: ttl, dataLength: target.count)
        UnsafeMutableRawBufferPointer(rebasing: buffer[position..<(position + target.count)]).copyMemory(from: target)
        position += target.count
        answers += 1
    }

    /// Writes the counts, the flags with `code`, and the OPT record; returns the message length.
    public mutating func finish(code: ResponseCode) -> Int {
        if overflowed {
            position = questionEnd
            answers = 0
            authorities = 0
            flags |= HeaderBits.truncated
        }
        buffer.storeBigEndian(flags | (code.rawValue & 0x0F), at: 2)
        buffer.storeBigEndian(answers, at: 6)
        buffer.storeBigEndian(authorities, at: 8)
        buffer.storeBigEndian(UInt16(withOPT ? 1 : 0), at: 10)
        if withOPT {
            buffer[position] = 0
            buffer.storeBigEndian(RecordType.opt.rawValue, at: position + 1)
            buffer.storeBigEndian(UInt16(MessageSize.advertisedUDP), at: position + 3)
            buffer[position + 5] = UInt8(truncatingIfNeeded: code.rawValue >> 4)  // extended RCODE
            buffer[position + 6] = 0  // version
            buffer.storeBigEndian(UInt16(0), at: position + 7)  // flags (DO clear: nothing is signed)
            buffer.storeBigEndian(UInt16(0), at: position + 9)  // no options
            position += Self.optSize
        }
        return position
    }

    /// A bare header answering a packet whose question could not be used (FORMERR, NOTIMP).
    public static func headerOnly(
        into buffer: UnsafeMutableRawBufferPointer, id: UInt16, requestFlags: UInt16, code: ResponseCode
    ) -> Int {
        let flags = HeaderBits.response | HeaderBits.recursionAvailable
            | (requestFlags & (HeaderBits.opcodeMask | HeaderBits.recursionDesired)) | (code.rawValue & 0x0F)
        buffer.storeBigEndian(id, at: 0)
        buffer.storeBigEndian(flags, at: 2)
        for offset in stride(from: 4, to: 12, by: 2) { buffer.storeBigEndian(UInt16(0), at: offset) }
        return HeaderBits.headerSize
    }
}
