/// Last link: whatever nobody answered goes to the upstream servers. With no upstream
/// configured there is nowhere to ask, which is a server failure, not a "no such name".
public struct ForwardingResolver: QueryResolver {
    public let hasUpstreams: Bool

    public init(hasUpstreams: Bool) { self.hasUpstreams = hasUpstreams }

    public func resolve(_ request: inout Request) -> Resolution {
        guard hasUpstreams else {
            request.writer.start(answering: request.query, from: request.packet, authoritative: false)
            return .answered(.serverFailure)
        }
        return .forward
    }
}
