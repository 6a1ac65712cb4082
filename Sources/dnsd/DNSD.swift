import ArgumentParser

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
                      PsCommand.self, ExecCommand.self, AttachCommand.self, ServeDNS.self]
    )
}
