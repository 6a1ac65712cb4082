/// One link of the answer chain, CoreDNS-plugin style: it either answers the request (writing
/// into `request.writer`), passes it to the next link, or asks for it to be forwarded upstream.
public protocol QueryResolver: Sendable {
    func resolve(_ request: inout Request) -> Resolution
}

/// What a `QueryResolver` did with a request.
public enum Resolution: Equatable {
    /// The writer holds the answer; finish it with this code.
    case answered(ResponseCode)
    /// Not this resolver's business: try the next one.
    case next
    /// Send it to the upstream servers and relay their answer.
    case forward
}

/// Everything a resolver sees about one query, and the response being written.
public struct Request {
    public let query: Query
    /// The packet the query was parsed from (the question is copied from it).
    public let packet: UnsafeRawBufferPointer
    public let table: RecordTable
    public let sandbox: SandboxID
    /// The sandbox's networks, as indexes into `table.zones`.
    public let attached: [Int]
    public var writer: ResponseWriter
    /// Advances once per multi-address answer so repeated queries see a rotated order.
    public var rotation: UInt

    /// Starts the response as an answer from dnsd's own data.
    @inline(__always)
    public mutating func startAuthoritative() {
        writer.start(answering: query, from: packet, authoritative: true)
    }

    /// An authoritative "no such name".
    @inline(__always)
    public mutating func nameError() -> Resolution {
        startAuthoritative()
        return .answered(.nameError)
    }
}
