import Foundation
import Netns

/// A UDP socket made inside a sandbox, connected to its responder (127.0.0.11:53), that asks
/// A questions and reads the answers: thousands of checked queries a second without spawning
/// `dig`. Independent of dnsd's codec on purpose (a test must not share the code it checks).
public final class DNSProbe {
    public enum Answer: Equatable, CustomStringConvertible {
        case addresses([String])
        case rcode(Int)
        case timeout

        public var description: String {
            switch self {
            case .addresses(let list): list.joined(separator: ",")
            case .rcode(let code): "rcode \(code)"
            case .timeout: "timeout"
            }
        }
    }

    public let sandbox: String
    private var fd: Int32
    private var nextID = UInt16.random(in: 0...UInt16.max)
    private var buffer = [UInt8](repeating: 0, count: 1500)

    /// A socket in named namespace `sandbox`, made on `thread`. `close()` it before the sandbox
    /// is deleted (an open socket keeps a namespace and its interfaces alive).
    public init(sandbox: String, thread: NamespaceThread, server: String = "127.0.0.11", port: UInt16 = 53) throws {
        self.sandbox = sandbox
        let namespace = try NamespaceHandle(name: sandbox)
        fd = try thread.run(in: namespace) {
            let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            guard fd >= 0 else { throw SystemCallError.last("socket") }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = port.bigEndian
            inet_pton(AF_INET, server, &address.sin_addr)
            let rc = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard rc == 0 else { Glibc.close(fd); throw SystemCallError.last("connect") }
            return fd
        }
    }

    deinit { close() }

    public func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    /// Asks for `name`'s A records; waits up to `timeoutMilliseconds` for the matching reply.
    public func lookup(_ name: String, timeoutMilliseconds: Int32 = 1000) -> Answer {
        nextID &+= 1
        let id = nextID
        var query: [UInt8] = [UInt8(id >> 8), UInt8(id & 0xFF), 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]
        for label in name.split(separator: ".") {
            query.append(UInt8(label.utf8.count))
            query.append(contentsOf: label.utf8)
        }
        query += [0, 0, 1, 0, 1]
        guard send(fd, query, query.count, 0) == query.count else { return .timeout }
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(timeoutMilliseconds) * 1_000_000
        while true {
            let now = DispatchTime.now().uptimeNanoseconds
            guard now < deadline else { return .timeout }
            var pollfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pollfd, 1, Int32((deadline - now) / 1_000_000) + 1) > 0 else { continue }
            let count = recv(fd, &buffer, buffer.count, 0)
            guard count >= 12, buffer[0] == UInt8(id >> 8), buffer[1] == UInt8(id & 0xFF) else { continue }
            return Self.parse(buffer[0..<count])
        }
    }

    /// The rcode, or the A addresses of the answer section.
    static func parse(_ reply: ArraySlice<UInt8>) -> Answer {
        let bytes = Array(reply)
        let rcode = Int(bytes[3] & 0x0F)
        guard rcode == 0 else { return .rcode(rcode) }
        let questions = Int(bytes[4]) << 8 | Int(bytes[5]), answers = Int(bytes[6]) << 8 | Int(bytes[7])
        var offset = 12
        func skipName() -> Bool {
            while offset < bytes.count {
                let length = Int(bytes[offset])
                if length & 0xC0 == 0xC0 { offset += 2; return offset <= bytes.count }
                offset += 1 + length
                if length == 0 { return offset <= bytes.count }
            }
            return false
        }
        for _ in 0..<questions {
            guard skipName() else { return .rcode(-1) }
            offset += 4
        }
        var addresses: [String] = []
        for _ in 0..<answers {
            guard skipName(), offset + 10 <= bytes.count else { return .rcode(-1) }
            let type = Int(bytes[offset]) << 8 | Int(bytes[offset + 1])
            let length = Int(bytes[offset + 8]) << 8 | Int(bytes[offset + 9])
            offset += 10
            guard offset + length <= bytes.count else { return .rcode(-1) }
            if type == 1, length == 4 {
                addresses.append(bytes[offset..<offset + 4].map(String.init).joined(separator: "."))
            }
            offset += length
        }
        return .addresses(addresses)
    }
}
