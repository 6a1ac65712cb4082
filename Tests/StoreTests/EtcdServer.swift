import Foundation
import TestSupport

/// A real etcd (Debian's etcd-server) on loopback with free ports and a temporary data
/// directory; `stop()` kills it and removes the directory.
final class EtcdServer: @unchecked Sendable {
    let clientPort: UInt16
    let directory: String
    private var process: ChildProcess?

    var endpoint: String { "127.0.0.1:\(clientPort)" }

    init() throws {
        clientPort = try Self.freePort()
        let peerPort = try Self.freePort()
        directory = TestRun.temporaryPath("etcd")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        process = try ChildProcess([
            "etcd", "--name", "t", "--data-dir", directory + "/data",
            "--listen-client-urls", "http://127.0.0.1:\(clientPort)", "--advertise-client-urls", "http://127.0.0.1:\(clientPort)",
            "--listen-peer-urls", "http://127.0.0.1:\(peerPort)", "--initial-advertise-peer-urls", "http://127.0.0.1:\(peerPort)",
            "--initial-cluster", "t=http://127.0.0.1:\(peerPort)", "--election-timeout", "200", "--heartbeat-interval", "20",
            "--logger", "zap", "--log-level", "error",
        ], output: directory + "/etcd.log")
        for _ in 0..<300 {
            if let result = try? Shell.run(["curl", "-s", "-m", "1", "http://\(endpoint)/health"]), result.stdout.contains("true") { return }
            usleep(20_000)
        }
        stop()
        throw ShellError(command: "etcd", status: -1, stderr: "etcd did not become healthy")
    }

    func stop() {
        process?.stop()
        process = nil
        try? FileManager.default.removeItem(atPath: directory)
    }

    deinit { stop() }

    static func freePort() throws -> UInt16 { try Ports.free() }
}
