import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif

/// One clear line on stderr and a non-zero exit.
public struct CLIError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

extension ParsableCommand {
    /// Like ArgumentParser's `main`, but a refusal is exactly one line on stderr (the contract in
    /// DESIGN.md §2): ArgumentParser would add the usage text to a bad flag or a missing argument.
    /// `--help` and `--version` still print in full. For the root command of each executable.
    public static func mainWithOneLineErrors(_ arguments: [String] = Array(CommandLine.arguments.dropFirst())) -> Never {
        let command: ParsableCommand
        do {
            command = try parseAsRoot(arguments)
        } catch {
            failWithOneLine(error, hint: helpHint(for: arguments))
        }
        do {
            var command = command
            try command.run()
        } catch {
            failWithOneLine(error, hint: nil)
        }
        Glibc.exit(0)
    }

    /// Ends the process as `mainWithOneLineErrors` would for `error` (one line, its exit code),
    /// for a refusal found before parsing (e.g. a configuration file read into the arguments).
    public static func exitWithOneLine(_ error: Error) -> Never { failWithOneLine(error, hint: nil) }

    private static func failWithOneLine(_ error: Error, hint: String?) -> Never {
        let code = exitCode(for: error)
        if code == .success { exit(withError: error) }  // --help, --version: full output
        let message = message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
        let line = "Error: " + message + (hint.map { " (see '\($0)')" } ?? "") + "\n"
        _ = Array(line.utf8).withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
        Glibc.exit(code.rawValue == 0 ? 1 : code.rawValue)
    }

    /// `dnsd network create --help` for `dnsd network create --bogus ...`: the subcommand words
    /// that precede the first flag or argument that is not one.
    private static func helpHint(for arguments: [String]) -> String {
        var words = [configuration.commandName ?? "dnsd"]
        var commands: [ParsableCommand.Type] = configuration.subcommands
        for argument in arguments {
            guard let next = commands.first(where: { $0._commandName == argument }) else { break }
            words.append(argument)
            commands = next.configuration.subcommands
        }
        return (words + ["--help"]).joined(separator: " ")
    }
}
