import ArgumentParser
import Foundation

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
                      PsCommand.self, InspectCommand.self, EventsCommand.self, ExecCommand.self, AttachCommand.self, CNICommand.self,
                      ServeDNS.self]
    )

    /// Like ArgumentParser's `main`, but a refusal is exactly one line on stderr (the contract in
    /// DESIGN.md §2): ArgumentParser would add the usage text to a bad flag or a missing argument.
    /// `--help` and `--version` still print in full.
    static func main() {
        let command: ParsableCommand
        do {
            command = try parseAsRoot()
        } catch {
            fail(error, hint: helpHint(for: CommandLine.arguments.dropFirst()))
        }
        do {
            var command = command
            try command.run()
        } catch {
            fail(error, hint: nil)
        }
    }

    private static func fail(_ error: Error, hint: String?) -> Never {
        let code = exitCode(for: error)
        if code == .success { exit(withError: error) }  // --help, --version: full output
        let message = message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
        let line = "Error: " + message + (hint.map { " (see '\($0)')" } ?? "") + "\n"
        FileHandle.standardError.write(Data(line.utf8))
        Foundation.exit(code.rawValue == 0 ? 1 : code.rawValue)
    }

    /// `dnsd network create --help` for `dnsd network create --bogus ...`: the subcommand words
    /// that precede the first flag or argument that is not one.
    private static func helpHint(for arguments: ArraySlice<String>) -> String {
        var words = ["dnsd"]
        var commands: [ParsableCommand.Type] = configuration.subcommands
        for argument in arguments {
            guard let next = commands.first(where: { $0._commandName == argument }) else { break }
            words.append(argument)
            commands = next.configuration.subcommands
        }
        return (words + ["--help"]).joined(separator: " ")
    }
}
