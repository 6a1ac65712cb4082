import Addressing
import ControlAPI
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// dnsd as a CNI plugin (spec 1.0.0, results also in 0.3.x/0.4.0 form): a runtime executes it
/// (installed as `dnsd` in its plugin directory) with `CNI_COMMAND` set, the network
/// configuration on stdin.
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

    static func main() -> Never {
        let environment = ProcessInfo.processInfo.environment
        var version = "1.0.0"
        do {
            let command = environment["CNI_COMMAND"] ?? ""
            if command == "VERSION" {
                emit(.object(["cniVersion": .string("1.0.0"), "supportedVersions": .strings(supportedVersions)]))
            }
            let request = try CNIRequest(command: command, environment: environment, stdin: readStandardInput())
            version = request.cniVersion
            switch command {
            case "ADD": emit(try add(request))
            case "DEL":
                try delete(request)
                exit(0)
            case "CHECK":
                // CHECK came with CNI 0.4.0: a configuration of an older version cannot ask it.
                guard !["0.3.0", "0.3.1"].contains(request.cniVersion) else {
                    throw CNIError(code: 1, "config version \(request.cniVersion) does not allow CHECK (it needs 0.4.0 or later)")
                }
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

    private static func add(_ request: CNIRequest) throws -> JSONValue {
        let netns = try request.required("CNI_NETNS", request.netns)
        let body = ContainerAttach(containerID: request.containerID, netns: netns, interface: request.interface,
                                   network: request.network, name: request.name, ip: request.ip, ip6: request.ip6, aliases: request.aliases,
                                   hostsFile: request.hostsDirectory.map { "\($0)/\(request.name)" })
        let attachment = try call(API.attachContainer(body), request)
        return result(attachment, request)
    }

    private static func delete(_ request: CNIRequest) throws {
        // A configuration whose name is no dnsd network name never attached anything here: a DEL
        // of it is done (DEL must succeed when there is nothing to remove).
        guard (try? HostLabel(request.network, what: "network")) != nil else { return }
        _ = try call(API.detachContainer(request.containerID, network: request.network), request)
    }

    /// The attachment the daemon reads back from the kernel must be the one `prevResult` says.
    private static func check(_ request: CNIRequest) throws {
        guard let previous = request.previousResult else { throw CNIError(code: 7, "CHECK needs prevResult") }
        let attachment = try call(API.checkContainer(request.containerID, network: request.network), request)
        let addresses = (previous["ips"]?.array ?? []).compactMap { $0["address"]?.string }
        for address in [attachment.address, attachment.address6].compactMap({ $0 }) where !address.isEmpty && !addresses.contains(address) {
            throw CNIError(code: 100, "\(request.interface) has \(address), prevResult says \(addresses.joined(separator: ", "))")
        }
        let interfaces = (previous["interfaces"]?.array ?? []).compactMap { $0["name"]?.string }
        guard interfaces.contains(attachment.interface) else {
            throw CNIError(code: 100, "interface \(attachment.interface) is not in prevResult")
        }
    }

    /// The CNI result: the previous plugin's (when chained) with this attachment appended.
    private static func result(_ attachment: ContainerAttachment, _ request: CNIRequest) -> JSONValue {
        var result = request.previousResult?.object ?? [:]
        var interfaces = result["interfaces"]?.array ?? []
        interfaces.append(.object(["name": .string(attachment.interface), "mac": .string(attachment.mac), "sandbox": .string(attachment.netns)]))
        var ips = result["ips"]?.array ?? []
        // One entry per address: IPv4 with the network's gateway, IPv6 (a dual-stack network)
        // without one (no IPv6 route leaves the overlay). Before CNI 1.0 each names its version.
        for (address, gateway, version) in [(attachment.address, attachment.gateway, "4"), (attachment.address6 ?? "", "", "6")]
        where !address.isEmpty {
            var ip: [String: JSONValue] = ["address": .string(address), "interface": .int(interfaces.count - 1)]
            if !gateway.isEmpty { ip["gateway"] = .string(gateway) }
            if request.cniVersion != "1.0.0" { ip["version"] = .string(version) }
            ips.append(.object(ip))
        }
        var routes = result["routes"]?.array ?? []
        if let egress = attachment.egress {
            // The gateway-bridge leg and the default route through it. Its address stays out of
            // `ips`: a runtime reports those as the container's addresses on this network (and
            // podman writes them into the container's hosts file for its own name), while the
            // leg is only the way out.
            interfaces.append(.object(["name": .string(egress.interface), "mac": .string(egress.mac), "sandbox": .string(attachment.netns)]))
            routes.append(.object(["dst": .string("0.0.0.0/0"), "gw": .string(egress.gateway)]))
        } else if attachment.defaultRoute == true, !attachment.gateway.isEmpty {
            routes.append(.object(["dst": .string("0.0.0.0/0"), "gw": .string(attachment.gateway)]))
        }
        result["cniVersion"] = .string(request.cniVersion)
        result["interfaces"] = .array(interfaces)
        result["ips"] = .array(ips)
        result["routes"] = .array(routes)
        var dns = result["dns"]?.object ?? [:]
        let servers = dns["nameservers"]?.strings ?? [], search = dns["search"]?.strings ?? []
        dns["nameservers"] = .strings(attachment.nameservers + servers.filter { !attachment.nameservers.contains($0) })
        dns["search"] = .strings(attachment.search + search.filter { !attachment.search.contains($0) })
        result["dns"] = .object(dns)
        return .object(result)
    }

    // MARK: the daemon

    /// One call to the daemon; its reply, or the refusal as a CNI error.
    private static func call<Body, Reply>(_ call: APICall<Body, Reply>, _ request: CNIRequest) throws -> Reply {
        let response: APIClient.Response
        do {
            response = try APIClient.request(call, socket: request.socket)
        } catch {
            // Not running (yet), restarting: the runtime may try again later.
            throw CNIError(code: 11, "\(error)")
        }
        guard (200..<300).contains(response.status) else {
            let message = APIClient.errorMessage(response.body) ?? "the dnsd daemon answered \(response.status)"
            switch response.status {
            case 400: throw CNIError(code: 7, message)
            case 404 where call.route.method == "GET": throw CNIError(code: 3, message)
            case 404: throw CNIError(code: 7, message)
            case 503: throw CNIError(code: 11, message)
            default: throw CNIError(code: 100, message)
            }
        }
        do { return try JSONDecoder().decode(Reply.self, from: response.body) } catch {
            throw CNIError(code: 100, "the dnsd daemon's answer was not understood: \(error)")
        }
    }

    // MARK: input and output

    private static func readStandardInput() -> Data {
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            if n <= 0 { return data }
            data.append(contentsOf: buffer[0..<n])
        }
    }

    private static func write(_ value: JSONValue) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var bytes = Array((try? encoder.encode(value)) ?? Data("{}".utf8))
        bytes.append(UInt8(ascii: "\n"))
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(1, $0.baseAddress! + written, $0.count - written) }
            if n < 0, errno == EINTR { continue }
            if n <= 0 { return }
            written += n
        }
    }

    private static func emit(_ value: JSONValue) -> Never {
        write(value)
        exit(0)
    }

    /// A CNI error on stdout (where libcni reads it) and a non-zero exit.
    private static func fail(_ error: CNIError, version: String) -> Never {
        write(.object(["cniVersion": .string(version), "code": .int(error.code), "msg": .string(error.message), "details": .string("")]))
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
