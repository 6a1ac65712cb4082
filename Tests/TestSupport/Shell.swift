import Foundation

/// Runs a command and collects its output (test set-up, dig, getent, ping).
///
/// posix_spawn with the signal mask and dispositions reset, not Foundation.Process: threads of
/// a Swift process block most signals and children inherit the mask, so e.g. `busybox ping -W`
/// (which waits with SIGALRM) would hang for ever.
public struct Shell {
    public struct Result {
        public var status: Int32
        public var stdout: String
        public var stderr: String
    }

    /// How long any command may run before it is killed and the call fails (a hang fails its
    /// test instead of hanging CI).
    public static let defaultTimeout: Double = 120

    @discardableResult
    public static func run(_ arguments: [String], input: String? = nil, timeout: Double = defaultTimeout) throws -> Result {
        var outPipe: [Int32] = [0, 0], errPipe: [Int32] = [0, 0], inPipe: [Int32] = [0, 0]
        // Pipes made and spawned under one lock, close-on-exec: a child spawned by another thread
        // at the same moment must not inherit this one's pipe ends (it would hold this call's
        // output open until it exits). The spawn's dup2 onto 0, 1 and 2 clears the flag there.
        spawnLock.lock()
        guard pipe(&outPipe) == 0, pipe(&errPipe) == 0, pipe(&inPipe) == 0 else {
            spawnLock.unlock()
            throw ShellError(command: arguments.joined(separator: " "), status: -1, stderr: "pipe failed")
        }
        for fd in inPipe + outPipe + errPipe { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, inPipe[0], 0)
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        for fd in inPipe + outPipe + errPipe { posix_spawn_file_actions_addclose(&actions, fd) }
        var attributes = ChildProcess.cleanAttributes()
        defer { posix_spawnattr_destroy(&attributes) }
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawnp(&pid, arguments[0], &actions, &attributes, &argv, environ)
        close(inPipe[0]); close(outPipe[1]); close(errPipe[1])
        spawnLock.unlock()
        guard rc == 0 else {
            close(inPipe[1]); close(outPipe[0]); close(errPipe[0])
            throw ShellError(command: arguments.joined(separator: " "), status: rc, stderr: "posix_spawn: \(String(cString: strerror(rc)))")
        }
        if let input { _ = Array(input.utf8).withUnsafeBytes { write(inPipe[1], $0.baseAddress, $0.count) } }
        close(inPipe[1])
        // Read both pipes until both close, so a chatty child never blocks on a full pipe.
        var out: [UInt8] = [], err: [UInt8] = []
        var fds = [pollfd(fd: outPipe[0], events: Int16(POLLIN), revents: 0), pollfd(fd: errPipe[0], events: Int16(POLLIN), revents: 0)]
        var open = 2
        var buffer = [UInt8](repeating: 0, count: 65536)
        let deadline = Date().addingTimeInterval(timeout)
        var timedOut = false
        while open > 0 {
            let left = deadline.timeIntervalSinceNow
            if left <= 0 {
                timedOut = true
                kill(pid, SIGKILL)
                for i in 0..<2 where fds[i].fd >= 0 { close(fds[i].fd) }
                break
            }
            let ready = poll(&fds, 2, Int32(min(left, 1) * 1000) + 1)
            if ready < 0 { if errno == EINTR { continue }; break }
            if ready == 0 { continue }
            for i in 0..<2 where fds[i].fd >= 0 && fds[i].revents != 0 {
                let n = buffer.withUnsafeMutableBytes { read(fds[i].fd, $0.baseAddress, $0.count) }
                if n > 0 {
                    if i == 0 { out += buffer[0..<n] } else { err += buffer[0..<n] }
                } else if n == 0 || errno != EINTR {
                    close(fds[i].fd)
                    fds[i].fd = -1
                    open -= 1
                }
            }
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        if timedOut {
            throw ShellError(command: arguments.joined(separator: " "), status: -1, stderr: "timed out after \(Int(timeout)) s (killed)")
        }
        let code: Int32 = (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
        return Result(status: code, stdout: String(decoding: out, as: UTF8.self), stderr: String(decoding: err, as: UTF8.self))
    }

    /// Runs and requires exit status 0.
    @discardableResult
    public static func check(_ arguments: [String], input: String? = nil, timeout: Double = defaultTimeout) throws -> String {
        let result = try run(arguments, input: input, timeout: timeout)
        guard result.status == 0 else {
            throw ShellError(command: arguments.joined(separator: " "), status: result.status, stderr: result.stderr)
        }
        return result.stdout
    }
}

public struct ShellError: Error, CustomStringConvertible {
    public var command: String
    public var status: Int32
    public var stderr: String
    public init(command: String, status: Int32, stderr: String) {
        self.command = command
        self.status = status
        self.stderr = stderr
    }
    public var description: String { "\(command) exited \(status): \(stderr)" }
}

/// Held while a test process makes a child's pipes and spawns it (`Shell.run`, `ChildProcess`):
/// no child is ever spawned between another's `pipe()` and its close-on-exec.
let spawnLock = NSLock()
