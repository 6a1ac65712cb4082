import CShim
import Foundation
import Logging

/// Listens on the control socket (mode 0600, so only root connects) and hands each request to
/// `handle` on a thread of its own; a slow request never blocks the others.
final class ControlServer: @unchecked Sendable {
    private let fd: Int32
    let path: String
    private let logger: Logger

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
        guard rc == 0, chmod(path, 0o600) == 0, listen(fd, 64) == 0 else {
            close(fd)
            throw CLIError("cannot listen on \(path): \(String(cString: strerror(errno)))")
        }
    }

    func serve(_ handle: @escaping @Sendable (ControlRequest) -> ControlReply) {
        let thread = Thread { [self] in
            while true {
                let client = accept(fd, nil, nil)
                if client < 0 {
                    if errno == EINTR { continue }
                    return
                }
                Thread.detachNewThread { [self] in
                    defer { close(client) }
                    // Root only: the socket is 0600 already; peer credentials make it explicit.
                    guard dnsd_peer_uid(client) == 0 else {
                        reply(client, ControlReply(ok: false, error: "only root may control dnsd"))
                        return
                    }
                    var data = Data()
                    var buffer = [UInt8](repeating: 0, count: 65536)
                    while data.count < 1 << 20 {
                        let n = buffer.withUnsafeMutableBytes { read(client, $0.baseAddress, $0.count) }
                        if n <= 0 { break }
                        data.append(contentsOf: buffer[0..<n])
                        if data.last == UInt8(ascii: "\n") { break }
                    }
                    guard let request = try? JSONDecoder().decode(ControlRequest.self, from: data) else {
                        reply(client, ControlReply(ok: false, error: "malformed request"))
                        return
                    }
                    reply(client, handle(request))
                }
            }
        }
        thread.name = "dnsd-control"
        thread.start()
    }

    private func reply(_ client: Int32, _ reply: ControlReply) {
        guard let data = try? JSONEncoder().encode(reply) else { return }
        _ = data.withUnsafeBytes { write(client, $0.baseAddress, $0.count) }
    }

    func stop() {
        Glibc.close(fd)
        unlink(path)
    }
}
