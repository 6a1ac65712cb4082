import CShim
import Foundation
import Logging
import Synchronization

/// Listens on the control socket (mode 0600, so only root connects) and hands each request to
/// `handle` on a thread of its own; a slow request never blocks the others.
///
/// No client can stop or wedge it: a client that hangs up before its reply gets EPIPE, not a
/// signal; one that never sends, or never reads, is cut off after `clientTimeout`; past
/// `maxClients` connections at once a newcomer is told the daemon is busy; and when the process
/// runs out of file descriptors the accept loop backs off and tries again instead of ending.
final class ControlServer: @unchecked Sendable {
    private let fd: Int32
    let path: String
    private let logger: Logger
    private let stopped = Atomic<Bool>(false)
    private let active = Atomic<Int>(0)

    /// How long a client may take to send its request, or to take its reply.
    static let clientTimeoutSeconds = 5
    static let maxClients = 128

    init(path: String, logger: Logger) throws {
        self.path = path
        self.logger = logger
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        unlink(path)
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw CLIError("control socket: errno \(errno)") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in Array(path.utf8).enumerated() where i < raw.count - 1 { raw[i] = b }
        }
        let old = umask(0o077)
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        umask(old)
        guard rc == 0, chmod(path, Self.socketMode) == 0, listen(fd, 64) == 0 else {
            close(fd)
            throw CLIError("cannot listen on \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// 0600; `DNSD_TEST_SOCKET_MODE` (octal) widens it for the test that proves the peer-uid
    /// check refuses a non-root client on its own.
    private static var socketMode: mode_t {
        ProcessInfo.processInfo.environment["DNSD_TEST_SOCKET_MODE"].flatMap { mode_t($0, radix: 8) } ?? 0o600
    }

    func serve(_ handle: @escaping @Sendable (ControlRequest) -> ControlReply) {
        let thread = Thread { [self] in
            var outOfDescriptors = false
            while !stopped.load(ordering: .acquiring) {
                let client = accept(fd, nil, nil)
                if client < 0 {
                    let error = errno
                    if stopped.load(ordering: .acquiring) { return }
                    switch error {
                    case EINTR, ECONNABORTED, EPROTO:
                        continue
                    case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                        // Out of descriptors or memory: the pending client waits in the backlog
                        // until something is closed. Logged once per episode.
                        if !outOfDescriptors {
                            logger.error("control socket: cannot accept (\(String(cString: strerror(error)))); retrying every 100 ms")
                            outOfDescriptors = true
                        }
                        usleep(100_000)
                        continue
                    default:
                        logger.error("control socket: accept failed (\(String(cString: strerror(error)))); retrying")
                        usleep(100_000)
                        continue
                    }
                }
                if outOfDescriptors {
                    logger.info("control socket: accepting again")
                    outOfDescriptors = false
                }
                _ = fcntl(client, F_SETFD, FD_CLOEXEC)
                serveClient(client, handle)
            }
        }
        thread.name = "dnsd-control"
        thread.start()
    }

    private func serveClient(_ client: Int32, _ handle: @escaping @Sendable (ControlRequest) -> ControlReply) {
        var timeout = timeval(tv_sec: Self.clientTimeoutSeconds, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        guard active.add(1, ordering: .acquiringAndReleasing).newValue <= Self.maxClients else {
            reply(client, ControlReply(ok: false, error: "the daemon is busy (\(Self.maxClients) clients connected); try again"))
            close(client)
            active.subtract(1, ordering: .acquiringAndReleasing)
            return
        }
        Thread.detachNewThread { [self] in
            defer {
                close(client)
                active.subtract(1, ordering: .acquiringAndReleasing)
            }
            // Root only: the socket is 0600 already; peer credentials make it explicit.
            guard dnsd_peer_uid(client) == 0 else {
                reply(client, ControlReply(ok: false, error: "only root may control dnsd"))
                return
            }
            guard let data = readRequest(client) else { return }
            guard let request = try? JSONDecoder().decode(ControlRequest.self, from: data) else {
                reply(client, ControlReply(ok: false, error: "malformed request"))
                return
            }
            reply(client, handle(request))
        }
    }

    /// The request line, or nil when the client sent nothing in time or hung up first.
    private func readRequest(_ client: Int32) -> Data? {
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while data.count < 1 << 20 {
            let n = buffer.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
            if n < 0, errno == EINTR { continue }
            if n <= 0 { break }
            data.append(contentsOf: buffer[0..<n])
            if data.last == UInt8(ascii: "\n") { break }
        }
        return data.isEmpty ? nil : data
    }

    /// Sends the whole reply, or gives up when the client is gone or stopped reading.
    private func reply(_ client: Int32, _ reply: ControlReply) {
        guard let data = try? JSONEncoder().encode(reply) else { return }
        data.withUnsafeBytes { bytes in
            var sent = 0
            while sent < bytes.count {
                let n = send(client, bytes.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL))
                if n > 0 { sent += n; continue }
                if n < 0, errno == EINTR { continue }
                logger.debug("control client left before its reply: \(String(cString: strerror(errno)))")
                return
            }
        }
    }

    /// Stops accepting; requests already accepted go on (see `waitForClients`).
    func stop() {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        // shutdown wakes the accept() blocked on another thread; close alone would not.
        shutdown(fd, Int32(SHUT_RDWR))
        Glibc.close(fd)
        unlink(path)
    }

    /// Waits up to `seconds` for the clients being served to get their replies.
    func waitForClients(seconds: Double) {
        let deadline = Date().addingTimeInterval(seconds)
        while active.load(ordering: .acquiring) > 0, Date() < deadline { usleep(5000) }
    }
}
