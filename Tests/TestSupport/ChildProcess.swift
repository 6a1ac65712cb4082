import Foundation

/// A long-running child started with posix_spawn and stopped with SIGTERM.
///
/// Not Foundation.Process: dnsmasq closes every inherited descriptor at start-up, including the
/// one Foundation watches to notice a child's exit, and Foundation then blocks its one
/// monitoring thread in waitpid, so no other Process in the test run is ever reaped.
public final class ChildProcess {
    public let pid: pid_t
    private var reaped = false
    /// The raw wait status once the child was reaped here (nil if it runs, or was reaped elsewhere).
    public private(set) var waitStatus: Int32?

    public init(_ arguments: [String], output: String = "/dev/null") throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var attributes = Self.cleanAttributes()
        defer { posix_spawnattr_destroy(&attributes) }
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = spawnLock.withLock { posix_spawnp(&pid, arguments[0], &actions, &attributes, &argv, environ) }
        guard rc == 0 else { throw ShellError(command: arguments.joined(separator: " "), status: rc, stderr: "posix_spawn failed") }
        self.pid = pid
        TestRun.record(pid: pid)
    }

    /// Spawn attributes with an empty signal mask and default dispositions: threads of a Swift
    /// process block most signals, and a spawned child inherits the mask (dnsmasq would ignore
    /// SIGTERM, busybox ping's -W timer would never fire).
    static func cleanAttributes() -> posix_spawnattr_t {
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGCHLD, SIGALRM, SIGQUIT, SIGUSR1, SIGUSR2] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        return attributes
    }

    public var isRunning: Bool {
        guard !reaped else { return false }
        var status: Int32 = 0
        let rc = waitpid(pid, &status, WNOHANG)
        if rc == pid || (rc < 0 && errno == ECHILD) {
            reaped = true
            if rc == pid { waitStatus = status }
            return false
        }
        return true
    }

    /// Waits up to `seconds` for the child to exit; true when it did.
    public func waitForExit(seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while isRunning {
            if Date() > deadline { return false }
            usleep(5000)
        }
        return true
    }

    /// How it ended, for messages: "exit N", "signal N" or "running".
    public var ending: String {
        guard let status = waitStatus else { return isRunning ? "running" : "reaped elsewhere" }
        return status & 0x7F == 0 ? "exit \((status >> 8) & 0xFF)" : "signal \(status & 0x7F)"
    }

    public func stop() {
        guard !reaped else { return }
        kill(pid, SIGTERM)
        var status: Int32 = 0
        for _ in 0..<200 {
            // ECHILD: something else in the process (Foundation) reaped it already.
            let rc = waitpid(pid, &status, WNOHANG)
            if rc == pid || (rc < 0 && errno == ECHILD) {
                reaped = true
                return
            }
            usleep(10_000)
        }
        kill(pid, SIGKILL)
        waitpid(pid, &status, 0)
        reaped = true
    }

    deinit { stop() }
}
