import Foundation
import Node

/// The HTTP API's routes (HTTP/1.1 + JSON on the control socket), as `ControlAPI`'s `APIRoute`
/// table spells them: each turns a method, a path and a JSON body into one `Command`. `GET /v1/events` is a stream and is served by `APIServer`.
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
    /// The command for a request (`APIRoute.match`, then `Command(route:parameters:body:)`), and
    /// the status its success answers with.
    static func command(method: String, path: String, body: Data) throws -> (Command, status: Int) {
        guard let (route, parameters) = APIRoute.match(method: method, path: path), route != .events else {
            throw APIError.notFound("no route \(method) \(path)")
        }
        return (try Command(route: route, parameters: parameters, body: body), route.success)
    }
}
