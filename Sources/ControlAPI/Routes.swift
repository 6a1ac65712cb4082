@_exported import ClusterRecords
import FoundationEssentials

/// The control API's routes, in one table: each a method, a path shape ("*" stands for a name)
/// and the status of success. Clients build their paths from it (`path(_:)`), the server matches
/// requests against it (`match`): a route is spelled once.
public enum APIRoute: String, CaseIterable, Sendable {
    case listNetworks, createNetwork, inspectNetwork, removeNetwork
    case listSandboxes, run, attach, inspectSandbox, dnsView, connect, disconnect, stop, remove
    case attachContainer, checkContainer, detachContainer
    case events

    public var method: String {
        switch self {
        case .listNetworks, .inspectNetwork, .listSandboxes, .inspectSandbox, .dnsView, .checkContainer, .events: "GET"
        case .createNetwork, .run, .attach, .connect, .stop, .attachContainer: "POST"
        case .removeNetwork, .disconnect, .remove, .detachContainer: "DELETE"
        }
    }

    /// The path under `/v1/`, segment by segment.
    public var shape: [String] {
        switch self {
        case .listNetworks, .createNetwork: ["networks"]
        case .inspectNetwork, .removeNetwork: ["networks", "*"]
        case .listSandboxes, .run: ["sandboxes"]
        case .attach: ["sandboxes", "attach"]
        case .inspectSandbox, .remove: ["sandboxes", "*"]
        case .dnsView: ["sandboxes", "*", "dns"]
        case .connect: ["sandboxes", "*", "networks"]
        case .disconnect: ["sandboxes", "*", "networks", "*"]
        case .stop: ["sandboxes", "*", "stop"]
        case .attachContainer: ["containers", "*", "networks"]
        case .checkContainer, .detachContainer: ["containers", "*", "networks", "*"]
        case .events: ["events"]
        }
    }

    /// The status a success answers with.
    public var success: Int {
        switch self {
        case .createNetwork, .run, .attach, .attachContainer: 201
        default: 200
        }
    }

    /// The path with `parameters` in the shape's "*"s, in order.
    public func path(_ parameters: [String] = []) -> String {
        var remaining = parameters[...]
        return "/v1/" + shape.map { $0 == "*" ? (remaining.popFirst() ?? "") : $0 }.joined(separator: "/")
    }

    /// The route a request is for, with the names in its path; nil when there is none.
    public static func match(method: String, path: String) -> (route: APIRoute, parameters: [String])? {
        let parts = (path.split(separator: "?", maxSplits: 1).first ?? "").split(separator: "/").map(String.init)
        guard parts.first == "v1" else { return nil }
        let segments = Array(parts.dropFirst())
        for route in allCases where route.method == method && route.shape.count == segments.count {
            guard zip(segments, route.shape).allSatisfy({ $1 == "*" || $0 == $1 }) else { continue }
            return (route, zip(segments, route.shape).filter { $1 == "*" }.map(\.0))
        }
        return nil
    }
}

/// A body for routes that take none.
public struct NoBody: Codable, Sendable {
    public init() {}
}

/// One typed call of the control API: its route and path, the body it sends, the reply it decodes.
public struct APICall<Body: Encodable & Sendable, Reply: Decodable & Sendable>: Sendable {
    public let route: APIRoute
    public let path: String
    public let body: Body?

    init(_ route: APIRoute, _ parameters: String..., body: Body? = nil) {
        self.route = route
        self.path = route.path(parameters)
        self.body = body
    }
}

/// The calls, one per route, each with its request and reply types: what the CLI and the CNI
/// plugin call, and what the server decodes (`APIRoute` tells it which).
public enum API {
    public static func listNetworks() -> APICall<NoBody, [NetworkRecord]> { .init(.listNetworks) }
    public static func createNetwork(_ body: NetworkCreation) -> APICall<NetworkCreation, NetworkRecord> { .init(.createNetwork, body: body) }
    public static func inspectNetwork(_ name: String) -> APICall<NoBody, NetworkDetail> { .init(.inspectNetwork, name) }
    public static func removeNetwork(_ name: String) -> APICall<NoBody, Removed> { .init(.removeNetwork, name) }
    public static func listSandboxes() -> APICall<NoBody, [SandboxInfo]> { .init(.listSandboxes) }
    public static func run(_ body: SandboxCreation) -> APICall<SandboxCreation, SandboxInfo> { .init(.run, body: body) }
    public static func attach(_ body: SandboxAdoption) -> APICall<SandboxAdoption, SandboxInfo> { .init(.attach, body: body) }
    public static func inspectSandbox(_ name: String) -> APICall<NoBody, SandboxInfo> { .init(.inspectSandbox, name) }
    public static func dnsView(_ name: String) -> APICall<NoBody, DNSView> { .init(.dnsView, name) }
    public static func connect(_ sandbox: String, _ body: NetworkConnection) -> APICall<NetworkConnection, SandboxInfo> {
        .init(.connect, sandbox, body: body)
    }
    public static func disconnect(_ sandbox: String, from network: String) -> APICall<NoBody, SandboxInfo> { .init(.disconnect, sandbox, network) }
    public static func stop(_ name: String) -> APICall<NoBody, Removed> { .init(.stop, name) }
    public static func remove(_ name: String) -> APICall<NoBody, Removed> { .init(.remove, name) }
    public static func attachContainer(_ body: ContainerAttach) -> APICall<ContainerAttach, ContainerAttachment> {
        .init(.attachContainer, body.containerID, body: body)
    }
    public static func checkContainer(_ id: String, network: String) -> APICall<NoBody, ContainerAttachment> {
        .init(.checkContainer, id, network)
    }
    public static func detachContainer(_ id: String, network: String) -> APICall<NoBody, Removed> { .init(.detachContainer, id, network) }
}
