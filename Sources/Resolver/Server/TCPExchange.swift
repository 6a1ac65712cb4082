import CShim
import Netns
#if canImport(Glibc)
import Glibc
#endif

/// One blocking DNS-over-TCP exchange (RFC 7766 framing: a 16-bit length before each message),
/// bounded by a deadline for connect, send and receive together. Used off the serving thread
/// for the rare upstream retry over TCP after a truncated UDP answer.
enum TCPExchange {
    static func perform(_ message: [UInt8], with server: SocketAddress, timeoutMilliseconds: Int) throws -> [UInt8] {
        let deadline = Sockets.now() + UInt64(timeoutMilliseconds) * 1_000_000
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemCallError.last("socket(tcp)") }
        defer { close(fd) }
        var raw = server.sockaddr
        let rc = withUnsafePointer(to: &raw) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if rc != 0 {
            guard errno == EINPROGRESS else { throw SystemCallError.last("connect tcp \(server)") }
            try wait(fd, for: Int16(POLLOUT), until: deadline, what: "connect tcp \(server)")
            var soError: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soError, &length)
            guard soError == 0 else { throw SystemCallError("connect tcp \(server)", errno: soError) }
        }
        var framed = [UInt8(message.count >> 8), UInt8(truncatingIfNeeded: message.count)]
        framed.append(contentsOf: message)
        var sent = 0
        while sent < framed.count {
            let n = framed.withUnsafeBytes { send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if n > 0 { sent += n; continue }
            guard n < 0, errno == EAGAIN else { throw SystemCallError.last("send tcp \(server)") }
            try wait(fd, for: Int16(POLLOUT), until: deadline, what: "send tcp \(server)")
        }
        let header = try receive(fd, count: 2, until: deadline, from: server)
        let length = Int(header[0]) << 8 | Int(header[1])
        return try receive(fd, count: length, until: deadline, from: server)
    }

    private static func receive(_ fd: Int32, count: Int, until deadline: UInt64, from server: SocketAddress) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        var got = 0
        while got < count {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + got, count - got, 0) }
            if n > 0 { got += n; continue }
            if n == 0 { throw SystemCallError("recv tcp \(server): connection closed", errno: ECONNRESET) }
            guard errno == EAGAIN else { throw SystemCallError.last("recv tcp \(server)") }
            try wait(fd, for: Int16(POLLIN), until: deadline, what: "recv tcp \(server)")
        }
        return buffer
    }

    private static func wait(_ fd: Int32, for events: Int16, until deadline: UInt64, what: String) throws {
        let now = Sockets.now()
        guard now < deadline else { throw SystemCallError(what, errno: ETIMEDOUT) }
        var p = pollfd(fd: fd, events: events, revents: 0)
        let rc = poll(&p, 1, Int32((deadline - now) / 1_000_000) + 1)
        if rc == 0 { throw SystemCallError(what, errno: ETIMEDOUT) }
        if rc < 0 && errno != EINTR { throw SystemCallError.last(what) }
    }
}
