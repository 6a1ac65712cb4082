import ArgumentParser
import ClusterRecords
import CommandLineSupport
import ControlAPI

/// `dnsd docker dns-args NET`: the one flag a Docker container on a dnsd network needs for names
/// on other hosts: Docker's own resolver (127.0.0.11) forwards what it does not know to the
/// `--dns` servers, and dnsd answers at the network's gateway.
struct DockerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "docker", abstract: "Help Docker containers use dnsd networks.", subcommands: [DNSArgs.self])

    struct DNSArgs: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "dns-args", abstract: "Print the docker run flag that sends names Docker does not know to dnsd.",
            discussion: "Example: docker run $(dnsd docker dns-args vnet) --network vnet IMAGE ...")
        @Argument(help: "The dnsd network.") var network: String
        @OptionGroup var socket: SocketOption

        func run() throws {
            let detail = try socket.call(API.inspectNetwork(network))
            guard detail.network.driver == .overlay else {
                throw CLIError("'\(network)' is not an overlay network: Docker uses dnsd's overlay networks")
            }
            guard !detail.network.gateway.isEmpty else {
                throw CLIError("'\(network)' is IPv6-only: Docker 20.10 networks need an IPv4 subnet")
            }
            print("--dns \(detail.network.gateway)")
        }
    }
}
