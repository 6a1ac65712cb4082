import ArgumentParser
import CommandLineSupport

/// `dnsd-daemon`: the servers, started by `dnsd daemon ...` and `dnsd serve-dns ...` (which exec
/// this binary with their arguments), or directly with the same arguments.
@main
struct DaemonMain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dnsd",
        abstract: "The dnsd servers: the per-host daemon and the standalone DNS responder.",
        subcommands: [DaemonCommand.self, ServeDNS.self]
    )

    static func main() { mainWithOneLineErrors() }
}
