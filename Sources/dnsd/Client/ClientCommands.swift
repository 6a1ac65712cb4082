import Addressing
import ArgumentParser
import ClusterRecords
import CommandLineSupport
import ControlAPI
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// `--sock` for the client commands, and the calls they make to the daemon's HTTP API.
struct SocketOption: ParsableArguments {
    @Option(help: "The daemon's control socket (env DNSD_SOCK).")
    var sock: String = ProcessInfo.processInfo.environment["DNSD_SOCK"] ?? APIClient.defaultPath

    /// One API call; the decoded answer, or the daemon's refusal thrown as its one line.
    func call<Body, Reply>(_ call: APICall<Body, Reply>) throws -> Reply {
        let response = try APIClient.request(call, socket: sock)
        guard (200..<300).contains(response.status) else {
            throw CLIError(APIClient.errorMessage(response.body) ?? "the daemon answered \(response.status)")
        }
        do { return try JSONDecoder().decode(Reply.self, from: response.body) } catch {
            throw CLIError("the daemon's answer was not understood: \(error)")
        }
    }
}

/// The text the CLI prints for a sandbox: its name, then `network:interface=address` each.
func describe(_ sandbox: SandboxInfo) -> String {
    let networks = sandbox.attachments.map { "\($0.network):\($0.interface)=\($0.address)" + ($0.address6.map { ",\($0)" } ?? "") }
    return column(sandbox.name, 16) + " " + networks.joined(separator: " ")
}

/// `text` padded to `width`, never cut: a long name (a runtime's container) stays whole.
func column(_ text: String, _ width: Int) -> String {
    text.count < width ? text + String(repeating: " ", count: width - text.count) : text
}

/// JSON for people: indented, keys sorted.
func prettyJSON(_ value: some Encodable) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    return String(decoding: try encoder.encode(value), as: UTF8.self)
}

struct NetworkCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "network", abstract: "Create, list, inspect and remove networks.",
        subcommands: [Create.self, List.self, Inspect.self, Remove.self, Connect.self, Disconnect.self])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "create",
            abstract: "Create a network (overlay: cluster-wide; bridge: on this host).",
            discussion: """
                An overlay network may be dual-stack (one IPv4 and one IPv6 --subnet: every endpoint \
                gets an address of each, and its names answer A and AAAA) or IPv6-only (one IPv6 \
                --subnet).

                Example: dnsd network create --driver=overlay --subnet=192.168.0.0/24 --subnet=fd00:db8:1::/64 vnet
                """)
        @Option(help: "overlay or bridge.") var driver: String = "overlay"
        @Option(help: "Subnet in CIDR form: IPv4, IPv6 (an overlay), or one of each (dual-stack).") var subnet: [String] = []
        @Option(help: "Gateway of a subnet (default: the subnet's first address); one per family.") var gateway: [String] = []
        @Argument(help: "Network name.") var name: String
        @OptionGroup var socket: SocketOption

        func validate() throws {
            guard !subnet.isEmpty else { throw ValidationError("Missing expected argument '--subnet <subnet>'") }
            guard subnet.filter({ !$0.contains(":") }).count <= 1, subnet.filter({ $0.contains(":") }).count <= 1 else {
                throw ValidationError("at most one --subnet per address family (one IPv4, one IPv6)")
            }
            guard gateway.filter({ !$0.contains(":") }).count <= 1, gateway.filter({ $0.contains(":") }).count <= 1 else {
                throw ValidationError("at most one --gateway per address family")
            }
        }

        func run() throws {
            // The daemon checks each value; here they are only sorted by family (a colon is IPv6).
            let v4 = subnet.first { !$0.contains(":") }, v6 = subnet.first { $0.contains(":") }
            let creation = NetworkCreation(name: name, driver: driver, subnet: v4 ?? v6 ?? "", gateway: gateway.first { !$0.contains(":") },
                                           subnet6: v4 == nil ? nil : v6, gateway6: gateway.first { $0.contains(":") })
            let record = try socket.call(API.createNetwork(creation))
            print("\(record.name) \(record.driver.rawValue) \(record.subnets)" + (record.driver == .overlay ? " vni \(record.vni)" : ""))
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List the cluster's networks.")
        @OptionGroup var socket: SocketOption
        func run() throws {
            let rows = try socket.call(API.listNetworks()).map {
                "\(column($0.name, 16)) \(column($0.driver.rawValue, 8)) \($0.subnets)"
            }
            print((["NAME             DRIVER   SUBNET"] + rows).joined(separator: "\n"))
        }
    }

    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "inspect", abstract: "Show a network and its endpoints as JSON.")
        @Argument var name: String
        @OptionGroup var socket: SocketOption
        func run() throws { print(try prettyJSON(try socket.call(API.inspectNetwork(name)))) }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove a network without endpoints.")
        @Argument var name: String
        @OptionGroup var socket: SocketOption
        func run() throws { print(try socket.call(API.removeNetwork(name)).name) }
    }

    struct Connect: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "connect",
            abstract: "Attach a running sandbox to a network (next ethN).",
            discussion: "Example: dnsd network connect vnet c01")
        @Option(name: .customLong("alias"), help: "Extra name on this network (repeatable).") var aliases: [String] = []
        @Option(help: "IPv4 address to use on the network.") var ip: String?
        @Option(help: "IPv6 address to use on a dual-stack network.") var ip6: String?
        @Argument(help: "Network name.") var network: String
        @Argument(help: "Sandbox name.") var name: String
        @OptionGroup var socket: SocketOption
        func run() throws {
            print(describe(try socket.call(API.connect(name, NetworkConnection(network: network, aliases: aliases, ip: ip, ip6: ip6)))))
        }
    }

    struct Disconnect: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "disconnect", abstract: "Detach a sandbox from a network.")
        @Argument var network: String
        @Argument var name: String
        @OptionGroup var socket: SocketOption
        func run() throws { print(describe(try socket.call(API.disconnect(name, from: network)))) }
    }
}

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Create a sandbox (network namespace NAME, visible to `ip netns`) and attach it.",
        discussion: """
            Without --net the sandbox's eth0 is on the host's default bridge (nameless, like docker0). \
            With --net=NET, eth0 is on NET and, for an overlay, eth1 on the gateway bridge with the \
            default route. Names and aliases resolve as NAME and NAME.NET on every host.

            Example: dnsd run --name=c02 --hostname=c02 --net=vnet
            """)
    @Option var name: String
    @Option var hostname: String?
    @Option var net: String?
    @Option(name: .customLong("alias"), help: "Extra name (repeatable).") var aliases: [String] = []
    @Option(help: "IPv4 address on --net.") var ip: String?
    @Option(help: "IPv6 address on --net (a dual-stack network).") var ip6: String?
    @OptionGroup var socket: SocketOption
    func run() throws {
        print(describe(try socket.call(API.run(SandboxCreation(name: name, hostname: hostname, network: net, aliases: aliases, ip: ip, ip6: ip6)))))
    }
}

struct AttachCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attach", abstract: "Adopt a network namespace made by a container runtime and attach it to a network.",
        discussion: """
            dnsd adds the next ethN on NET, publishes NAME (and aliases) cluster-wide, keeps the given \
            hosts file in sync (the runtime's own /etc/hosts for the container, or /etc/netns/NAME/hosts), \
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
        print(describe(try socket.call(API.attach(SandboxAdoption(name: name, netns: netns, network: net, hostsFile: hostsFile,
                                                                  aliases: aliases)))))
    }
}

struct StopCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stop", abstract: "Stop a sandbox: its names vanish everywhere, its namespace is removed.")
    @Argument var name: String
    @OptionGroup var socket: SocketOption
    func run() throws { print(try socket.call(API.stop(name)).name) }
}

struct RemoveCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove a sandbox (stopping it if it runs).")
    @Argument var name: String
    @OptionGroup var socket: SocketOption
    func run() throws { print(try socket.call(API.remove(name)).name) }
}

struct PsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ps", abstract: "List this host's sandboxes.")
    @OptionGroup var socket: SocketOption
    func run() throws {
        let rows = try socket.call(API.listSandboxes()).map(describe)
        print((["NAME             NETWORKS"] + rows).joined(separator: "\n"))
    }
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
        var status = stat()
        guard stat("/run/netns/\(name)", &status) == 0 else { throw CLIError("no sandbox '\(name)' on this host") }
        // `ip netns exec` also bind-mounts /etc/netns/NAME/{hosts,resolv.conf} for the command.
        let arguments = ["ip", "netns", "exec", name] + command
        var argv = arguments.map { strdup($0) } + [nil]
        execvp("ip", &argv)
        throw CLIError("cannot run ip: \(String(cString: strerror(errno)))")
    }
}

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect", abstract: "Show one sandbox: interfaces, addresses, networks, files, and what its resolver answers.")
    @Argument var name: String
    @OptionGroup var socket: SocketOption
    func run() throws {
        struct Inspection: Encodable { var sandbox: SandboxInfo; var dns: DNSView }
        let sandbox = try socket.call(API.inspectSandbox(name))
        let dns = try socket.call(API.dnsView(name))
        print(try prettyJSON(Inspection(sandbox: sandbox, dns: dns)))
    }
}

struct EventsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events", abstract: "Follow the changes the daemon applies (one JSON line each) until interrupted.")
    @OptionGroup var socket: SocketOption
    func run() throws {
        var dropped: String?
        try APIClient.stream(APIRoute.events.path(), socket: socket.sock) { line in
            // The daemon's last word when it drops a follower: said as an error, not as an event.
            if let reason = APIClient.errorMessage(line) {
                dropped = reason
                return
            }
            var bytes = Array(line)
            bytes.append(UInt8(ascii: "\n"))
            _ = bytes.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
        }
        // A stream only ends when the daemon ends it: stopping, or dropping this reader.
        throw CLIError(dropped ?? "the daemon ended the events stream (it is stopping, or this reader fell too far behind)")
    }
}

