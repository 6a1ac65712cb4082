import Foundation

/// The control API on the daemon's unix socket: one JSON request per connection, one JSON
/// reply. Only root can connect (socket mode 0600).
struct ControlRequest: Codable {
    var command: String
    var name: String?
    var network: String?
    var networks: [String]?
    var hostname: String?
    var aliases: [String]?
    var ip: String?
    var driver: String?
    var subnet: String?
    var gateway: String?
    var netnsPath: String?
    var hostsFile: String?
}

struct ControlReply: Codable {
    var ok: Bool
    var error: String?
    var output: String?
}

enum ControlSocket {
    static let defaultPath = "/run/dnsd/dnsd.sock"

    /// Sends `request` to the daemon at `path` and returns its reply.
    static func send(_ request: ControlRequest, to path: String) throws -> ControlReply {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw CLIError("cannot create a socket: errno \(errno)") }
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { throw CLIError("socket path too long: \(path)") }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else {
            throw CLIError("cannot reach the dnsd daemon at \(path) (\(String(cString: strerror(errno)))); is `dnsd daemon` running?")
        }
        let data = try JSONEncoder().encode(request) + Data("\n".utf8)
        // MSG_NOSIGNAL: a daemon that closed the connection is an error here, not a SIGPIPE.
        _ = data.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        shutdown(fd, Int32(SHUT_WR))
        var reply = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            reply.append(contentsOf: buffer[0..<n])
        }
        guard let decoded = try? JSONDecoder().decode(ControlReply.self, from: reply) else {
            throw CLIError("the daemon closed the connection without an answer")
        }
        return decoded
    }
}

/// One clear line on stderr and a non-zero exit.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
