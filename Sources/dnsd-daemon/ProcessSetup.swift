import Foundation
import Logging

/// What a long-lived server process sets up before it serves: no signal from a write, and as
/// many file descriptors as the system lets it have.
enum ProcessSetup {
    /// A write to a socket or pipe whose reader went away returns EPIPE instead of killing the
    /// process with SIGPIPE (Swift on Linux does not ignore it). Every write path handles the
    /// error; a control client that hangs up early, a DNS client that resets its connection or
    /// a store that drops its connection can no longer stop the daemon. Only for servers: a
    /// disposition of "ignore" is inherited by programs they exec.
    static func ignoreBrokenPipes() {
        signal(SIGPIPE, SIG_IGN)
    }

    /// Raises the soft limit of open files to the hard limit: each sandbox costs the responder
    /// two listening sockets (plus its TCP clients), and the default soft limit (1024) would
    /// stop the daemon near 500 sandboxes. Returns the limit now in force.
    @discardableResult
    static func raiseFileLimit(logger: Logger) -> UInt64 {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 0 }
        let before = limit.rlim_cur
        guard limit.rlim_cur < limit.rlim_max else { return UInt64(before) }
        limit.rlim_cur = limit.rlim_max
        if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) != 0 {
            logger.warning("cannot raise the open-file limit", metadata: ["soft": "\(before)", "hard": "\(limit.rlim_max)",
                                                                           "error": "\(String(cString: strerror(errno)))"])
            return UInt64(before)
        }
        logger.debug("open-file limit raised", metadata: ["from": "\(before)", "to": "\(limit.rlim_cur)"])
        return UInt64(limit.rlim_cur)
    }
}
