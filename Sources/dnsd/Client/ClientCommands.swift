import Addressing
import ArgumentParser
import Foundation
import Netns

/// `--sock` for the client commands.
struct SocketOption: ParsableArguments {
    @Option(help: "The daemon's control socket (env DNSD_SOCK).")
    var sock: String = ProcessInfo.processInfo.environment["DNSD_SOCK"] ?? ControlSocket.defaultPath

    /// Sends `request`; prints the output, or throws the daemon's refusal as one line.
    func call(_ request: ControlRequest) throws {
        let reply = try ControlSocket.send(request, to: sock)
        guard reply.ok else { throw CLIError(reply.error ?? "refused") }
        if let output = reply.output, !output.isEmpty { print(output) }
    }
}

struct NetworkCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "network", abstract: "Create, list, inspect and remove networks.",
        subcommands: [Create.self, List.self, Inspect.self, Remove.self, Connect.self, Disconnect.self])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a network (overlay: cluster-wide; bridge: on this host).",
            discussion: "Example: dnsd network create --driver=overlay --subnet=192.168.0.0/24 vnet")
        @Option(help: "overlay or bridge.") var driver: String = "overlay"
        @Option(help: "IPv4 subnet in CIDR form.") var subnet: String
        @Option(help: "Gateway address (default: the subnet's first address).") var gateway: String?
        @Argument(help: "Network name.") var name: String
        @OptionGroup var socket: SocketOption
        func run() throws {
            try socket.call(ControlRequest(command: "network-create", network: name, driver: driver, subnet: subnet, gateway: gateway))
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List the cluster's networks.")
        @OptionGroup var socket: SocketOption
        func run() throws { try socket.call(ControlRequest(command: "network-ls")) }
    }

    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a network and its endpoints as JSON.")
        @Argument var name: String
        @OptionGroup var socket: SocketOption
        func run() throws { try socket.call(ControlRequest(command: "network-inspect", network: name)) }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove a network without endpoints.")
        @Argument var name: String
        @OptionGroup var socket: SocketOption
        func run() throws { try socket.call(ControlRequest(command: "network-rm", network: name)) }
    }

    struct Connect: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Attach a running sandbox to a network (next ethN).",
            discussion: "Example: dnsd network connect vnet c01")
        @Option(name: .customLong("alias"), help: "Extra name on this network (repeatable).") var aliases: [String] = []
        @Option(help: "Address to use on the network.") var ip: String?
        @Argument(help: "Network name.") var network: String
        @Argument(help: "Sandbox name.") var name: String
        @OptionGroup var socket: SocketOption
        func run() throws { try socket.call(ControlRequest(command: "connect", name: name, network: network, aliases: aliases, ip: ip)) }
    }

    struct Disconnect: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Detach a sandbox from a network.")
        @Argument var network: String
        @Argument var name: String
        @OptionGroup var socket: SocketOption
        func run() throws { try socket.call(ControlRequest(command: "disconnect", name: name, network: network)) }
    }
}

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Create a sandbox (network namespace NAME, visible to `ip netns`) and attach it.",
        discussion: """
            Without --net the sandbox's eth0 is on the host's default bridge (nameless, like docker0).
            With --net=NET, eth0 is on NET and, for an overlay, eth1 on the gateway bridge with the
            default route. Names and aliases resolve as NAME and NAME.NET on every host.

            Example: dnsd run --name=c02 --hostname=c02 --net=vnet
            """)
    @Option var name: String
    @Option var hostname: String?
    @Option var net: String?
    @Option(name: .customLong("alias"), help: "Extra name (repeatable).") var aliases: [String] = []
    @Option var ip: String?
    @OptionGroup var socket: SocketOption
    func run() throws {
        try socket.call(ControlRequest(command: "run", name: name, network: net, hostname: hostname, aliases: aliases, ip: ip))
    }
}

struct AttachCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attach", abstract: "Adopt a network namespace made by a container runtime and attach it to a network.",
        discussion: """
            dnsd adds the next ethN on NET, publishes NAME (and aliases) cluster-wide, keeps the given
            hosts file in sync (the runtime's own /etc/hosts for the container, or /etc/netns/NAME/hosts),
            and serves DNS at 127.0.0.11 inside when that address is free. It never deletes the namespace.

            Example: dnsd attach --netns /var/run/netns/ctr1 --name web1 --net vnet --hosts-file /run/ctr1/hosts
            """)
    @Option(help: "Path of the network namespace (e.g. /proc/PID/ns/net or /var/run/netns/X).") var netns: String
    @Option var name: String
    @Option var net: String
    @Option(name: .customLong("alias"), help: "Extra name (repeatable).") var aliases: [String] = []
    @Option(help: "The hosts file the container sees (default /etc/netns/NAME/hosts).") var hostsFile: String?
    @OptionGroup var socket: SocketOption
    func run() throws {
        try socket.call(ControlRequest(command: "attach", name: name, network: net, aliases: aliases, netnsPath: netns, hostsFile: hostsFile))
    }
}

struct StopCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stop", abstract: "Stop a sandbox: its names vanish everywhere, its namespace is removed.")
    @Argument var name: String
    @OptionGroup var socket: SocketOption
    func run() throws { try socket.call(ControlRequest(command: "stop", name: name)) }
}

struct RemoveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove a sandbox (stopping it if it runs).")
    @Argument var name: String
    @OptionGroup var socket: SocketOption
    func run() throws { try socket.call(ControlRequest(command: "rm", name: name)) }
}

struct PsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ps", abstract: "List this host's sandboxes.")
    @OptionGroup var socket: SocketOption
    func run() throws { try socket.call(ControlRequest(command: "ps")) }
}

struct ExecCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exec", abstract: "Run a command inside a sandbox (with its hosts file and resolv.conf).",
        discussion: "Example: dnsd exec c01 -- getent hosts c02.vnet")
    @Argument var name: String
    @Argument(parsing: .postTerminator) var command: [String] = []
    func run() throws {
        guard !command.isEmpty else { throw CLIError("missing the command to run after '--'") }
        do { _ = try HostLabel(name) } catch { throw CLIError("\(error)") }
        guard NamedNamespaces().exists(name) else { throw CLIError("no sandbox '\(name)' on this host") }
        // `ip netns exec` also bind-mounts /etc/netns/NAME/{hosts,resolv.conf} for the command.
        let arguments = ["ip", "netns", "exec", name] + command
        var argv = arguments.map { strdup($0) } + [nil]
        execvp("ip", &argv)
        throw CLIError("cannot run ip: \(String(cString: strerror(errno)))")
    }
}
