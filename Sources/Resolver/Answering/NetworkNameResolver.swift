/// Answers `name`, `name.net`, `alias` and `alias.net` from the zones of the networks the
/// asking sandbox is attached to.
///
/// - `x.net` where `net` is a network of the cluster is always answered here and never
///   forwarded: from the zone when the sandbox is attached to `net`, NXDOMAIN otherwise, so
///   neither a name on another network nor an internal name ever leaks out of the host.
///   Deeper names under `net` (`a.b.net`) do not exist: NXDOMAIN.
/// - A single label is looked up on every attached network, in attachment order; not found,
///   it falls through to forwarding (it may be a name the upstream knows).
/// - A name that exists but has no address of the asked type is NODATA (NOERROR, no answer),
///   never NXDOMAIN: musl and glibc take NXDOMAIN for AAAA to mean the name does not exist at
///   all, and would drop the A answer they got for the same name.
public struct NetworkNameResolver: QueryResolver {
    public let ttl: UInt32

    public init(ttl: UInt32) { self.ttl = ttl }

    public func resolve(_ request: inout Request) -> Resolution {
        let name = request.query.name
        let labels = name.labelCount
        guard labels >= 1 else { return .next }
        let zones = request.table.zones

        if labels >= 2, let zoneIndex = request.table.zone(named: name.label(labels - 1)) {
            guard labels == 2, request.attached.contains(zoneIndex),
                  let entry = zones[zoneIndex].names.find(name.label(0))
            else { return request.nameError() }
            request.startAuthoritative()
            write(zones[zoneIndex], entry, into: &request)
            request.rotation &+= 1
            return .answered(.noError)
        }

        guard labels == 1 else { return .next }
        let key = name.label(0)
        var found = false
        for zoneIndex in request.attached {
            let zone = zones[zoneIndex]
            guard let entry = zone.names.find(key) else { continue }
            if !found {
                request.startAuthoritative()
                found = true
            }
            write(zone, entry, into: &request)
        }
        guard found else { return .next }
        request.rotation &+= 1
        return .answered(.noError)
    }

    @inline(__always)
    private func write(_ zone: NetworkZone, _ index: Int32, into request: inout Request) {
        let entry = zone.entries[Int(index)]
        let type = request.query.type
        if type == .a || type == .any, entry.v4Count > 0 {
            let count = Int(entry.v4Count)
            let start = Int(entry.v4Start)
            let first = Int(request.rotation % UInt(count))
            for i in 0..<count {
                request.writer.appendA(zone.v4Pool[start + (first + i) % count], ttl: ttl)
            }
        }
        if type == .aaaa || type == .any, entry.v6Count > 0 {
            let count = Int(entry.v6Count)
            let start = Int(entry.v6Start)
            let first = Int(request.rotation % UInt(count))
            for i in 0..<count {
                let address = zone.v6Pool[start + (first + i) % count]
                request.writer.appendAAAA(high: address.high, low: address.low, ttl: ttl)
            }
        }
    }
}
