import ArgumentParser
import BuildInfo
import CommandLineSupport
#if canImport(Glibc)
import Glibc
#endif

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
                let line = "Error: \(error)\n"
                _ = Array(line.utf8).withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
                Glibc.exit(64)
            }
        }
        mainWithOneLineErrors(arguments)
    }
}
