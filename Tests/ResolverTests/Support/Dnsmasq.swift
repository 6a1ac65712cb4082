import Foundation
import TestSupport

/// A real dnsmasq as the upstream server, listening on loopback at a free port (or inside a
/// test namespace), with query logging so a test can tell what reached it.
final class Dnsmasq {
    let address: String
    let port: UInt16
    let logFile: String
    private let hostsFile: String
    private var process: ChildProcess?

    /// Names it knows: `outside.test` (one A), `big.test` (60 A records: over 512 bytes).
    /// Starts dnsmasq; a port another test grabbed in between (free-port races) or a slow
    /// start on a loaded machine gets a new port and another try, three in all.
    init(address: String = "127.0.0.1", netns: String? = nil) throws {
        self.address = address
        let dir = TestRun.temporaryPath("dnsmasq")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        logFile = dir + "/queries.log"
        hostsFile = dir + "/hosts"
        let big = (1...60).map { "203.0.113.\($0) big.test" }.joined(separator: "\n")
        try (big + "\n").write(toFile: hostsFile, atomically: true, encoding: .utf8)
        var lastCommand = ""
        for _ in 0..<3 {
            let port = try Self.freePort()
            var arguments = [
                "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
                "--user=root", "--pid-file=", "--bind-interfaces", "--listen-address=\(address)", "--port=\(port)",
                "--address=/outside.test/203.0.113.7", "--addn-hosts=\(hostsFile)",
                "--log-queries", "--log-facility=\(logFile)",
            ]
            if let netns { arguments = ["ip", "netns", "exec", netns] + arguments }
            lastCommand = arguments.joined(separator: " ")
            try? FileManager.default.removeItem(atPath: logFile)
            let process = try ChildProcess(arguments)
            // Ready when the log says so (dnsmasq logs its start-up line after binding).
            for _ in 0..<500 {
                if let log = try? String(contentsOfFile: logFile, encoding: .utf8), log.contains("started") {
                    self.port = port
                    self.process = process
                    return
                }
                guard process.isRunning else { break }
                usleep(10_000)
            }
            process.stop()
        }
        try? FileManager.default.removeItem(atPath: dir)
        throw ShellError(command: lastCommand, status: -1, stderr: "dnsmasq did not start")
    }

    /// Whether a query for `name` reached this server.
    func sawQuery(for name: String) -> Bool {
        let log = (try? String(contentsOfFile: logFile, encoding: .utf8)) ?? ""
        return log.split(separator: "\n").contains { $0.contains("query[") && $0.contains(" \(name) from") }
    }

    func stop() {
        process?.stop()
        process = nil
        try? FileManager.default.removeItem(atPath: (logFile as NSString).deletingLastPathComponent)
    }

    deinit { stop() }

    static func freePort() throws -> UInt16 { try Ports.free() }
}
