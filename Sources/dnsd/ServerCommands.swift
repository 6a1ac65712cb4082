import ArgumentParser
import CommandLineSupport
import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// `dnsd daemon` and `dnsd serve-dns` live in `dnsd-daemon` (SwiftNIO, metrics, the whole core:
/// ~5.6 ms to start, against ~2.5 ms for this client): `dnsd` execs it with the same arguments,
/// so the daemon's pid is the one the user started. These entries are for `dnsd --help`; the
/// options and `dnsd daemon --help` are dnsd-daemon's.
enum ServerCommands {
    static let names: Set<String> = ["daemon", "serve-dns"]

    /// Replaces this process with dnsd-daemon (beside this executable) and `arguments`.
    static func exec(_ arguments: [String]) -> Never {
        var path = [CChar](repeating: 0, count: 4096)
        let length = readlink("/proc/self/exe", &path, path.count - 1)
        let directory = length > 0 ? String(decoding: path[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
        let daemon = String(directory[..<(directory.lastIndex(of: "/") ?? directory.startIndex)]) + "/dnsd-daemon"
        let argv: [UnsafeMutablePointer<CChar>?] = (["dnsd"] + arguments).map { strdup($0) } + [nil]
        execv(daemon, argv)
        let line = "Error: cannot start \(daemon) (\(String(cString: strerror(errno)))): it is built and installed beside dnsd\n"
        _ = Array(line.utf8).withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
        exit(1)
    }
}

struct DaemonCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "daemon", abstract: "Run the per-host daemon: overlay networks, names, DNS at 127.0.0.11, hosts files.")
    @Argument(parsing: .captureForPassthrough) var arguments: [String] = []
    func run() throws { ServerCommands.exec(["daemon"] + arguments) }
}

struct ServeDNSCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve-dns", abstract: "Serve DNS at 127.0.0.11 inside network namespaces from a records file.")
    @Argument(parsing: .captureForPassthrough) var arguments: [String] = []
    func run() throws { ServerCommands.exec(["serve-dns"] + arguments) }
}
