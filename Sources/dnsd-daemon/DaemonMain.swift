import ArgumentParser
import BuildInfo
import CommandLineSupport

/// `dnsd-daemon`: the servers, started by `dnsd daemon ...` and `dnsd serve-dns ...` (which exec
/// this binary with their arguments), or directly with the same arguments.
@main
struct DaemonMain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dnsd",
        abstract: "The dnsd servers: the per-host daemon and the standalone DNS responder.",
        version: BuildInfo.line,
        subcommands: [DaemonCommand.self, ServeDNS.self]
    )

    /// `daemon --config FILE` first becomes the file's flags followed by the command line's.
    static func main() {
        var arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.first == "daemon" {
            do { arguments = ["daemon"] + (try DaemonConfigFile.expand(Array(arguments.dropFirst()))) } catch {
                exitWithOneLine(error)
            }
        }
        mainWithOneLineErrors(arguments)
    }
}
