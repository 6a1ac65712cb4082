import ControlAPI
import Foundation

/// The few Docker Engine API calls dnsd makes (API 1.41, Docker 20.10) over dockerd's unix
/// socket: driver calls carry no names, so the names of networks and containers come from here.
struct DockerEngine: Sendable {
    let socket: String
    static let version = "/v1.41"

    struct Network {
        var id: String
        var name: String
        var driver: String
        var subnet: String?
        var gateway: String?
        /// Its IPv6 pool, when Docker has IPv6 on for it.
        var subnet6: String?
        /// Per endpoint id on this host: the container's name.
        var endpointNames: [String: String] = [:]
    }

    struct Container {
        var name: String
        /// Per network name: Docker's endpoint id, the container's aliases and addresses there.
        var endpoints: [String: (endpointID: String, aliases: [String], address: String, address6: String)]
        /// Its network namespace's path (for the liveness check of adopted endpoints).
        var sandboxKey: String?
    }

    private func get(_ path: String) throws -> Any? {
        let response = try APIClient.request("GET", Self.version + path, socket: socket)
        guard response.status == 200 else { return nil }
        return try JSONSerialization.jsonObject(with: response.body)
    }

    /// dockerd's refusal (`{"message": ...}`) as one line.
    private static func failure(_ what: String, _ response: APIClient.Response) -> DockerPluginError {
        let message = (try? JSONSerialization.jsonObject(with: response.body) as? [String: Any])?["message"] as? String
        return DockerPluginError("\(what): \(message ?? "status \(response.status)")")
    }

    private static func network(_ object: [String: Any]) -> Network {
        // One config per family: the IPv4 one is the network's subnet, an IPv6 one its second.
        let configs = (object["IPAM"] as? [String: Any])?["Config"] as? [[String: Any]] ?? []
        let config = configs.first { ($0["Subnet"] as? String)?.contains(":") == false } ?? configs.first
        let config6 = configs.first { ($0["Subnet"] as? String)?.contains(":") == true }
        var names: [String: String] = [:]
        for (_, container) in object["Containers"] as? [String: [String: Any]] ?? [:] {
            if let endpoint = container["EndpointID"] as? String, let name = container["Name"] as? String { names[endpoint] = name }
        }
        return Network(id: object["Id"] as? String ?? "", name: object["Name"] as? String ?? "", driver: object["Driver"] as? String ?? "",
                       subnet: config?["Subnet"] as? String, gateway: config?["Gateway"] as? String,
                       subnet6: config6?["Subnet"] as? String, endpointNames: names)
    }

    func network(_ id: String) throws -> Network? {
        (try get("/networks/\(id)") as? [String: Any]).map(Self.network)
    }

    func networks() throws -> [Network] {
        ((try get("/networks") as? [[String: Any]]) ?? []).map(Self.network)
    }

    /// Creates a network with dnsd as its driver and IPAM driver (with IPv6 on for a dual-stack one).
    func createNetwork(name: String, subnet: String, gateway: String, subnet6: String? = nil, gateway6: String? = nil) throws {
        var configs = [["Subnet": subnet, "Gateway": gateway]]
        if let subnet6 { configs.append(["Subnet": subnet6, "Gateway": gateway6 ?? ""].filter { !$0.value.isEmpty }) }
        let body: [String: Any] = ["Name": name, "Driver": "dnsd", "CheckDuplicate": true, "EnableIPv6": subnet6 != nil,
                                   "IPAM": ["Driver": "dnsd", "Config": configs]]
        let response = try APIClient.request("POST", Self.version + "/networks/create", body: try JSONSerialization.data(withJSONObject: body),
                                             socket: socket)
        guard (200..<300).contains(response.status) else { throw Self.failure("docker network create \(name)", response) }
    }

    /// Removes a network (Docker refuses while containers use it).
    func removeNetwork(_ id: String) throws {
        let response = try APIClient.request("DELETE", Self.version + "/networks/\(id)", socket: socket)
        guard (200..<300).contains(response.status) || response.status == 404 else { throw Self.failure("docker network rm \(id)", response) }
    }

    func container(_ id: String) throws -> Container? {
        guard let object = try get("/containers/\(id)/json") as? [String: Any] else { return nil }
        let settings = object["NetworkSettings"] as? [String: Any]
        let networks = settings?["Networks"] as? [String: [String: Any]] ?? [:]
        var endpoints: [String: (String, [String], String, String)] = [:]
        for (name, settings) in networks {
            endpoints[name] = (settings["EndpointID"] as? String ?? "", settings["Aliases"] as? [String] ?? [],
                               settings["IPAddress"] as? String ?? "", settings["GlobalIPv6Address"] as? String ?? "")
        }
        let name = (object["Name"] as? String ?? "").trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        let key = settings?["SandboxKey"] as? String
        return Container(name: name, endpoints: endpoints, sandboxKey: key?.hasPrefix("/") == true ? key : nil)
    }

    /// The running containers and their endpoint ids, in one listing (it carries each
    /// container's network settings).
    /// The running containers, each with its endpoint id per network name, in one listing.
    struct Running {
        var containers: [(id: String, endpoints: [String: String])]
        var endpoints: Set<String> { Set(containers.flatMap(\.endpoints.values)) }
    }

    func runningEndpoints() throws -> Running {
        guard let list = try get("/containers/json") as? [[String: Any]] else { throw DockerPluginError("dockerd did not list its containers") }
        return Running(containers: list.compactMap { container in
            guard let id = container["Id"] as? String else { return nil }
            let networks = (container["NetworkSettings"] as? [String: Any])?["Networks"] as? [String: [String: Any]] ?? [:]
            return (id, networks.compactMapValues { $0["EndpointID"] as? String })
        })
    }

    /// Follows container start events until dockerd closes the stream (or goes away).
    func followStarts(_ started: (String) -> Void) throws {
        let filters = #"{"type":["container"],"event":["start"]}"#
        let query = filters.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
        try APIClient.stream(Self.version + "/events?filters=" + query, socket: socket) { line in
            guard let event = try? JSONSerialization.jsonObject(with: line) as? [String: Any],
                  let actor = event["Actor"] as? [String: Any], let id = actor["ID"] as? String else { return }
            started(id)
        }
    }
}
