/// First link: turns away what dnsd does not serve, before any lookup.
///
/// - Classes other than IN (CHAOS `version.bind` probes, HESIOD) get REFUSED.
/// - An EDNS version above 0 gets BADVERS, as RFC 6891 §6.1.3 requires.
/// - Zone transfers (AXFR, IXFR) get REFUSED: the records are the cluster's, not a zone to copy.
public struct ProtocolGuard: QueryResolver {
    public init() {}

    public func resolve(_ request: inout Request) -> Resolution {
        if let edns = request.query.edns, edns.version != 0 {
            request.writer.start(answering: request.query, from: request.packet, authoritative: false)
            return .answered(.badVersion)
        }
        if request.query.recordClass != .internet || request.query.type == .axfr || request.query.type == .ixfr {
            request.writer.start(answering: request.query, from: request.packet, authoritative: false)
            return .answered(.refused)
        }
        return .next
    }
}
