import Addressing
import ControlAPI
import FoundationEssentials

/// One CNI invocation as dnsd reads it: the environment (`CNI_CONTAINERID`, `CNI_NETNS`,
/// `CNI_IFNAME`, `CNI_ARGS`) and the network configuration on stdin.
///
/// What each runtime passes (RUNTIMES.md): podman gives the container's name as `K8S_POD_NAME`
/// and one `--ip` (or `--ip6`) as `IP=` in `CNI_ARGS`, several in `runtimeConfig.ips`, aliases in
/// `runtimeConfig.aliases` (always with the short id); `ctr run --cni` gives no arguments, so the
/// container id names the container; Kubernetes' runtimes add `K8S_POD_NAMESPACE` (the name is
/// then `POD-NAMESPACE`). A name is also taken from `args.cni.name`.
struct CNIRequest {
    var cniVersion: String
    var containerID: String
    var netns: String?
    var interface: String
    /// The dnsd network: the configuration's `name`.
    var network: String
    /// The container's DNS name (a host label).
    var name: String
    /// The addresses requested, IPv4 and IPv6 (the first of each family), without prefix lengths.
    var ip: String?
    var ip6: String?
    var aliases: [String]?
    var socket: String
    var hostsDirectory: String?
    var previousResult: JSONValue?

    init(command: String, environment: [String: String], stdin: Data) throws {
        guard let config = try? JSONDecoder().decode(JSONValue.self, from: stdin), config.object != nil else {
            throw CNIError(code: 6, "the network configuration on stdin is not a JSON object")
        }
        cniVersion = config["cniVersion"]?.string ?? ""
        guard CNIPlugin.supportedVersions.contains(cniVersion) else {
            throw CNIError(code: 1, "cniVersion '\(cniVersion)' is not supported: \(CNIPlugin.supportedVersions.joined(separator: ", "))")
        }
        guard let network = config["name"]?.string, !network.isEmpty else {
            throw CNIError(code: 7, "the network configuration has no name (it is the dnsd network)")
        }
        self.network = network
        func env(_ key: String) throws -> String {
            guard let value = environment[key], !value.isEmpty else { throw CNIError(code: 4, "\(key) is not set") }
            return value
        }
        containerID = try env("CNI_CONTAINERID")
        interface = try env("CNI_IFNAME")
        netns = environment["CNI_NETNS"].flatMap { $0.isEmpty ? nil : $0 }
        socket = config["socket"]?.string ?? environment["DNSD_SOCK"] ?? APIClient.defaultPath
        hostsDirectory = config["hostsDir"]?.string
        if let previous = config["prevResult"] {
            guard previous.object != nil else { throw CNIError(code: 6, "prevResult is not a JSON object") }
            previousResult = previous
        }

        let arguments = Self.arguments(environment["CNI_ARGS"] ?? "")
        let runtimeConfig = config["runtimeConfig"]
        let cniArgs = config["args"]?["cni"]
        // Kubernetes' runtimes name a pod within its namespace: `web` in `team-a` and `web` in
        // `team-b` are two pods. A dnsd name is one label in the network's zone, so the pod is
        // `web-team-a` (podman gives no namespace: the name alone).
        // (podman 3's ocicni passes the container name as both: the name alone then.)
        let pod = arguments["K8S_POD_NAME"].map { pod in
            arguments["K8S_POD_NAMESPACE"].flatMap { $0.isEmpty || $0 == pod ? nil : "\(pod)-\($0)" } ?? pod
        }
        let given = cniArgs?["name"]?.string ?? pod ?? containerID
        name = HostLabel.sanitized(given)?.text ?? String(containerID.prefix(12))
        let ips = (runtimeConfig?["ips"]?.strings ?? []) + (cniArgs?["ips"]?.strings ?? []) + (arguments["IP"].map { [$0] } ?? [])
        // The first requested of each family, without its prefix length.
        let bare = ips.lazy.map { String($0.split(separator: "/").first ?? "") }
        ip = bare.first { !$0.contains(":") }
        ip6 = bare.first { $0.contains(":") }
        let aliases = (runtimeConfig?["aliases"]?[network]?.strings ?? []) + (cniArgs?["aliases"]?.strings ?? [])
        self.aliases = aliases.isEmpty ? nil : Array(Set(aliases.filter { $0 != name })).sorted()
    }

    func required(_ key: String, _ value: String?) throws -> String {
        guard let value else { throw CNIError(code: 4, "\(key) is not set") }
        return value
    }

    /// `K=V;K=V` (CNI_ARGS).
    static func arguments(_ text: String) -> [String: String] {
        var result: [String: String] = [:]
        for pair in text.split(separator: ";") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { result[String(parts[0])] = String(parts[1]) }
        }
        return result
    }
}
