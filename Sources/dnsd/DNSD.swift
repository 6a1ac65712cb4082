import ArgumentParser
import BuildInfo
import CommandLineSupport

/// The `dnsd` command: the client commands, run in this small process (it starts in a few
/// milliseconds), and the servers (`daemon`, `serve-dns`), which this process hands to
/// `dnsd-daemon`, installed beside it, by exec: same process, same arguments.
@main
struct DNSD: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dnsd",
        abstract: "Container names across hosts: an overlay network with an embedded DNS responder.",
        discussion: """
            dnsd joins containers (network namespaces) on many hosts into VXLAN overlay networks and \
            answers their names at 127.0.0.11 inside each one. Every host runs `dnsd daemon` against \
            one shared store (etcd, Consul, or a local one for a single host); the other commands \
            talk to this host's daemon over its control socket (/run/dnsd/dnsd.sock, or $DNSD_SOCK).
            """,
        version: BuildInfo.line,
        subcommands: [DaemonCommand.self, NetworkCommand.self, RunCommand.self, StopCommand.self, RemoveCommand.self,
                      PsCommand.self, InspectCommand.self, EventsCommand.self, ExecCommand.self, AttachCommand.self, CNICommand.self, DockerCommand.self,
                      ServeDNSCommand.self, VersionCommand.self]
    )

    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if let first = arguments.first, ServerCommands.names.contains(first) { ServerCommands.exec(arguments) }
        mainWithOneLineErrors(arguments)
    }
}

/// `dnsd version`: this build's version, git commit and build date.
struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "version", abstract: "Print dnsd's version, git commit and build date.")

    func run() throws { print(BuildInfo.line) }
}
