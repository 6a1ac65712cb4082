import Foundation
import Netns
import Resolver

/// Sends raw DNS messages from inside a sandbox's namespace, the way an application there would.
struct SandboxClient {
    let namespace: NamespaceHandle
    let thread: NamespaceThread
    var server = (address: "127.0.0.11", port: UInt16(53))

    /// One UDP exchange; nil when no answer came within `timeout` seconds.
    func udp(_ message: [UInt8], timeout: Double = 2) throws -> [UInt8]? {
        let fd = try socketInNamespace(type: SOCK_DGRAM, timeout: timeout)
        defer { close(fd) }
        let sent = message.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        guard sent == message.count else { throw SystemCallError.last("send") }
        var buffer = [UInt8](repeating: 0, count: 65536)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        return n < 0 ? nil : Array(buffer[0..<n])
    }

    /// Several messages on one UDP socket, then collect every answer that arrives.
    func udpBurst(_ messages: [[UInt8]], timeout: Double = 2) throws -> [[UInt8]] {
        let fd = try socketInNamespace(type: SOCK_DGRAM, timeout: timeout)
        defer { close(fd) }
        for message in messages { _ = message.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) } }
        var answers: [[UInt8]] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while answers.count < messages.count {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 { break }
            answers.append(Array(buffer[0..<n]))
        }
        return answers
    }

    /// A TCP connection to the responder, with a send timeout (seconds).
    func connectTCP(sendTimeout: Double) throws -> Int32 {
        let fd = try socketInNamespace(type: SOCK_STREAM, timeout: sendTimeout)
        var tv = timeval(tv_sec: Int(sendTimeout), tv_usec: Int((sendTimeout - Double(Int(sendTimeout))) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        return fd
    }

    /// One TCP exchange per message on one connection (pipelined); returns the answers in order
    /// of arrival. `readConcurrently`: the answers are read while the queries are still being
    /// sent (a burst larger than the socket buffers needs that).
    func tcp(_ messages: [[UInt8]], timeout: Double = 3, readConcurrently: Bool = false) throws -> [[UInt8]] {
        let fd = try socketInNamespace(type: SOCK_STREAM, timeout: timeout)
        defer { close(fd) }
        var framed: [UInt8] = []
        for m in messages { framed += [UInt8(m.count >> 8), UInt8(m.count & 0xFF)] + m }
        let bytes = framed
        let sender = Thread {
            var offset = 0
            let framed = bytes
            while offset < framed.count {
                let n = framed.withUnsafeBytes { send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
                if n <= 0 { return }
                offset += n
            }
        }
        if readConcurrently {
            sender.start()
        } else {
            let sent = framed.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard sent == framed.count else { throw SystemCallError.last("send tcp") }
        }
        defer { while readConcurrently && !sender.isFinished { usleep(1000) } }
        var answers: [[UInt8]] = []
        while answers.count < messages.count {
            guard let header = try readExactly(fd, 2) else { break }
            guard let body = try readExactly(fd, Int(header[0]) << 8 | Int(header[1])) else { break }
            answers.append(body)
        }
        return answers
    }

    private func readExactly(_ fd: Int32, _ count: Int) throws -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: count)
        var got = 0
        while got < count {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + got, count - got, 0) }
            if n <= 0 { return nil }
            got += n
        }
        return buffer
    }

    private func socketInNamespace(type: __socket_type, timeout: Double) throws -> Int32 {
        let server = self.server
        return try thread.run(in: namespace) {
            let fd = socket(AF_INET, Int32(type.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { throw SystemCallError.last("socket") }
            var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - Double(Int(timeout))) * 1_000_000))
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = server.port.bigEndian
            inet_pton(AF_INET, server.address, &address.sin_addr)
            let rc = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard rc == 0 else {
                let error = SystemCallError.last("connect")
                close(fd)
                throw error
            }
            return fd
        }
    }
}
