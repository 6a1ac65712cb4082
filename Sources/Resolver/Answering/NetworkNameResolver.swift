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
/// - A network's name itself (`net`, the zone apex) is answered here too: for a sandbox on it
///   the zone exists (its SOA for SOA and ANY, NODATA for any other type, NS included), for
///   the others it does not (NXDOMAIN); never forwarded.
/// - Every negative answer about a network's names (NXDOMAIN, NODATA) carries the zone's
///   synthesized SOA in the authority section, whose minimum is the record TTL: caches between
///   the client and dnsd (Docker's resolver, nscd, systemd-resolved) then keep a negative
///   answer no longer than a positive one (RFC 2308).
public struct NetworkNameResolver: QueryResolver {
    public let ttl: UInt32

    public init(ttl: UInt32) { self.ttl = ttl }

    public func resolve(_ request: inout Request) -> Resolution {
        let name = request.query.name
        let labels = name.labelCount
        guard labels >= 1 else { return .next }
        let zones = request.table.zones

        if labels >= 2, let zoneIndex = request.table.zone(named: name.label(labels - 1)) {
            let apex = ResponseWriter.Apex.at(name.labelPosition(labels - 1))
            guard labels == 2, request.attached.contains(zoneIndex),
                  let entry = zones[zoneIndex].names.find(name.label(0))
            else { return negative(.nameError, apex, &request) }
            request.startAuthoritative()
            write(zones[zoneIndex], entry, into: &request)
            if request.writer.answerCount == 0 { request.writer.appendSOA(apex: apex, ttl: ttl, inAnswer: false) }
            request.rotation &+= 1
            return .answered(.noError)
        }

        guard labels == 1 else { return .next }
        let key = name.label(0)
        var firstZone = -1
        for zoneIndex in request.attached {
            let zone = zones[zoneIndex]
            guard let entry = zone.names.find(key) else { continue }
            if firstZone < 0 {
                request.startAuthoritative()
                firstZone = zoneIndex
            }
            write(zone, entry, into: &request)
        }
        if firstZone >= 0 {
            if request.writer.answerCount == 0 {
                // NODATA for a short name: the SOA of the network it was found on.
                zones[firstZone].apexWire.withUnsafeBytes { request.writer.appendSOA(apex: .name($0), ttl: ttl, inAnswer: false) }
            }
            request.rotation &+= 1
            return .answered(.noError)
        }
        // A network's own name (the zone apex): it exists for a sandbox on it (SOA, or NODATA
        // for every other type) and not for the others; never forwarded.
        if let zoneIndex = request.table.zone(named: key) {
            let apex = ResponseWriter.Apex.at(name.labelPosition(0))
            guard request.attached.contains(zoneIndex) else { return negative(.nameError, apex, &request) }
            request.startAuthoritative()
            request.writer.appendSOA(apex: apex, ttl: ttl, inAnswer: request.query.type == .soa || request.query.type == .any)
            return .answered(.noError)
        }
        return .next
    }

    /// An authoritative negative answer carrying the zone's SOA (RFC 2308).
    @inline(__always)
    private func negative(_ code: ResponseCode, _ apex: ResponseWriter.Apex, _ request: inout Request) -> Resolution {
        request.startAuthoritative()
        request.writer.appendSOA(apex: apex, ttl: ttl, inAnswer: false)
        return .answered(code)
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
