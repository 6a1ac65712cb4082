import CShim

/// What the responder answered, by how and by response code: counters written only by the
/// serving loop's thread (a relaxed store, no lock and no read-modify-write per query) and read
/// by whoever scrapes them (`snapshot`). Forwarded queries also report each answer's latency and
/// each failed try to an optional `ForwardObserver` (the slow path, off the local answers).
public final class DNSCounters: @unchecked Sendable {
    /// How an answer was made.
    public enum Path: Int, CaseIterable, Sendable {
        /// From dnsd's own records (NOERROR, NXDOMAIN, NODATA).
        case local
        /// Relayed from an upstream (or SERVFAIL when every upstream failed).
        case forwarded
        /// Refused by the protocol guard (FORMERR, NOTIMP, REFUSED).
        case refused

        public var label: String { ["local", "forwarded", "refused"][rawValue] }
    }

    private let counts = UnsafeMutablePointer<UInt64>.allocate(capacity: Path.allCases.count * 16)

    public init() { counts.initialize(repeating: 0, count: Path.allCases.count * 16) }

    deinit { counts.deallocate() }

    @inline(__always)
    func count(_ path: Path, rcode: UInt8) {
        dnsd_counter_add(counts + path.rawValue * 16 + Int(rcode & 0x0F), 1)
    }

    /// A reply the chain wrote: local, or refused when its code says the query was refused.
    @inline(__always)
    func countReply(_ output: UnsafeMutableRawBufferPointer, length: Int) {
        guard length >= 4 else { return }
        let rcode = output[3] & 0x0F
        count(rcode == 1 || rcode == 4 || rcode == 5 ? .refused : .local, rcode: rcode)
    }

    /// Every non-zero count: path, response code, count.
    public func snapshot() -> [(path: Path, rcode: Int, count: UInt64)] {
        var result: [(Path, Int, UInt64)] = []
        for path in Path.allCases {
            for rcode in 0..<16 {
                let value = dnsd_counter_read(counts + path.rawValue * 16 + rcode)
                if value > 0 { result.append((path, rcode, value)) }
            }
        }
        return result
    }
}

/// Told of each forwarded answer and each failed try (on the serving loop's thread: keep it cheap).
public protocol ForwardObserver: AnyObject, Sendable {
    /// An upstream answered after `nanoseconds`.
    func answered(by upstream: SocketAddress, afterNanoseconds nanoseconds: UInt64)
    /// A try to `upstream` failed (timed out, refused, or could not be sent).
    func failed(upstream: SocketAddress)
}
