import ArgumentParser
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
            dnsd joins containers (network namespaces) on many hosts into VXLAN overlay networks and
            answers their names at 127.0.0.11 inside each one.
            """,
        subcommands: [DaemonCommand.self, NetworkCommand.self, RunCommand.self, StopCommand.self, RemoveCommand.self,
                      PsCommand.self, InspectCommand.self, EventsCommand.self, ExecCommand.self, AttachCommand.self, CNICommand.self, DockerCommand.self,
                      ServeDNSCommand.self]
    )

    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if let first = arguments.first, ServerCommands.names.contains(first) { ServerCommands.exec(arguments) }
        mainWithOneLineErrors(arguments)
    }
}
