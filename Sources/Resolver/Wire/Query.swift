/// The EDNS0 options of a query (RFC 6891): only what the answer depends on.
public struct EDNS: Sendable, Equatable {
    /// The largest UDP payload the client can take (values under 512 mean 512).
    public var udpPayloadSize: Int
    public var version: UInt8
    /// DNSSEC OK; dnsd signs nothing, so it is read and not echoed.
    public var dnssecOK: Bool
}

/// One parsed query: header fields, the single question, and EDNS.
///
/// The question name lives in the `QueryParser`'s scratch buffer, lower-cased and
/// decompressed; a `Query` is valid until that parser parses the next packet. The question's
/// bytes in the original packet (12..<questionEnd) are what an answer copies back verbatim,
/// keeping the client's spelling of the name (0x20 case randomisation survives).
public struct Query {
    public var id: UInt16
    /// Raw header flags as the client sent them.
    public var flags: UInt16
    public var type: RecordType
    public var recordClass: RecordClass
    /// End of the question section in the packet.
    public var questionEnd: Int
    public var edns: EDNS?
    public var name: QueryName

    public var recursionDesired: Bool { flags & HeaderBits.recursionDesired != 0 }

    /// The most bytes an answer to this query may have over UDP.
    public var udpLimit: Int {
        guard let edns else { return MessageSize.classicUDP }
        return min(max(edns.udpPayloadSize, MessageSize.classicUDP), MessageSize.advertisedUDP)
    }
}

/// The question name of a `Query`: lower-case labels in wire form, indexable by label.
public struct QueryName {
    let wire: UnsafeRawBufferPointer
    let offsets: UnsafePointer<UInt8>
    public let labelCount: Int

    /// Label `i` (0 is the leftmost) without its length byte.
    @inline(__always)
    public func label(_ i: Int) -> UnsafeRawBufferPointer {
        let offset = Int(offsets[i])
        let length = Int(wire[offset])
        return UnsafeRawBufferPointer(rebasing: wire[(offset + 1)..<(offset + 1 + length)])
    }

    /// Where label `i` (its length byte) sits in the query packet, and so in an answer that
    /// copies the question: a question name is never compressed, and starts at offset 12.
    @inline(__always)
    public func labelPosition(_ i: Int) -> Int { HeaderBits.headerSize + Int(offsets[i]) }

    /// The whole name in wire form, root byte included.
    public var wireBytes: UnsafeRawBufferPointer { wire }

    /// Dotted text, for logs and tests.
    public var text: String {
        if labelCount == 0 { return "." }
        return (0..<labelCount).map { String(decoding: label($0), as: UTF8.self) }.joined(separator: ".")
    }
}
