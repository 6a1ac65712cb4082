import Foundation
import Node

/// The HTTP API's routes (HTTP/1.1 + JSON on the control socket): each turns a method, a path and
/// a JSON body into one `Command`. `GET /v1/events` is a stream and is served by `APIServer`.
///
/// | route | command |
/// |---|---|
/// | `GET /v1/networks` | list networks |
/// | `POST /v1/networks` `{name, driver, subnet, gateway}` | create a network (201) |
/// | `GET /v1/networks/NAME` | the network and its endpoints |
/// | `DELETE /v1/networks/NAME` | remove a network |
/// | `GET /v1/sandboxes` | this host's sandboxes |
/// | `POST /v1/sandboxes` `{name, hostname, network, aliases, ip}` | `run` (201) |
/// | `POST /v1/sandboxes/attach` `{name, netns, network, hostsFile, aliases}` | `attach` (201) |
/// | `GET /v1/sandboxes/NAME` | one sandbox: interfaces, addresses, networks, files |
/// | `GET /v1/sandboxes/NAME/dns` | what its resolver answers: networks and names |
/// | `POST /v1/sandboxes/NAME/networks` `{network, aliases, ip}` | `network connect` |
/// | `DELETE /v1/sandboxes/NAME/networks/NET` | `network disconnect` |
/// | `POST /v1/sandboxes/NAME/stop` | `stop` |
/// | `DELETE /v1/sandboxes/NAME` | `rm` |
/// | `POST /v1/containers/ID/networks` `{containerID, netns, interface, network, name, ip, aliases, hostsFile}` | a runtime's container joins a network (CNI `ADD`, 201) |
/// | `GET /v1/containers/ID/networks/NET` | that attachment, read back from the kernel (CNI `CHECK`) |
/// | `DELETE /v1/containers/ID/networks/NET` | it leaves (CNI `DEL`; 200 also when already gone) |
/// | `GET /v1/events` | a stream of JSON lines, one per change applied |
enum Routes {
    /// The command for a request, and the status its success answers with.
    static func command(method: String, path: String, body: Data) throws -> (Command, status: Int) {
        let parts = path.split(separator: "?", maxSplits: 1).first.map { $0.split(separator: "/").map(String.init) } ?? []
        guard parts.first == "v1" else { throw APIError.notFound("no route \(method) \(path)") }
        func decode<T: Decodable>(_ type: T.Type) throws -> T {
            do { return try JSONDecoder().decode(type, from: body.isEmpty ? Data("{}".utf8) : body) } catch {
                throw APIError.badRequest("malformed request body: \(Self.reason(error))")
            }
        }
        let r = Array(parts.dropFirst())
        // A route's shape: the literal segments, "*" for a name.
        func matches(_ verb: String, _ shape: String...) -> Bool {
            method == verb && r.count == shape.count && zip(r, shape).allSatisfy { $1 == "*" || $0 == $1 }
        }
        if matches("GET", "networks") { return (.listNetworks, 200) }
        if matches("POST", "networks") { return (.createNetwork(try decode(NetworkCreation.self)), 201) }
        if matches("GET", "networks", "*") { return (.inspectNetwork(r[1]), 200) }
        if matches("DELETE", "networks", "*") { return (.removeNetwork(r[1]), 200) }
        if matches("GET", "sandboxes") { return (.listSandboxes, 200) }
        if matches("POST", "sandboxes") { return (.run(try decode(SandboxCreation.self)), 201) }
        if matches("POST", "sandboxes", "attach") { return (.attach(try decode(SandboxAdoption.self)), 201) }
        if matches("GET", "sandboxes", "*") { return (.inspectSandbox(r[1]), 200) }
        if matches("GET", "sandboxes", "*", "dns") { return (.dnsView(r[1]), 200) }
        if matches("POST", "sandboxes", "*", "networks") { return (.connect(sandbox: r[1], try decode(NetworkConnection.self)), 200) }
        if matches("DELETE", "sandboxes", "*", "networks", "*") { return (.disconnect(sandbox: r[1], network: r[3]), 200) }
        if matches("POST", "sandboxes", "*", "stop") { return (.stop(r[1]), 200) }
        if matches("DELETE", "sandboxes", "*") { return (.remove(r[1]), 200) }
        if matches("POST", "containers", "*", "networks") {
            var spec = try decode(ContainerAttach.self)
            guard spec.containerID == r[1] else { throw APIError.badRequest("containerID in the body is not the one in the path") }
            spec.containerID = r[1]
            return (.attachContainer(spec), 201)
        }
        if matches("GET", "containers", "*", "networks", "*") { return (.checkContainer(containerID: r[1], network: r[3]), 200) }
        if matches("DELETE", "containers", "*", "networks", "*") { return (.detachContainer(containerID: r[1], network: r[3]), 200) }
        throw APIError.notFound("no route \(method) \(path)")
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
