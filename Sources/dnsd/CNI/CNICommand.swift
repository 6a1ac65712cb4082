import CommandLineSupport
import ArgumentParser
import ClusterRecords
import ControlAPI
import FoundationEssentials

/// `dnsd cni install NET`: sets a CNI runtime up to use the dnsd network NET — a conflist named
/// after it in the runtime's configuration directory, and `dnsd` among its plugins.
struct CNICommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cni", abstract: "Set CNI runtimes (podman, containerd) up to use a dnsd network.",
        subcommands: [Install.self, Uninstall.self])

    /// A network configuration list with the dnsd plugin (CNI spec 1.0.0).
    struct Conflist: Encodable {
        struct Plugin: Encodable {
            var type: String
            var socket: String
            var hostsDir: String?
            var capabilities: [String: Bool]
        }
        var cniVersion: String
        var name: String
        var plugins: [Plugin]
    }

    static func conflistPath(_ directory: String, _ network: String) -> String { "\(directory)/10-dnsd-\(network).conflist" }

    /// Where distributions install the reference CNI plugins (Debian: containernetworking-plugins).
    static let systemPluginDirectories = ["/usr/lib/cni", "/usr/libexec/cni"]

    /// The distribution's loopback plugin, if it has one outside `binDir`.
    static func systemLoopback(besides binDir: String) -> String? {
        systemPluginDirectories.filter { $0 != binDir }.map { "\($0)/loopback" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    struct Install: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "install",
            abstract: "Write the conflist for a network and put the plugin where the runtime looks.",
            discussion: """
                The defaults are where podman (network_backend = "cni") and `ctr run --cni` look.
                Example: dnsd cni install vnet; then podman run --network vnet ...
                """)
        @Option(help: "Where the runtime reads network configurations.") var confDir = "/etc/cni/net.d"
        @Option(help: "Where the runtime finds plugins (a link to this dnsd is made there).") var binDir = "/opt/cni/bin"
        @Option(help: "A directory in which dnsd keeps each container's hosts file as <dir>/<name> (for bind mounts).")
        var hostsDir: String?
        @Argument(help: "The dnsd network.") var network: String
        @OptionGroup var socket: SocketOption

        func run() throws {
            // The network must exist (it may be created on another host: the store knows).
            _ = try socket.call(API.inspectNetwork(network))
            if let hostsDir {
                guard hostsDir.hasPrefix("/") else { throw CLIError("--hosts-dir must be an absolute path") }
                try FileManager.default.createDirectory(atPath: hostsDir, withIntermediateDirectories: true)
            }
            let conflist = Conflist(cniVersion: "1.0.0", name: network, plugins: [
                .init(type: "dnsd", socket: socket.sock, hostsDir: hostsDir, capabilities: ["ips": true, "aliases": true]),
            ])
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            let data = try encoder.encode(conflist)
            try FileManager.default.createDirectory(atPath: confDir, withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: binDir, withIntermediateDirectories: true)
            let path = CNICommand.conflistPath(confDir, network)
            try (data + Data("\n".utf8)).write(to: URL(fileURLWithPath: path), options: .atomic)
            // The plugin is dnsd-cni, built and installed beside this dnsd.
            let me = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
            let executable = String(me[..<(me.lastIndex(of: "/") ?? me.startIndex)]) + "/dnsd-cni"
            guard FileManager.default.isExecutableFile(atPath: executable) else {
                throw CLIError("the CNI plugin \(executable) is missing: it is built and installed beside dnsd")
            }
            let link = "\(binDir)/dnsd"
            if (try? FileManager.default.destinationOfSymbolicLink(atPath: link)) != executable {
                if FileManager.default.fileExists(atPath: link) || (try? FileManager.default.destinationOfSymbolicLink(atPath: link)) != nil {
                    try FileManager.default.removeItem(atPath: link)
                }
                try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: executable)
            }
            print("\(path)\n\(link) -> \(executable)")
            // Runtimes that bring up lo through CNI (ctr run --cni) also need the loopback plugin
            // in this directory: linked from where the distribution installed it, when missing.
            let loopback = "\(binDir)/loopback"
            if !FileManager.default.fileExists(atPath: loopback), let system = CNICommand.systemLoopback(besides: binDir) {
                try FileManager.default.createSymbolicLink(atPath: loopback, withDestinationPath: system)
                print("\(loopback) -> \(system)")
            }
        }
    }

    struct Uninstall: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "uninstall",
            abstract: "Remove a network's conflist (and the plugin link when no dnsd conflist is left).")
        @Option(help: "Where the runtime reads network configurations.") var confDir = "/etc/cni/net.d"
        @Option(help: "Where the runtime finds plugins.") var binDir = "/opt/cni/bin"
        @Argument(help: "The dnsd network.") var network: String

        func run() throws {
            let path = CNICommand.conflistPath(confDir, network)
            guard FileManager.default.fileExists(atPath: path) else { throw CLIError("no dnsd conflist for '\(network)' in \(confDir)") }
            try FileManager.default.removeItem(atPath: path)
            let others = (try? FileManager.default.contentsOfDirectory(atPath: confDir))?.filter { $0.hasPrefix("10-dnsd-") } ?? []
            let link = "\(binDir)/dnsd"
            if others.isEmpty, (try? FileManager.default.destinationOfSymbolicLink(atPath: link)) != nil {
                try FileManager.default.removeItem(atPath: link)
            }
            // The loopback link `install` made (to the distribution's plugin) goes with the last.
            let loopback = "\(binDir)/loopback"
            if others.isEmpty, let target = try? FileManager.default.destinationOfSymbolicLink(atPath: loopback),
               CNICommand.systemPluginDirectories.contains(where: { target == "\($0)/loopback" }) {
                try FileManager.default.removeItem(atPath: loopback)
            }
            print(path)
        }
    }
}
