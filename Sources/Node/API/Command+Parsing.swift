import Addressing
import ClusterState
import Foundation
import OverlayNet

/// The control API's requests as `Command`s: the route (from `APIRoute.match`), the names in its
/// path and its JSON body, each parsed here, at the edge, into the types the core works with. A
/// request that does not parse is refused in one line (`NodeError.invalid`) before the core sees it.
extension Command {
    public init(route: APIRoute, parameters: [String], body: Data) throws {
        do { self = try Self.parse(route, parameters, body) } catch { throw NodeError.from(error) }
    }

    private static func parse(_ route: APIRoute, _ parameters: [String], _ body: Data) throws -> Command {
        func decode<T: Decodable>(_ type: T.Type) throws -> T {
            do { return try JSONDecoder().decode(type, from: body.isEmpty ? Data("{}".utf8) : body) } catch {
                throw NodeError.invalid("malformed request body: \(Self.reason(error))")
            }
        }
        func name(_ index: Int, _ what: String) throws -> HostLabel { try label(parameters[index], what) }
        switch route {
        case .listNetworks: return .listNetworks
        case .createNetwork: return .createNetwork(try network(decode(NetworkCreation.self)))
        case .inspectNetwork: return .inspectNetwork(try name(0, "network"))
        case .removeNetwork: return .removeNetwork(try name(0, "network"))
        case .listSandboxes: return .listSandboxes
        case .run: return .run(try run(decode(SandboxCreation.self)))
        case .attach: return .attach(try adoption(decode(SandboxAdoption.self)))
        case .inspectSandbox: return .inspectSandbox(try name(0, "name"))
        case .dnsView: return .dnsView(try name(0, "name"))
        case .connect: return .connect(sandbox: try name(0, "name"), try connection(decode(NetworkConnection.self)))
        case .disconnect: return .disconnect(sandbox: try name(0, "name"), network: try name(1, "network"))
        case .stop: return .stop(try name(0, "name"))
        case .remove: return .remove(try name(0, "name"))
        case .attachContainer:
            let request = try decode(ContainerAttach.self)
            guard request.containerID == parameters[0] else { throw NodeError.invalid("containerID in the body is not the one in the path") }
            return .attachContainer(try container(request))
        case .checkContainer: return .checkContainer(try ContainerID(parameters[0]), network: try name(1, "network"))
        case .detachContainer: return .detachContainer(try ContainerID(parameters[0]), network: try name(1, "network"))
        case .events: throw NodeError.invalid("the events stream is not a command")
        }
    }

    static func label(_ text: String?, _ what: String) throws -> HostLabel {
        guard let text else { throw NodeError.invalid("missing \(what)") }
        return try HostLabel(text, what: what)
    }

    /// `--ip` and `--ip6` (or `IP=`), those given: one IPv4 and one IPv6 address at most.
    static func addresses(_ ip: String?, _ ip6: String?) throws -> [IPAddress] {
        var result: [IPAddress] = []
        if let ip {
            guard let address = IPv4Address(ip) else { throw NodeError.invalid("invalid --ip '\(ip)': expected an IPv4 address") }
            result.append(IPAddress(address))
        }
        if let ip6 {
            guard let address = IPAddress(ip6), address.family == .v6 else {
                throw NodeError.invalid("invalid --ip6 '\(ip6)': expected an IPv6 address")
            }
            result.append(address)
        }
        return result
    }

    /// `network create`'s body, parsed (also what Docker's CreateNetwork becomes).
    public static func network(_ request: NetworkCreation) throws -> NetworkSpec {
        let name = try label(request.name, "network")
        guard name.text != "bridge", name.text != "gwbridge" else { throw NodeError.invalid("network name '\(name)' is reserved") }
        // `subnet` IPv4 (and `subnet6` IPv6, for dual-stack), or `subnet` alone IPv6: IPv6-only.
        let first = try IPSubnet(parsing: request.subnet)
        if first.family == .v6, request.subnet6 != nil {
            throw NodeError.invalid("at most one subnet per address family (one IPv4, one IPv6)")
        }
        let subnet = IPv4Subnet(first)
        var gateway: IPv4Address?
        if let text = request.gateway {
            guard let parsed = IPv4Address(text) else { throw NodeError.invalid("invalid --gateway '\(text)': expected an IPv4 address") }
            guard subnet != nil else { throw NodeError.invalid("an IPv4 gateway needs an IPv4 subnet") }
            gateway = parsed
        }
        let subnet6 = first.family == .v6 ? first : try request.subnet6.map { try IPSubnet(parsing: $0, family: .v6) }
        var gateway6: IPAddress?
        if let text = request.gateway6 {
            guard let parsed = IPAddress(text), parsed.family == .v6 else {
                throw NodeError.invalid("invalid IPv6 gateway '\(text)': expected an IPv6 address")
            }
            guard subnet6 != nil else { throw NodeError.invalid("an IPv6 gateway needs an IPv6 subnet") }
            gateway6 = parsed
        }
        guard let driver = NetworkRecord.Driver(rawValue: request.driver ?? "overlay") else {
            throw NodeError.invalid("invalid --driver '\(request.driver ?? "")': expected overlay or bridge")
        }
        return NetworkSpec(name: name, driver: driver, subnet: subnet, gateway: gateway, subnet6: subnet6, gateway6: gateway6)
    }

    static func run(_ request: SandboxCreation) throws -> RunSpec {
        let name = try label(request.name, "name")
        return RunSpec(name: name, hostname: try request.hostname.map { try HostLabel($0, what: "hostname") } ?? name,
                       network: try request.network.map { try label($0, "network") },
                       aliases: try (request.aliases ?? []).map { try HostLabel($0, what: "alias") }, addresses: try addresses(request.ip, request.ip6))
    }

    static func adoption(_ request: SandboxAdoption) throws -> AdoptionSpec {
        AdoptionSpec(name: try label(request.name, "name"), netns: request.netns, network: try label(request.network, "network"),
                     hostsFile: request.hostsFile, aliases: try (request.aliases ?? []).map { try HostLabel($0, what: "alias") })
    }

    static func connection(_ request: NetworkConnection) throws -> ConnectionSpec {
        let aliases = try request.aliases.flatMap { $0.isEmpty ? nil : try $0.map { try HostLabel($0, what: "alias") } }
        return ConnectionSpec(network: try label(request.network, "network"), aliases: aliases, addresses: try addresses(request.ip, request.ip6))
    }

    static func container(_ request: ContainerAttach) throws -> ContainerSpec {
        let id = try ContainerID(request.containerID)
        guard isInterfaceName(request.interface) else {
            throw NodeError.invalid("invalid interface name '\(request.interface)': 1-15 characters, no '/', ':' or spaces")
        }
        return ContainerSpec(id: id, netns: request.netns, interface: request.interface, network: try label(request.network, "network"),
                             name: try label(request.name ?? id.text, "name"), addresses: try addresses(request.ip, request.ip6),
                             aliases: try request.aliases.map { try $0.map { try HostLabel($0, what: "alias") } }, hostsFile: request.hostsFile)
    }

    /// A Linux interface name (IFNAMSIZ 16 with its NUL; no '/', ':' or whitespace; not "." or "..").
    static func isInterfaceName(_ name: String) -> Bool {
        (1...15).contains(name.utf8.count) && name != "." && name != ".."
            && !name.utf8.contains { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: ":") || $0 <= 0x20 || $0 >= 0x7f }
    }

    /// A decoding error in one line (which field, what was wrong).
    static func reason(_ error: Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, _): "missing \(key.stringValue)"
        case DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context):
            "wrong type for \(context.codingPath.map(\.stringValue).joined(separator: "."))"
        case DecodingError.dataCorrupted: "not JSON"
        default: "\(error)"
        }
    }
}
