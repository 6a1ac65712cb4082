import Addressing
import Netns
#if canImport(Glibc)
import Glibc
#endif

/// An IPv4 socket address (address + port), convertible to and from `sockaddr_in`.
public struct SocketAddress: Hashable, Sendable, CustomStringConvertible {
    public var address: IPv4Address
    public var port: UInt16

    public init(_ address: IPv4Address, port: UInt16) {
        self.address = address
        self.port = port
    }

    /// Parses `A.B.C.D` or `A.B.C.D:PORT`; the port defaults to `defaultPort`.
    public init?(parsing text: String, defaultPort: UInt16 = 53) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), let address = IPv4Address(parts[0]) else { return nil }
        var port = defaultPort
        if parts.count == 2 {
            guard let p = UInt16(parts[1]), p != 0 else { return nil }
            port = p
        }
        self.init(address, port: port)
    }

    public var description: String { "\(address):\(port)" }

    var sockaddr: sockaddr_in {
        var raw = sockaddr_in()
        raw.sin_family = sa_family_t(AF_INET)
        raw.sin_port = port.bigEndian
        raw.sin_addr.s_addr = address.value.bigEndian
        return raw
    }

    init(_ raw: sockaddr_in) {
        self.init(IPv4Address(UInt32(bigEndian: raw.sin_addr.s_addr)), port: UInt16(bigEndian: raw.sin_port))
    }
}

/// Small wrappers over the socket calls the server makes, throwing `SystemCallError`.
enum Sockets {
    static func udp(bindingTo address: SocketAddress) throws -> Int32 {
        // No SO_REUSEADDR on UDP: it would let a second process bind the same address and
        // silently take a share of the queries.
        try configured(SOCK_DGRAM, "udp") { fd in
            try bind(fd, address)
            // Root may raise the buffer past rmem_max: bursts from dnsperf or a busy app fit.
            setOption(fd, SOL_SOCKET, SO_RCVBUFFORCE, 1 << 21)
        }
    }

    static func tcpListener(bindingTo address: SocketAddress) throws -> Int32 {
        try configured(SOCK_STREAM, "tcp") { fd in
            setOption(fd, SOL_SOCKET, SO_REUSEADDR, 1)
            try bind(fd, address)
            guard listen(fd, 128) == 0 else { throw SystemCallError.last("listen \(address)") }
        }
    }

    /// A UDP socket connected to `peer`: the kernel filters out datagrams from anyone else and
    /// reports ICMP port-unreachable as ECONNREFUSED.
    static func connectedUDP(to peer: SocketAddress) throws -> Int32 {
        try configured(SOCK_DGRAM, "udp") { fd in
            var raw = peer.sockaddr
            let rc = withUnsafePointer(to: &raw) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard rc == 0 else { throw SystemCallError.last("connect udp \(peer)") }
            setOption(fd, SOL_SOCKET, SO_RCVBUFFORCE, 1 << 21)
        }
    }

    /// A non-blocking, close-on-exec IPv4 socket set up by `configure`, closed again if that fails.
    private static func configured(_ type: __socket_type, _ name: String, _ configure: (Int32) throws -> Void) throws -> Int32 {
        let fd = socket(AF_INET, Int32(type.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemCallError.last("socket(\(name))") }
        do {
            try configure(fd)
            return fd
        } catch {
            close(fd)
            throw error
        }
    }

    static func bind(_ fd: Int32, _ address: SocketAddress) throws {
        var raw = address.sockaddr
        let rc = withUnsafePointer(to: &raw) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { throw SystemCallError.last("bind \(address)") }
    }

    static func localAddress(_ fd: Int32) throws -> SocketAddress {
        var raw = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let rc = withUnsafeMutablePointer(to: &raw) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard rc == 0 else { throw SystemCallError.last("getsockname") }
        return SocketAddress(raw)
    }

    static func setOption(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: Int32) {
        var v = value
        _ = setsockopt(fd, level, name, &v, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Monotonic time in nanoseconds.
    @inline(__always)
    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}
