import Addressing
import ClusterState
import Foundation
import Logging
import Node

/// libnetwork's remote NetworkDriver and IpamDriver API (Docker 20.10), served on the plugin
/// socket Docker discovers (/run/docker/plugins/dnsd.sock): each call a POST of JSON to
/// `/<Interface>.<Method>`; a failure is 200 with `{"Err": ...}` (network driver) or
/// `{"Error": ...}` (IPAM), an unknown method 404 (docker's plugin client then skips it).
///
/// Scope `local` with connectivity `global`, as macvlan declares: each host's dockerd keeps its
/// own copy of a network (no cluster store, no swarm), and dnsd's store is what joins them.
struct DockerPluginRoutes: HTTPRoutes {
    let daemon: Daemon
    let logger: Logger
    /// What needs Docker's API: the name of a network Docker created, of a container joining.
    let docker: DockerIntegration

    func respond(method: String, path: String, body: Data) -> (status: Int, body: Data) {
        let call = String(path.dropFirst())
        logger.debug("docker plugin call", metadata: ["call": "\(call)"])
        let ipam = call.hasPrefix("IpamDriver.")
        do {
            let parsed = try? JSONSerialization.jsonObject(with: body.isEmpty ? Data("{}".utf8) : body)
            guard let request = parsed as? [String: Any] else { throw APIError.badRequest("the body of \(call) is not a JSON object") }
            guard method == "POST", let reply = try handle(call, request) else {
                return (404, json(["Err": "dnsd does not implement \(call)"]))
            }
            return (200, json(reply))
        } catch {
            let message = APIError(error).message
            logger.info("docker plugin call refused", metadata: ["call": "\(call)", "error": "\(message)"])
            return (200, json([ipam ? "Error" : "Err": message]))
        }
    }

    /// The reply to `call`, or nil for a call dnsd does not know.
    private func handle(_ call: String, _ request: [String: Any]) throws -> [String: Any]? {
        func string(_ key: String) -> String { request[key] as? String ?? "" }
        switch call {
        case "Plugin.Activate": return ["Implements": ["NetworkDriver", "IpamDriver"]]
        case "NetworkDriver.GetCapabilities": return ["Scope": "local", "ConnectivityScope": "global"]
        case "IpamDriver.GetCapabilities": return ["RequiresMACAddress": false, "RequiresRequestReplay": false]
        case "IpamDriver.GetDefaultAddressSpaces":
            return ["LocalDefaultAddressSpace": "dnsd", "GlobalDefaultAddressSpace": "dnsd"]
        case "IpamDriver.RequestPool":
            // One pool per family (`--ipv6` asks for a V6 one too): each is a subnet of the dnsd
            // network, and the pool's id is that subnet.
            let v6 = request["V6"] as? Bool == true
            let pool = string("Pool")
            guard !pool.isEmpty else {
                throw DockerPluginError("dnsd's IPAM needs --subnet for each family: the dnsd network's \(v6 ? "IPv6" : "IPv4") subnet")
            }
            let subnet = try IPSubnet(parsing: pool)
            guard subnet.family == (v6 ? .v6 : .v4) else { throw DockerPluginError("pool \(pool) is not an \(v6 ? "IPv6" : "IPv4") subnet") }
            // Room for a gateway and containers: what `network create` would accept.
            guard subnet.prefixLength <= (v6 ? ClusterRegistry.longestPrefix6 : 30) else {
                throw DockerPluginError("subnet \(subnet) has no room for containers (at most /\(v6 ? ClusterRegistry.longestPrefix6 : 30))")
            }
            return ["PoolID": subnet.description, "Pool": subnet.description, "Data": [String: String]()]
        case "IpamDriver.ReleasePool": return [:]
        case "IpamDriver.RequestAddress":
            let options = request["Options"] as? [String: Any] ?? [:]
            let gateway = options["RequestAddressType"] as? String == "com.docker.network.gateway"
            let requested = string("Address")
            let command = Command.dockerRequestAddress(pool: try IPSubnet(parsing: string("PoolID")),
                                                       requested: requested.isEmpty ? nil : try anyAddress(requested), gateway: gateway)
            guard case .dockerAddress(let address) = try daemon.perform(command) else { throw DockerPluginError("no address") }
            return ["Address": address, "Data": [String: String]()]
        case "IpamDriver.ReleaseAddress":
            _ = try daemon.perform(.dockerReleaseAddress(pool: try IPSubnet(parsing: string("PoolID")), try anyAddress(string("Address"))))
            return [:]
        case "NetworkDriver.CreateNetwork":
            let data = (request["IPv4Data"] as? [[String: Any]])?.first ?? [:]
            guard let pool = data["Pool"] as? String, !pool.isEmpty else { throw DockerPluginError("a dnsd network needs --subnet") }
            // Docker's default IPAM hands out addresses per host: two hosts would give one address
            // to two containers on one VXLAN. Only dnsd's (address space "dnsd") claims them in
            // the cluster.
            guard data["AddressSpace"] as? String == "dnsd" else {
                throw DockerPluginError("a dnsd network needs dnsd's IPAM, which keeps addresses unique across hosts: docker network create -d dnsd --ipam-driver dnsd --subnet \(pool) NAME")
            }
            let gateway = Self.gateway(data)
            // A dual-stack network (`--ipv6` and an IPv6 --subnet): its IPv6 pool, from dnsd's IPAM too.
            let data6 = (request["IPv6Data"] as? [[String: Any]])?.first
            let pool6 = (data6?["Pool"] as? String).flatMap { $0.isEmpty ? nil : $0 }
            if pool6 != nil, data6?["AddressSpace"] as? String != "dnsd" {
                throw DockerPluginError("the IPv6 pool of a dnsd network must come from dnsd's IPAM (--ipam-driver dnsd)")
            }
            let gateway6 = data6.flatMap(Self.gateway)
            // Everything but the name (which Docker never sends) is judged now, in dnsd's line.
            try daemon.dockerCheckNetwork(subnet: try IPv4Subnet(parsing: pool), gateway: try gateway.map { try address($0) },
                                          subnet6: try pool6.map { try IPSubnet(parsing: $0, family: .v6) },
                                          gateway6: try gateway6.map { try anyAddress($0) })
            docker.networkCreated(id: string("NetworkID"), pool: pool, gateway: gateway, pool6: pool6, gateway6: gateway6)
            return [:]
        case "NetworkDriver.DeleteNetwork":
            try docker.networkDeleted(id: string("NetworkID"))
            return [:]
        case "NetworkDriver.AllocateNetwork": return ["Options": [String: String]()]
        case "NetworkDriver.FreeNetwork", "NetworkDriver.DiscoverNew", "NetworkDriver.DiscoverDelete",
             "NetworkDriver.ProgramExternalConnectivity", "NetworkDriver.RevokeExternalConnectivity":
            return [:]
        case "NetworkDriver.CreateEndpoint":
            let interface = request["Interface"] as? [String: Any] ?? [:]
            guard let text = interface["Address"] as? String, !text.isEmpty else {
                throw DockerPluginError("endpoint \(string("EndpointID")) has no IPv4 address (is the network's IPAM driver dnsd?)")
            }
            let text6 = interface["AddressIPv6"] as? String ?? ""
            let command = Command.dockerCreateEndpoint(try DockerEndpointID(string("EndpointID")), address: try address(text),
                                                       address6: text6.isEmpty ? nil : try anyAddress(text6))
            guard case .dockerEndpoint(let mac) = try daemon.perform(command) else { throw DockerPluginError("no endpoint") }
            // Docker gave the address; the MAC is dnsd's (every host's FDB points at it).
            return ["Interface": ["MacAddress": mac]]
        case "NetworkDriver.EndpointOperInfo": return ["Value": [String: String]()]
        case "NetworkDriver.Join":
            let key = string("SandboxKey")
            guard key.isEmpty || (key.hasPrefix("/") && key.utf8.count <= 4096 && !key.utf8.contains(0)) else {
                throw DockerPluginError("invalid SandboxKey '\(key.prefix(100))'")
            }
            let join = Command.dockerJoin(try DockerEndpointID(string("EndpointID")), sandboxKey: key.isEmpty ? nil : key)
            guard case .dockerJoined(let interface, let gateway) = try daemon.perform(join) else { throw DockerPluginError("not joined") }
            docker.joined(networkID: string("NetworkID"), endpointID: string("EndpointID"))
            // No gateway leg from Docker (docker_gwbridge's default pool is the subnet of dnsd's
            // own gateway bridge): the way out is behind the overlay's gateway (`provideEgress`).
            return ["InterfaceName": ["SrcName": interface, "DstPrefix": "eth"], "Gateway": gateway,
                    "DisableGatewayService": true]
        case "NetworkDriver.Leave":
            _ = try daemon.perform(.dockerLeave(try DockerEndpointID(string("EndpointID")), delete: false))
            return [:]
        case "NetworkDriver.DeleteEndpoint":
            _ = try daemon.perform(.dockerLeave(try DockerEndpointID(string("EndpointID")), delete: true))
            return [:]
        default:
            return nil
        }
    }

    /// A pool's gateway without its prefix length, nil when Docker gave none.
    private static func gateway(_ data: [String: Any]) -> String? {
        (data["Gateway"] as? String).map { String($0.split(separator: "/").first ?? "") }.flatMap { $0.isEmpty ? nil : $0 }
    }

    /// An address of either family as Docker sends it ("fd00:db8:1::2/64", or bare).
    private func anyAddress(_ text: String) throws -> IPAddress {
        guard let address = IPAddress(text.split(separator: "/").first ?? "") else { throw DockerPluginError("invalid address '\(text)'") }
        return address
    }

    /// An IPv4 address as Docker sends it ("192.168.0.2/24", or bare).
    private func address(_ text: String) throws -> IPv4Address {
        guard let address = IPv4Address(String(text.split(separator: "/").first ?? "")) else {
            throw DockerPluginError("invalid address '\(text)'")
        }
        return address
    }

    private func json(_ object: [String: Any]) -> Data {
        (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
    }
}

struct DockerPluginError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
