import ControlAPI
import Foundation
@testable import Node
import Testing

/// The control API's one route table (`ControlAPI.APIRoute`): what clients build is what the
/// server matches, and each request parses into its `Command` at the edge.
@Suite("Route table: one spelling of every route")
struct RouteTableTests {
    @Test("every route's path, built with names, matches that route and gives the names back")
    func roundTrip() throws {
        for route in APIRoute.allCases {
            let names = route.shape.filter { $0 == "*" }.indices.map { "n\($0)" }
            let path = route.path(names)
            let match = try #require(APIRoute.match(method: route.method, path: path), "\(route) \(path)")
            #expect(match.route == route && match.parameters == names, "\(route) \(path) -> \(match)")
        }
        #expect(APIRoute.match(method: "POST", path: "/v1/sandboxes/attach")?.route == .attach)
        #expect(APIRoute.match(method: "GET", path: "/v2/networks") == nil)
        #expect(APIRoute.match(method: "PUT", path: "/v1/networks") == nil)
        #expect(APIRoute.match(method: "GET", path: "/v1/networks/a/b") == nil)
    }

    @Test("a request that does not parse is refused at the edge, in one line, as invalid")
    func parsing() throws {
        func command(_ route: APIRoute, _ parameters: [String] = [], _ body: String = "") throws -> Command {
            try Command(route: route, parameters: parameters, body: Data(body.utf8))
        }
        for (route, parameters, body) in [
            (APIRoute.run, [String](), #"{"name":"bad_name"}"#),
            (.run, [], #"{"name":"ok","ip":"300.1.1.1"}"#),
            (.createNetwork, [], #"{"name":"n","subnet":"10.0.0.0/33"}"#),
            (.createNetwork, [], #"{"name":"n","subnet":"10.0.0.0/24","driver":"macvlan"}"#),
            (.inspectSandbox, ["-x"], ""),
            (.checkContainer, ["a/../b", "net"], ""),
            (.attachContainer, ["c1"], #"{"containerID":"c2","netns":"/x","interface":"eth0","network":"n"}"#),
            (.attachContainer, ["c1"], #"{"containerID":"c1","netns":"/x","interface":"a/b","network":"n"}"#),
            (.connect, ["s"], "not json"),
        ] {
            #expect {
                _ = try command(route, parameters, body)
            } throws: { error in
                guard case .invalid(let line) = NodeError.from(error) else { return false }
                return !line.isEmpty && !line.contains("\n")
            }
        }
        guard case .run(let spec) = try command(.run, [], #"{"name":"web1","network":"vnet","aliases":["Web"],"ip":"10.0.0.5"}"#) else {
            Issue.record("not a run")
            return
        }
        #expect(spec.name.text == "web1" && spec.hostname.text == "web1" && spec.network?.text == "vnet" && spec.addresses.map(\.description) == ["10.0.0.5"])
    }
}
