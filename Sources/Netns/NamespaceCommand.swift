import Foundation

/// Runs a one-off command inside a network namespace (`nsenter --net=PATH`, no mount namespace
/// of its own), feeding it `input`. For set-up steps such as loading an nftables ruleset; never
/// on a hot path.
public enum NamespaceCommand {
    public struct Failed: Error, CustomStringConvertible {
        public var command: String
        public var message: String
        public var description: String { "\(command): \(message)" }
    }

    /// `namespacePath` nil means the caller's own namespace.
    public static func run(_ arguments: [String], in namespacePath: String?, input: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/nsenter")
        process.arguments = ["--net=\(namespacePath ?? "/proc/self/ns/net")"] + arguments
        let stdin = Pipe(), stderr = Pipe()
        process.standardInput = stdin
        process.standardError = stderr
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        stdin.fileHandleForWriting.write(Data(input.utf8))
        try stdin.fileHandleForWriting.close()
        let message = stderr.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw Failed(command: arguments.joined(separator: " ") + " in \(namespacePath ?? "the host namespace")",
                         message: String(decoding: message, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }
}
