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
    private var flags: UInt16 = 0
    private var withOPT = false
    public private(set) var overflowed = false

    /// Bytes of the OPT record dnsd appends: root name, type, class, TTL, empty rdata.
    static let optSize = 11
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
        overflowed = false
        withOPT = query.edns != nil
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
            flags |= HeaderBits.truncated
        }
        buffer.storeBigEndian(flags | (code.rawValue & 0x0F), at: 2)
        buffer.storeBigEndian(answers, at: 6)
        buffer.storeBigEndian(UInt16(0), at: 8)
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
