import Addressing
import Store

/// One sandbox to hold and publish again under a new lease: its name, and its endpoints (each
/// holding its address).
public struct Republication: Sendable {
    public var name: HostLabel
    public var endpoints: [EndpointState]

    public init(name: HostLabel, endpoints: [EndpointState]) {
        self.name = name
        self.endpoints = endpoints
    }
}

extension ClusterRegistry {
    /// Holds each sandbox's name and addresses for `host` under `lease` and publishes its
    /// endpoints (a restart, a reconnection, an expired lease). One listing of the names and of
    /// the networks' addresses, then several sandboxes per atomic commit conditioned on what
    /// the listing showed (absent, or `host`'s at that revision): for 200 sandboxes ~20 round
    /// trips instead of ~1000. A commit whose keys moved meanwhile is done again sandbox by
    /// sandbox the slow way (`holdName`, `holdAddress`, `publish`). Returns the sandboxes left
    /// out because another host holds their name or one of their addresses.
    public func republish(_ given: [Republication], host: String, lease: LeaseID?) throws -> [HostLabel: ClusterError] {
        guard !given.isEmpty else { return [:] }
        // One entry per name (a container on several networks publishes one name from each of
        // its endpoints): a transaction that puts one key twice is refused by etcd outright.
        var byName: [HostLabel: Republication] = [:]
        var order: [HostLabel] = []
        for entry in given {
            if byName[entry.name] == nil { order.append(entry.name) }
            var merged = byName[entry.name] ?? Republication(name: entry.name, endpoints: [])
            merged.endpoints += entry.endpoints.filter { endpoint in !merged.endpoints.contains { $0.id == endpoint.id && $0.network == endpoint.network } }
            byName[entry.name] = merged
        }
        let sandboxes = order.compactMap { byName[$0] }
        var claims: [String: KeyValue] = [:]
        for entry in try store.list(prefix: Keys.names).entries { claims[entry.key] = entry }
        for network in Set(sandboxes.flatMap { $0.endpoints.map(\.network) }) {
            guard let label = try? HostLabel(network, what: "network") else { continue }
            for entry in try store.list(prefix: Keys.ipam(label.text)).entries { claims[entry.key] = entry }
        }
        var refused: [HostLabel: ClusterError] = [:]
        func oneByOne(_ sandbox: Republication) throws {
            do { try republishOne(sandbox, host: host, lease: lease) } catch let error as ClusterError { refused[sandbox.name] = error }
        }
        var chunk: [(sandbox: Republication, plan: Plan)] = []
        func flush() throws {
            defer { chunk = [] }
            guard !chunk.isEmpty else { return }
            let conditions = chunk.flatMap(\.plan.conditions), puts = chunk.flatMap(\.plan.puts)
            if try store.commit(conditions, puts: puts, lease: lease) { return }
            for (sandbox, _) in chunk { try oneByOne(sandbox) }
        }
        for sandbox in sandboxes {
            let plan: Plan
            switch try Self.plan(sandbox, host: host, claims: claims) {
            case .failure(let error):
                refused[sandbox.name] = error
                continue
            case .success(let planned):
                plan = planned
            }
            guard plan.operations <= KeyCondition.maximumOperations else {
                try oneByOne(sandbox)
                continue
            }
            if chunk.reduce(0, { $0 + $1.plan.operations }) + plan.operations > KeyCondition.maximumOperations { try flush() }
            chunk.append((sandbox, plan))
        }
        try flush()
        return refused
    }

    /// What one sandbox's commit checks and writes.
    private struct Plan {
        var conditions: [KeyCondition] = []
        var puts: [(key: String, value: [UInt8])] = []
        var operations: Int { conditions.count + puts.count }
    }

    /// The sandbox's conditions and writes against the listed `claims`, or the refusal when a
    /// claim in the listing is another host's.
    private static func plan(_ sandbox: Republication, host: String, claims: [String: KeyValue]) throws -> Result<Plan, ClusterError> {
        var plan = Plan()
        func hold(_ key: String, _ value: [UInt8], ours: (KeyValue) -> Bool, refusal: ClusterError) -> ClusterError? {
            if let entry = claims[key] {
                guard ours(entry) else { return refusal }
                plan.conditions.append(.unchanged(key, modRevision: entry.modRevision))
            } else {
                plan.conditions.append(.absent(key))
            }
            plan.puts.append((key, value))
            return nil
        }
        let nameKey = Keys.name(sandbox.name)
        if let refusal = hold(nameKey, try JSON.encode(NameClaim(name: sandbox.name.text, host: host)), ours: { nameHolder($0) == host },
                              refusal: .nameTaken(sandbox.name.text, host: claims[nameKey].map(nameHolder) ?? "?")) {
            return .failure(refusal)
        }
        for endpoint in sandbox.endpoints {
            guard let network = try? HostLabel(endpoint.network, what: "network") else { continue }
            for address in endpoint.addresses {
                if let refusal = hold(Keys.address(network, address), Array(host.utf8), ours: { $0.text == host },
                                      refusal: .addressTaken(address.description)) {
                    return .failure(refusal)
                }
            }
            plan.puts.append((Keys.endpoint(network, endpoint.id), try JSON.encode(endpoint)))
        }
        return .success(plan)
    }

    /// One sandbox the slow way: each claim held with its own read and conditional write.
    private func republishOne(_ sandbox: Republication, host: String, lease: LeaseID?) throws {
        try holdName(sandbox.name, host: host, lease: lease)
        for endpoint in sandbox.endpoints {
            guard let network = try? HostLabel(endpoint.network, what: "network") else { continue }
            for address in endpoint.addresses { try holdAddress(address, on: network, host: host, lease: lease) }
            try publish(endpoint, lease: lease)
        }
    }
}
