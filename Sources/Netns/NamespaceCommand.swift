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
        let message = readUntilExit(stderr.fileHandleForReading.fileDescriptor, of: process)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw Failed(command: arguments.joined(separator: " ") + " in \(namespacePath ?? "the host namespace")",
                         message: String(decoding: message, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }

    /// What the command writes to `fd` until it exits. Not until end of file: a process that
    /// inherited the pipe's write end (a child another thread spawned at that moment) can hold it
    /// open for as long as it lives, and the reader would wait for it (seen: a test run hung).
    private static func readUntilExit(_ fd: Int32, of process: Process) -> Data {
        var message = Data()
        var buffer = [UInt8](repeating: 0, count: 4096)
        var exited = false
        while true {
            var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            // Once the command has exited, only what is already in the pipe is read.
            let ready = poll(&entry, 1, exited ? 0 : 50)
            if ready > 0 {
                let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if count > 0 {
                    message.append(contentsOf: buffer[0..<count])
                    continue
                }
                if count == 0 || errno != EINTR { return message }
                continue
            }
            if ready < 0, errno == EINTR { continue }
            if exited { return message }
            exited = !process.isRunning
        }
    }
}
