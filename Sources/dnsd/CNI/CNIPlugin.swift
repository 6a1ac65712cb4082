import Foundation
import Node

/// dnsd as a CNI plugin (spec 1.0.0, results also in 0.3.x/0.4.0 form): a runtime executes the
/// `dnsd` binary with `CNI_COMMAND` set and no arguments, the network configuration on stdin.
/// The plugin holds no state: each command is one call to the local daemon's HTTP API, which
/// allocates the address from the cluster, adds the interface, publishes the names and serves
/// 127.0.0.11 inside the namespace. The result (or a CNI error) goes to stdout.
///
/// Configuration keys besides the spec's: `socket` (the daemon's control socket; default
/// DNSD_SOCK or /run/dnsd/dnsd.sock) and `hostsDir` (a directory whose file `<name>` dnsd keeps
/// as the container's hosts file, for runtimes that bind-mount one, e.g. `ctr --mount`).
/// The conflist's `name` is the dnsd network.
enum CNIPlugin {
    static let supportedVersions = ["0.3.0", "0.3.1", "0.4.0", "1.0.0"]

    /// Whether this process was executed as a CNI plugin.
    static var isInvoked: Bool {
        CommandLine.arguments.count == 1 && ProcessInfo.processInfo.environment["CNI_COMMAND"] != nil
    }

    static func main() -> Never {
        let environment = ProcessInfo.processInfo.environment
        var version = "1.0.0"
        do {
            let command = environment["CNI_COMMAND"] ?? ""
            if command == "VERSION" {
                emit(["cniVersion": "1.0.0", "supportedVersions": supportedVersions])
            }
            let stdin = FileHandle.standardInput.readDataToEndOfFile()
            let request = try CNIRequest(command: command, environment: environment, stdin: stdin)
            version = request.cniVersion
            switch command {
            case "ADD": emit(try add(request))
            case "DEL":
                try delete(request)
                exit(0)
            case "CHECK":
                try check(request)
                exit(0)
            case "GC", "STATUS":
                // CNI 1.1 verbs; unsupported versions never send them.
                throw CNIError(code: 4, "CNI_COMMAND \(command) needs CNI 1.1; this plugin speaks \(supportedVersions.joined(separator: ", "))")
            default:
                throw CNIError(code: 4, "unknown CNI_COMMAND '\(command)': expected ADD, DEL, CHECK or VERSION")
            }
        } catch let error as CNIError {
            fail(error, version: version)
        } catch {
            fail(CNIError(code: 100, "\(error)"), version: version)
        }
    }

    // MARK: commands

    private static func add(_ request: CNIRequest) throws -> [String: Any] {
        let netns = try request.required("CNI_NETNS", request.netns)
        let body = ContainerAttach(containerID: request.containerID, netns: netns, interface: request.interface,
                                   network: request.network, name: request.name, ip: request.ip, aliases: request.aliases,
                                   hostsFile: request.hostsDirectory.map { "\($0)/\(request.name)" })
        let attachment = try decode(try call("POST", "/v1/containers/\(request.containerID)/networks", body, request))
        return result(attachment, request)
    }

    private static func delete(_ request: CNIRequest) throws {
        _ = try call("DELETE", "/v1/containers/\(request.containerID)/networks/\(request.network)", nil, request)
    }

    /// The attachment the daemon reads back from the kernel must be the one `prevResult` says.
    private static func check(_ request: CNIRequest) throws {
        guard let previous = request.previousResult else { throw CNIError(code: 7, "CHECK needs prevResult") }
        let attachment = try decode(try call("GET", "/v1/containers/\(request.containerID)/networks/\(request.network)", nil, request))
        let addresses = (previous["ips"] as? [[String: Any]] ?? []).compactMap { $0["address"] as? String }
        guard addresses.contains(attachment.address) else {
            throw CNIError(code: 100, "\(request.interface) has \(attachment.address), prevResult says \(addresses.joined(separator: ", "))")
        }
        let interfaces = (previous["interfaces"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
        guard interfaces.contains(attachment.interface) else {
            throw CNIError(code: 100, "interface \(attachment.interface) is not in prevResult")
        }
    }

    /// The CNI result: the previous plugin's (when chained) with this attachment appended.
    private static func result(_ attachment: ContainerAttachment, _ request: CNIRequest) -> [String: Any] {
        var result = request.previousResult ?? [:]
        var interfaces = result["interfaces"] as? [[String: Any]] ?? []
        interfaces.append(["name": attachment.interface, "mac": attachment.mac, "sandbox": attachment.netns])
        var ip: [String: Any] = ["address": attachment.address, "interface": interfaces.count - 1]
        if !attachment.gateway.isEmpty { ip["gateway"] = attachment.gateway }
        if request.cniVersion != "1.0.0" { ip["version"] = "4" }
        result["cniVersion"] = request.cniVersion
        result["interfaces"] = interfaces
        result["ips"] = (result["ips"] as? [[String: Any]] ?? []) + [ip]
        if result["routes"] == nil { result["routes"] = [[String: Any]]() }
        var dns = result["dns"] as? [String: Any] ?? [:]
        dns["nameservers"] = attachment.nameservers + ((dns["nameservers"] as? [String] ?? []).filter { !attachment.nameservers.contains($0) })
        dns["search"] = attachment.search + ((dns["search"] as? [String] ?? []).filter { !attachment.search.contains($0) })
        result["dns"] = dns
        return result
    }

    // MARK: the daemon

    /// One request to the daemon; its body, or the refusal as a CNI error.
    private static func call(_ method: String, _ path: String, _ body: ContainerAttach?, _ request: CNIRequest) throws -> Data {
        let response: APIClient.Response
        do {
            response = try APIClient.request(method, path, body: try body.map { try JSONEncoder().encode($0) }, socket: request.socket)
        } catch {
            // Not running (yet), restarting: the runtime may try again later.
            throw CNIError(code: 11, "\(error)")
        }
        guard (200..<300).contains(response.status) else {
            let message = APIClient.errorMessage(response.body) ?? "the dnsd daemon answered \(response.status)"
            switch response.status {
            case 400: throw CNIError(code: 7, message)
            case 404 where method == "GET": throw CNIError(code: 3, message)
            case 404: throw CNIError(code: 7, message)
            case 503: throw CNIError(code: 11, message)
            default: throw CNIError(code: 100, message)
            }
        }
        return response.body
    }

    private static func decode(_ body: Data) throws -> ContainerAttachment {
        do { return try JSONDecoder().decode(ContainerAttachment.self, from: body) } catch {
            throw CNIError(code: 100, "the dnsd daemon's answer was not understood: \(error)")
        }
    }

    // MARK: output

    private static func emit(_ object: [String: Any]) -> Never {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        FileHandle.standardOutput.write(data + Data("\n".utf8))
        exit(0)
    }

    /// A CNI error on stdout (where libcni reads it) and a non-zero exit.
    private static func fail(_ error: CNIError, version: String) -> Never {
        let object: [String: Any] = ["cniVersion": version, "code": error.code, "msg": error.message, "details": ""]
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
        FileHandle.standardOutput.write(data + Data("\n".utf8))
        exit(1)
    }
}

/// A CNI error: one of the spec's codes (1 version, 4 environment, 6 decoding, 7 invalid
/// configuration, 11 try again later; 100 and up the plugin's own) and one line.
struct CNIError: Error {
    var code: Int
    var message: String
    init(code: Int, _ message: String) {
        self.code = code
        self.message = message
    }
}
