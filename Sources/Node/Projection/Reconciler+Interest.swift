import Addressing
import ClusterState
import Foundation
import Store

/// The revisions a network's listings reflected: its endpoints' and its address claims'.
struct ListedRevisions: Sendable, Equatable {
    var endpoints: Int64
    var claims: Int64
}

/// One network's endpoints and address claims, as listed.
struct NetworkListing {
    var endpoints: [EndpointState]
    var claims: Set<IPAddress>
    var revisions: ListedRevisions
}

/// Per-network interest: the networks whose endpoints and claims this host watches are those
/// something here is on. A command attaching to a network joins it first (`using`: listed, then
/// watched from the listing's revision, before an address is picked from the claims or a hosts
/// file is written from the endpoints); a network nothing here has been on for a few rounds is
/// dropped (its ranges leave the watch, its records this host's projections). Joins of
/// different networks run at once, those of one network one after another; leaves and
/// (re)starts take the whole gate (`InterestGate`); none of them holds `lock` across the store.
extension Reconciler {
    /// Rounds (seconds) a watched network must be found unused in a row before it is dropped: a
    /// command between its claim and its sandbox's record, a container restarting, keep it.
    static let idleRoundsBeforeLeaving = 2

    /// The networks whose endpoints are watched here.
    func watchedNetworks() -> Set<String> { lock.withLock { Set(interest.keys) } }

    /// Runs `body` with `network`'s endpoints and claims watched here (listed first, if they were
    /// not); it stays watched while `body` runs, and after it while something here is on it.
    func using<T>(_ network: String, _ body: () throws -> T) throws -> T {
        try join(network)
        defer { releaseHold(network) }
        return try body()
    }

    private func join(_ network: String) throws {
        let ready = lock.withLock { () -> Bool in
            holds[network, default: 0] += 1
            // Before the first start, the start lists what is held.
            return interest[network] != nil || !started
        }
        if ready { return }
        do {
            try interestGate.shared {
                try interestGate.joining.run(network) {
                    guard lock.withLock({ interest[network] == nil && started }) else { return }
                    watchNetworks([network: try list(network)])
                }
            }
        } catch {
            releaseHold(network)
            throw error
        }
    }

    private func releaseHold(_ network: String) {
        lock.withLock {
            holds[network, default: 1] -= 1
            if holds[network] == 0 { holds[network] = nil }
        }
    }

    /// One network's endpoints and claims from the store.
    func list(_ network: String) throws -> NetworkListing {
        let (endpoints, endpointsRevision) = try registry.endpoints(on: network)
        let (claims, claimsRevision) = try registry.addressClaims(on: network)
        return NetworkListing(endpoints: endpoints, claims: claims,
                              revisions: ListedRevisions(endpoints: endpointsRevision, claims: claimsRevision))
    }

    /// One round (every second): networks something here is on but not watched are joined (a
    /// sandbox recovered while the store was away, a join that failed); watched ones nothing
    /// here has been on for `idleRoundsBeforeLeaving` rounds are dropped. A round never waits
    /// behind a join: it tries again next time.
    func settleInterest() throws {
        let used = inUse()
        _ = try interestGate.tryExclusive {
            let (missing, leaving) = lock.withLock { () -> ([String], [String]) in
                guard started, !stopped else { return ([], []) }
                let wanted = used.union(holds.keys)
                var leaving: [String] = []
                for name in interest.keys.sorted() {
                    if wanted.contains(name) {
                        idleRounds[name] = nil
                        continue
                    }
                    idleRounds[name, default: 0] += 1
                    if idleRounds[name, default: 0] >= Self.idleRoundsBeforeLeaving { leaving.append(name) }
                }
                return (wanted.filter { interest[$0] == nil }.sorted(), leaving)
            }
            if !leaving.isEmpty { unwatch(leaving) }
            if !missing.isEmpty {
                var listings: [String: NetworkListing] = [:]
                for name in missing { listings[name] = try list(name) }
                watchNetworks(listings)
            }
        }
    }

    /// In a turn: takes in the listings of networks not watched yet (their endpoints as a
    /// difference from what is applied) and adds their ranges to the watch, each from the
    /// revision after its listing. A network watched meanwhile keeps what it has.
    private func watchNetworks(_ candidates: [String: NetworkListing]) {
        let (listings, watch) = lock.withLock { () -> ([String: NetworkListing], (any RangeWatch)?) in
            let listings = candidates.filter { interest[$0.key] == nil }
            for (name, listing) in listings.sorted(by: { $0.key < $1.key }) {
                interest[name] = listing.revisions
                claims[name] = listing.claims
                idleRounds[name] = nil
                let byKey = Dictionary(listing.endpoints.map { (key($0), $0) }, uniquingKeysWith: { first, _ in first })
                apply(removing: applied.values.filter { $0.network == name && byKey[key($0)] == nil },
                      putting: listing.endpoints.filter { applied[key($0)] != $0 }, filesInline: true)
            }
            return (listings, self.watch)
        }
        if let watch {
            for (name, listing) in listings { watchRanges(of: name, listing, on: watch) }
        }
        if !listings.isEmpty {
            logger.debug("watching networks", metadata: ["networks": "\(listings.keys.sorted().joined(separator: ","))"])
        }
    }

    /// Adds `network`'s two ranges to `watch`, each from the revision after its listing, with the
    /// keys that listing had (a store without history to replay reports those gone since).
    func watchRanges(of network: String, _ listing: NetworkListing, on watch: any RangeWatch) {
        watch.add(prefix: Keys.networkEndpoints(network), from: listing.revisions.endpoints + 1,
                  listed: Set(listing.endpoints.map { Keys.networkEndpoints(network) + $0.id }))
        watch.add(prefix: Keys.ipam(network), from: listing.revisions.claims + 1,
                  listed: Set(listing.claims.map { Keys.ipam(network) + $0.description }))
    }

    /// In the turn: drops networks nothing here is on: their records leave DNS, hosts files and
    /// the peer tables here (quietly: nothing left the cluster), then their ranges the watch.
    private func unwatch(_ candidates: [String]) {
        let (names, watch) = lock.withLock { () -> ([String], (any RangeWatch)?) in
            // A command that joined since the round decided (it found the network watched and
            // took a hold) keeps it.
            let names = candidates.filter { holds[$0] == nil }
            for name in names {
                interest[name] = nil
                claims[name] = nil
                idleRounds[name] = nil
                apply(removing: applied.values.filter { $0.network == name }, putting: [], announce: false)
            }
            return (names, self.watch)
        }
        guard !names.isEmpty else { return }
        for name in names {
            watch?.remove(prefix: Keys.networkEndpoints(name))
            watch?.remove(prefix: Keys.ipam(name))
        }
        logger.debug("no longer watching networks", metadata: ["networks": "\(names.joined(separator: ","))"])
    }
}
