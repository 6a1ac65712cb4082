import Foundation
@testable import Node
import Testing

extension Daemon {
    /// A control API call as the server carries it out: matched against the route table,
    /// parsed into a `Command` (a request that does not parse is refused there), performed.
    func perform<Body, Reply>(_ call: APICall<Body, Reply>) throws -> CommandResult {
        let (route, parameters) = try #require(APIRoute.match(method: call.route.method, path: call.path))
        let body = try call.body.map { try JSONEncoder().encode($0) } ?? Data()
        return try perform(Command(route: route, parameters: parameters, body: body))
    }
}
