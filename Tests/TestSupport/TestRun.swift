import Foundation

/// This test process's run: a token no other run shares, in the name of every namespace,
/// link, file and directory the tests make, and a record of what they made, so that a sweep
/// after a killed run removes exactly what that run left (its namespaces, files, links and
/// processes) and nothing of a run or benchmark still going.
///
/// The record lives in `/tmp/dnsdt-runs/TOKEN/`: `owner` (the test process's pid and start
/// time), `pids` (every long-running child, with its start time, so a reused pid is never
/// killed), `links` (links made in the machine's own namespace). `scripts/sweep-test-runs.sh`
/// reads them: run by `make test` before and after, and by a watcher each test process starts,
/// as soon as that process is gone.
public enum TestRun {
    /// Six random lower-case letters and digits.
    public static let token: String = {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789")
        var generator = SystemRandomNumberGenerator()
        return String((0..<6).map { _ in alphabet[Int.random(in: 0..<alphabet.count, using: &generator)] })
    }()

    /// The start of every namespace name a fixture makes.
    public static var namePrefix: String { "dnsdt-\(token)-" }

    public static var directory: String { "/tmp/dnsdt-runs/\(token)" }

    /// A temporary path for `what`, carrying the token.
    public static func temporaryPath(_ what: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("dnsdt-\(what)-\(token)-\(UUID().uuidString.prefix(8))").path
    }

    private static let lock = NSLock()
    private static let started: Void = {
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        append("owner", "\(getpid()) \(startTime(getpid()) ?? 0)")
        startWatcher()
    }()

    /// A watcher in a session of its own that outlives this process and, once it is gone
    /// (finished, crashed or killed), runs the sweep: a run that dies takes its children,
    /// namespaces and files with it at once, not at the next `make test`.
    private static func startWatcher() {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("scripts/sweep-test-runs.sh").path
        guard FileManager.default.isExecutableFile(atPath: script) else { return }
        let watch = "while kill -0 \(getpid()) 2>/dev/null; do sleep 1; done; exec \(script) >/dev/null 2>&1"
        var attributes = ChildProcess.cleanAttributes()
        defer { posix_spawnattr_destroy(&attributes) }
        var flags: Int16 = 0
        posix_spawnattr_getflags(&attributes, &flags)
        // POSIX_SPAWN_SETSID (0x80, glibc, needs _GNU_SOURCE): not in a session a signal to ours reaches.
        posix_spawnattr_setflags(&attributes, flags | 0x80)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for fd: Int32 in [0, 1, 2] { posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", O_RDWR, 0) }
        let words: [String] = ["/bin/sh", "-c", watch]
        var argv: [UnsafeMutablePointer<CChar>?] = words.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        _ = posix_spawn(&pid, "/bin/sh", &actions, &attributes, &argv, environ)
    }

    /// Records a long-running child (killed by the sweep if the run dies first).
    public static func record(pid: pid_t) {
        _ = started
        append("pids", "\(pid) \(startTime(pid) ?? 0)")
    }

    /// Records a link made in the machine's own namespace.
    public static func record(link: String) {
        _ = started
        append("links", link)
    }

    private static func append(_ file: String, _ line: String) {
        lock.withLock {
            let fd = open(directory + "/" + file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
            guard fd >= 0 else { return }
            _ = Array((line + "\n").utf8).withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            close(fd)
        }
    }

    /// A process's start time in clock ticks since boot (field 22 of /proc/PID/stat).
    static func startTime(_ pid: pid_t) -> UInt64? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 19 ? UInt64(fields[19]) : nil
    }
}
