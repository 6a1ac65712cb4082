import Addressing
import ClusterState
import Foundation
import Netns
import OverlayNet

/// Docker endpoints whose container is gone although dockerd never said `Leave`: found by
/// dockerd's list of running containers (the sweep), or without dockerd, by the container's
/// namespace (the liveness check).
extension Daemon {
    /// After a resynchronisation with dockerd: this host's Docker endpoints that no running
    /// container has any more (stopped while dnsd or dockerd was away, dockerd restarted) are
    /// withdrawn, with their names and addresses, and their veths deleted; one dnsd learnt of
    /// less than `grace` ago is left alone (its container may be between Join and running).
    /// Then the store's records of this host's Docker endpoints that neither this table nor a
    /// running container has (from before a restart of dnsd) are withdrawn: a running one's is
    /// never, even if it is not taken back yet.
    public func dockerSweep(running: Set<String>, grace: TimeInterval = 10) {
        let now = Date()
        for (id, _) in docker.all() where !running.contains(id) {
            // One under way (a Leave waiting on the store) is that command's: the next round.
            _ = tryInDockerOrder(id) {
                guard let endpoint = docker[id], now.timeIntervalSince(endpoint.learnt) >= grace else { return }
                retireDocker(id, reason: "its container no longer runs", releasingAddress: true)
            }
        }
        // The store's view first, then this host's: an endpoint published between the two reads
        // is in the second, never taken for stale; a running container's record is not stale,
        // taken back or not yet.
        let known = reconciler.known().endpoints
        let taken = Set(docker.all().values.compactMap { $0.published?.id })
        let kept = taken.union(running.map(dockerRecordID))
        let stale = known.filter { $0.host == configuration.hostID && $0.runtime == "docker" && !kept.contains($0.id) }
        var judged = true
        for record in stale {
            judged = order.tryRun(keys: [record.name]) { withdrawStaleDockerRecord(record) } && judged
        }
        // Judged once each record from before is withdrawn or taken back: a running container's
        // not yet taken back keeps its network watched (its container may still die).
        let waiting = known.contains { $0.host == configuration.hostID && $0.runtime == "docker" && !taken.contains($0.id) && kept.contains($0.id) }
        if judged && !waiting { docker.recordNetworksJudged() }
    }

    /// The liveness check's subjects for Docker endpoints: each joined endpoint whose container's
    /// namespace (Join's SandboxKey) has been seen, by its identity. Docker makes the namespace
    /// just after `Join`: one seen for the first time is noted here and judged from then on. A
    /// SandboxKey that is not a namespace here (dockerd mounted it in a mount namespace of its
    /// own) gives no subject: the veth is the signal then (`dockerPortsVanished`).
    func dockerLivenessSubjects() -> [NamespaceLiveness.Subject] {
        docker.all().compactMap { id, endpoint in
            guard let path = endpoint.sandboxKey else { return nil }
            guard let inode = endpoint.namespaceInode else {
                // Judged from this round on: a container that dies a second after it started
                // has been seen with its process.
                guard let found = NamespaceIdentity.namespaceInodeIfPresent(atPath: path) else { return nil }
                docker.noteNamespace(id, path: path, inode: found)
                return .init(name: Self.dockerKey(id), path: path, inode: found, isContainer: true)
            }
            return .init(name: Self.dockerKey(id), path: path, inode: inode, isContainer: true)
        }
    }

    /// A Docker endpoint the liveness check found gone (its container's processes all exited, or
    /// its namespace is gone), also while dockerd does not answer: withdrawn as the sweep would,
    /// but its address is left to Docker's IPAM release, which dockerd sends when it cleans the
    /// container up. Nothing if the endpoint has joined another namespace since.
    func dockerVanished(_ subject: NamespaceLiveness.Subject, reason: String) {
        let id = String(subject.name.dropFirst(Self.dockerKey("").count))
        _ = tryInDockerOrder(id) {
            guard docker[id]?.namespaceInode == subject.inode else { return }
            retireDocker(id, reason: reason, releasingAddress: false)
        }
    }

    /// Each round of the liveness check: the Docker endpoints whose veth is gone from the
    /// overlay bridge (a veth goes with the namespace its other end is in: the container's died
    /// and nothing held it), withdrawn as `dockerVanished` does. Needs no dockerd.
    func dockerPortsVanished() {
        let joined = docker.all().filter { $0.value.bridgePort != nil }
        guard !joined.isEmpty else { return }
        // One link listing per network, not one lookup per endpoint.
        var ports: [String: Set<String>] = [:]
        for network in Set(joined.values.map(\.network.name)) {
            guard let label = try? HostLabel(network, what: "network"), let names = try? overlay.bridgePortNames(on: label) else { continue }
            ports[network] = names
        }
        for (id, endpoint) in joined {
            guard let port = endpoint.bridgePort, let present = ports[endpoint.network.name], !present.contains(port) else { continue }
            _ = tryInDockerOrder(id) {
                // Under way meanwhile (a Leave deleting it, a new Join): that command decides.
                guard docker[id]?.bridgePort == port, let label = try? endpoint.network.label,
                      (try? overlay.hasBridgePort(port, on: label)) == false else { return }
                retireDocker(id, reason: "its veth is gone with the container's namespace", releasingAddress: false)
            }
        }
    }

    /// Everything this host has of Docker endpoint `id` goes (in its order): its record and name
    /// (queued if the store does not answer), its veth, its table entry, and with
    /// `releasingAddress` its address claim unless the address is this host's for something
    /// else by now (it went back to the IPAM and to a new container).
    private func retireDocker(_ id: String, reason: String, releasingAddress: Bool) {
        guard var endpoint = docker[id] else { return }
        logger.info("withdrawing a docker endpoint", metadata: ["endpoint": "\(id.prefix(12))", "reason": "\(reason)"])
        withdrawDocker(id, &endpoint)
        let label = try? endpoint.network.label
        if let port = endpoint.bridgePort, let label { attempt("deleting \(port)") { try overlay.deleteBridgePort(port, on: label) } }
        docker[id] = nil
        releaseDevicesIfGone(endpoint.network)
        guard releasingAddress, let label else { return }
        for address in endpoint.addresses where !docker.heldElsewhere(address, on: endpoint.network.name, besides: id, since: endpoint.learnt) {
            do {
                try registry.releaseAddress(address, on: label, heldBy: configuration.hostID)
            } catch {
                docker.queueRelease(UnreleasedAddress(network: label, address: address))
            }
        }
    }
}
