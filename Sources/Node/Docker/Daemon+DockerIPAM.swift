import Addressing
import ClusterState
import Foundation

/// Docker's remote IPAM driver calls: addresses of dnsd overlay networks (matched by subnet) come
/// from the cluster IPAM, so no two hosts hand out one.
extension Daemon {
    /// The dnsd network with `pool` as one of its subnets (an IPAM pool, "192.168.0.0/24" or
    /// "fd00:db8:1::/64").
    private func network(pool subnet: IPSubnet) throws -> NetworkRecord {
        let pool = subnet.description
        guard let record = try registry.networks().first(where: { Self.has($0, pool: subnet) }) else {
            throw NodeError.notFound("no dnsd network has subnet \(pool): create it first (docker network create -d dnsd --ipam-driver dnsd --subnet \(pool) NAME, or dnsd network create)")
        }
        guard record.driver == .overlay else { throw NodeError.invalid("dnsd network '\(record.name)' is a bridge network; Docker uses overlay networks") }
        return record
    }

    /// Whether `pool` is one of `record`'s subnets.
    static func has(_ record: NetworkRecord, pool: IPSubnet) -> Bool {
        ((try? record.families) ?? []).contains { $0.subnet == pool }
    }

    /// `IpamDriver.RequestAddress` (either family): the gateway (the network's, or the pool's
    /// first address while the network is being made), or an address claimed in the cluster IPAM
    /// for this host.
    func dockerRequestAddress(pool subnet: IPSubnet, requested: IPAddress?, gateway: Bool) throws -> String {
        if gateway {
            // While Docker makes the network, dnsd's may not exist yet: the pool's first
            // address. A store that does not answer is an error, not "no network".
            let existing = try registry.networks().first { Self.has($0, pool: subnet) }
            let address = (try existing?.family(subnet.family))?.gateway ?? requested ?? subnet.address(at: 1)
            return "\(address)/\(subnet.prefixLength)"
        }
        let record = try network(pool: subnet)
        let address = try registry.allocateAddress(on: record, family: subnet.family, requested: requested, host: configuration.hostID,
                                                   lease: try currentLease())
        docker.handedOut(address, on: try record.label)
        return "\(address)/\(subnet.prefixLength)"
    }

    /// `IpamDriver.ReleaseAddress`: this host's claim goes (the gateway is no claim). A store
    /// error is reported to Docker, never taken for success, and the release is retried here
    /// (Docker does not retry): a leaked claim would block `network rm` for good.
    func dockerReleaseAddress(pool: IPSubnet, address: IPAddress) throws {
        // The watched copy of the network first (no store request: a store that is away must
        // not keep the release from being queued); a network gone has no claims left to release.
        let record: NetworkRecord
        if let known = knownNetworks().first(where: { Self.has($0, pool: pool) && $0.driver == .overlay }) {
            record = known
        } else {
            do { record = try network(pool: pool) } catch NodeError.notFound { return }
        }
        guard address != (try record.family(address.family))?.gateway else { return }
        let label = try record.label
        do {
            try registry.releaseAddress(address, on: label, heldBy: configuration.hostID)
        } catch {
            docker.queueRelease(UnreleasedAddress(network: label, address: address))
            throw error
        }
    }

    /// One round of the queued releases: each claim goes once the store takes it, unless the
    /// address is this host's again meanwhile (handed out anew, or an endpoint has it): then the
    /// claim is that one's now and stays.
    public func dockerRetryReleases() {
        for (release, since) in docker.queuedReleases() {
            if docker.heldElsewhere(release.address, on: release.network.text, besides: nil, since: since) {
                docker.releaseDone(release)
                continue
            }
            do {
                try registry.releaseAddress(release.address, on: release.network, heldBy: configuration.hostID)
                docker.releaseDone(release)
                logger.info("address released after the store came back", metadata: ["network": "\(release.network)", "address": "\(release.address)"])
            } catch {
                logger.debug("address release still waiting on the store: \(error)")
                return
            }
        }
    }
}
