import Foundation
import Testing
@testable import dnsd_daemon

/// `dnsd daemon --config FILE` (issue 23): the file's settings become flags placed before the
/// command line's, and a key the command line also sets is left out, so flags override the file
/// (for a list, `upstream`, too: the command line's list replaces the file's, it does not add).
@Suite("Daemon config file: keys to flags, flags override")
struct DaemonConfigFileTests {
    private func file(_ text: String) throws -> String {
        let path = NSTemporaryDirectory() + "dnsd-config-\(UUID().uuidString).json"
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test("every key becomes one --key=value word; a list one per item; the command line's keys are left out")
    func expands() throws {
        let path = try file("""
            {"store": "etcd://198.18.0.254:2379", "host-id": "h1", "lease-ttl": 7, "liveness-interval": 0.5,
             "upstream": ["192.0.2.1", "192.0.2.2"], "log-level": "info", "sock": "/run/a.sock"}
            """)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let expanded = try DaemonConfigFile.expand(["--config", path, "--sock", "/run/b.sock", "--upstream=192.0.2.9"])
        #expect(expanded == ["--host-id=h1", "--lease-ttl=7", "--liveness-interval=0.5", "--log-level=info",
                             "--store=etcd://198.18.0.254:2379", "--config", path, "--sock", "/run/b.sock", "--upstream=192.0.2.9"])
        #expect(try DaemonConfigFile.expand(["--store", "local"]) == ["--store", "local"], "no --config: unchanged")
    }

    @Test("a value that starts with '-' stays a value; the last --config counts, as the parser's")
    func edges() throws {
        let first = try file(#"{"lease-ttl": -5}"#), second = try file(#"{"store": "local"}"#)
        defer { for p in [first, second] { try? FileManager.default.removeItem(atPath: p) } }
        #expect(try DaemonConfigFile.expand(["--config", first]) == ["--lease-ttl=-5", "--config", first])
        #expect(try DaemonConfigFile.expand(["--config", first, "--config=\(second)"]) == ["--store=local", "--config", first, "--config=\(second)"])
    }

    @Test("unknown keys, wrong kinds and non-objects are refused with the file and the key named")
    func refusals() throws {
        for (text, expected) in [(#"{"stor": "local"}"#, "unknown key 'stor'"), (#"{"lease-ttl": "7"}"#, "'lease-ttl' must be a number"),
                                 (#"{"lease-ttl": true}"#, "'lease-ttl' must be a number"), (#"{"store": 1}"#, "'store' must be a string"),
                                 (#"{"upstream": ["a", 1]}"#, "'upstream' must be a list of strings"), (#"[1]"#, "expected one JSON object"),
                                 ("{", "expected one JSON object")] {
            let path = try file(text)
            defer { try? FileManager.default.removeItem(atPath: path) }
            do {
                _ = try DaemonConfigFile.expand(["--config", path])
                Issue.record("accepted \(text)")
            } catch {
                #expect("\(error)".contains(expected) && "\(error)".contains(path), "\(text): \(error)")
            }
        }
    }
}
