/// Runs packets through the resolver chain. One per serving thread: it owns the parser's
/// scratch space and the rotation counter, and allocates nothing per query.
public final class Responder {
    /// What to do with one packet.
    public enum Outcome {
        /// Send the first `length` bytes of the output buffer back.
        case reply(length: Int)
        /// Forward the packet upstream; relay the answer with the client's ID.
        case forward(Query)
        /// Say nothing (unreadable packet or a response).
        case drop
    }

    private let parser = QueryParser()
    private let chain: [any QueryResolver]
    private var rotation: UInt = 0

    public init(chain: [any QueryResolver]) {
        self.chain = chain
    }

    /// The standard chain: guard, names, reverse names, forwarding.
    public static func standard(ttl: UInt32, hasUpstreams: Bool) -> Responder {
        Responder(chain: [
            ProtocolGuard(),
            NetworkNameResolver(ttl: ttl),
            ReverseResolver(ttl: ttl),
            ForwardingResolver(hasUpstreams: hasUpstreams),
        ])
    }

    /// Answers `packet` from `sandbox` into `output`, within `limit` bytes (the transport's
    /// bound; over UDP the client's EDNS size further limits it).
    @inline(__always)
    public func respond(
        to packet: UnsafeRawBufferPointer, from sandbox: SandboxID, table: RecordTable,
        into output: UnsafeMutableRawBufferPointer, overUDP: Bool
    ) -> Outcome {
        switch parser.parse(packet) {
        case .drop:
            return .drop
        case .headerOnly(let id, let flags, let code):
            return .reply(length: ResponseWriter.headerOnly(into: output, id: id, requestFlags: flags, code: code))
        case .query(let query):
            let limit = overUDP ? query.udpLimit : MessageSize.tcp
            var request = Request(
                query: query, packet: packet, table: table, sandbox: sandbox,
                attached: table.attachedZones(sandbox),
                writer: ResponseWriter(buffer: output, limit: limit), rotation: rotation)
            for resolver in chain {
                switch resolver.resolve(&request) {
                case .next:
                    continue
                case .forward:
                    return .forward(query)
                case .answered(let code):
                    rotation = request.rotation
                    return .reply(length: request.writer.finish(code: code))
                }
            }
            // The chain always ends in ForwardingResolver; a chain without it refuses.
            request.writer.start(answering: query, from: packet, authoritative: false)
            return .reply(length: request.writer.finish(code: .refused))
        }
    }
}
