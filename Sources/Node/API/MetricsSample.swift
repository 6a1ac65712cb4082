import Foundation
import Resolver

/// What the metrics read at each scrape: the responder's counters (summed from the serving
/// loop's own counters, never touched per query by anything else) and the daemon's state.
public struct MetricsSample: Sendable {
    public var dns: [(path: DNSCounters.Path, rcode: Int, count: UInt64)] = []
    /// Per network: endpoints on this host and on others.
    public var endpoints: [String: (local: Int, remote: Int)]? = nil
    public var sandboxes: Int? = nil
    public var storeUp: Bool? = nil
    public var watchRevision: Int64? = nil
    public var lastStoreEvent: Date? = nil
    public var hostsFileWrites: Int? = nil
    public var hostsFileRepairs: Int? = nil
    public var peerProgrammingErrors: Int? = nil
    /// Store changes the watch delivered (every watched range).
    public var storeEvents: Int? = nil
    /// Networks whose endpoints this host watches (those something here is on).
    public var watchedNetworks: Int? = nil
    /// Sandboxes withdrawn here whose withdrawal the store has not taken yet.
    public var pendingWithdrawals: Int? = nil

    public init(dns: [(path: DNSCounters.Path, rcode: Int, count: UInt64)] = []) { self.dns = dns }
}

