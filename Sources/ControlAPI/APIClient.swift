import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// The client side of the control API, for the CLI and the CNI plugin: one HTTP/1.1 request per
/// connection over the daemon's unix socket, written and read by hand (a client process lives a
/// few milliseconds: no event loop to start). `curl --unix-socket /run/dnsd/dnsd.sock
/// http://dnsd/v1/...` is the same.
public enum APIClient {
    public static let defaultPath = "/run/dnsd/dnsd.sock"

    public struct Response {
        public var status: Int
        public var body: Data
    }

    /// Sends one typed call (its route's method and path, its body as JSON); returns the status
    /// and the body, for the caller to decode as `Reply` or to read as a refusal.
    public static func request<Body, Reply>(_ call: APICall<Body, Reply>, socket: String) throws -> Response {
        try request(call.route.method, call.path, body: try call.body.map { try JSONEncoder().encode($0) }, socket: socket)
    }

    /// How long a request may wait for its answer (a command waits at most a few store request
    /// timeouts), and for its bytes to be taken: a server that never answers (a wedged peer, a
    /// dockerd that hangs) costs this, never forever.
    public static let answerTimeoutSeconds = 60
    public static let sendTimeoutSeconds = 10

    /// Sends one request; returns the status and the body.
    public static func request(_ method: String, _ path: String, body: Data? = nil, socket: String) throws -> Response {
        let fd = try connect(socket)
        defer { close(fd) }
        setTimeout(fd, SO_SNDTIMEO, seconds: sendTimeoutSeconds)
        setTimeout(fd, SO_RCVTIMEO, seconds: answerTimeoutSeconds)
        try send(fd, method, path, body)
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0, errno == EINTR { continue }
            if n < 0, errno == EAGAIN || errno == EWOULDBLOCK {
                throw ClientError("no answer from \(socket) within \(answerTimeoutSeconds) s")
            }
            if n <= 0 { break }
            data.append(contentsOf: buffer[0..<n])
        }
        guard let (status, headers, start) = parseHead(data) else {
            throw ClientError("the daemon closed the connection without an answer")
        }
        var payload = data[start...]
        if headers["transfer-encoding"]?.lowercased() == "chunked" { payload = Data(dechunk(Data(payload)).body)[...] }
        return Response(status: status, body: Data(payload))
    }

    /// Sends a request and calls `line` with each line of the streamed answer until the daemon
    /// closes it (`GET /v1/events`; no answer timeout: a quiet stream is a normal one).
    public static func stream(_ path: String, socket: String, line: (Data) -> Void) throws {
        let fd = try connect(socket)
        defer { close(fd) }
        try send(fd, "GET", path, nil)
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        var headerEnd: Int?
        var pending = Data()
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0, errno == EINTR { continue }
            if n <= 0 { return }
            data.append(contentsOf: buffer[0..<n])
            if headerEnd == nil {
                guard let (status, _, start) = parseHead(data) else { continue }
                guard status == 200 else {
                    throw ClientError(errorMessage(Data(data[start...])) ?? "the daemon answered \(status)")
                }
                headerEnd = start
                data = Data(data[start...])
            }
            let (decoded, rest) = dechunk(data)
            data = rest
            pending.append(contentsOf: decoded)
            while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                line(Data(pending[pending.startIndex..<newline]))
                pending = Data(pending[(newline + 1)...])
            }
        }
    }

    /// The `error` of a JSON error body.
    public static func errorMessage(_ body: Data) -> String? {
        struct ErrorBody: Decodable { var error: String }
        return (try? JSONDecoder().decode(ErrorBody.self, from: body))?.error
    }

    private static func connect(_ path: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ClientError("cannot create a socket: errno \(errno)") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            close(fd)
            throw ClientError("socket path too long: \(path)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw ClientError("cannot reach the dnsd daemon at \(path) (\(reason)); is `dnsd daemon` running?")
        }
        return fd
    }

    private static func setTimeout(_ fd: Int32, _ option: Int32, seconds: Int) {
        var value = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, option, &value, socklen_t(MemoryLayout<timeval>.size))
    }

    private static func send(_ fd: Int32, _ method: String, _ path: String, _ body: Data?) throws {
        var request = "\(method) \(path) HTTP/1.1\r\nHost: dnsd\r\nUser-Agent: dnsd-cli\r\nConnection: close\r\n"
        if let body { request += "Content-Type: application/json\r\nContent-Length: \(body.count)\r\n" }
        request += "\r\n"
        var bytes = Data(request.utf8)
        if let body { bytes.append(body) }
        var sent = 0
        while sent < bytes.count {
            // MSG_NOSIGNAL: a daemon that closed the connection is an error here, not a SIGPIPE.
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { throw ClientError("the daemon closed the connection (\(String(cString: strerror(errno))))") }
            sent += n
        }
    }

    /// The status, lower-cased headers and where the body starts, once the head is complete.
    private static func parseHead(_ data: Data) -> (Int, [String: String], Int)? {
        guard let end = data.firstRange(of: Data("\r\n\r\n".utf8)) else { return nil }
        let lines = String(decoding: data[data.startIndex..<end.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
        let statusParts = lines.first?.split(separator: " ") ?? []
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else { return nil }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingSpaces
        }
        return (status, headers, end.upperBound - data.startIndex)
    }

    /// Decodes the complete chunks at the start of `data`; returns them and what is left.
    private static func dechunk(_ data: Data) -> (body: Data, rest: Data) {
        var body = Data()
        var position = data.startIndex
        while let lineEnd = data[position...].firstRange(of: Data("\r\n".utf8)) {
            let sizeText = String(decoding: data[position..<lineEnd.lowerBound], as: UTF8.self).split(separator: ";").first ?? ""
            guard let size = Int(sizeText.trimmingSpaces, radix: 16) else { break }
            let start = lineEnd.upperBound
            guard data.endIndex - start >= size + 2 else { break }
            body.append(data[start..<(start + size)])
            position = start + size + 2
            if size == 0 { break }
        }
        return (body, Data(data[position...]))
    }
}

/// Why a request got no answer: the daemon unreachable, a connection closed early (one line).
public struct ClientError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

extension StringProtocol {
    /// Without leading and trailing spaces and tabs (HTTP's optional whitespace).
    fileprivate var trimmingSpaces: String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(self[first...last])
    }
}
