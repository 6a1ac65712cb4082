import Addressing
import Dispatch
import Foundation
import Netns
import Resolver
import Synchronization

/// A UDP upstream on loopback whose behaviour a test scripts per query: answer after a delay,
/// stay silent, or have a forger answer first. Records the source port of every query.
final class ScriptedUpstream: @unchecked Sendable {
    /// What to do with one query (its name in lower case, without the trailing dot).
    enum Action {
        case answer(IPv4Address, after: Double)
        case silent
        /// `forgeries` are sent first (from their own sockets or this one), then the real answer.
        case forgedThenAnswer([Forgery], IPv4Address, after: Double)
    }

    enum Forgery {
        /// The right answer, but sent from another port of the same address.
        case fromOtherPort(IPv4Address)
        /// Sent from the upstream's own socket with the ID off by one.
        case wrongID(IPv4Address)
        /// Sent from the upstream's own socket with the question's name in another case.
        case otherCase(IPv4Address)
    }

    let address: SocketAddress
    private let fd: Int32
    private let forger: Int32
    private let script: @Sendable (String) -> Action
    private let ports = Mutex<[UInt16]>([])
    private let names = Mutex<[String]>([])
    private let running = Atomic<Bool>(true)
    private var thread: Thread?

    init(_ script: @escaping @Sendable (String) -> Action) throws {
        self.script = script
        fd = try Self.bound(port: 0)
        forger = try Self.bound(port: 0)
        var raw = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = fd
        _ = withUnsafeMutablePointer(to: &raw) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(bound, $0, &length) } }
        address = SocketAddress(IPv4Address(127, 0, 0, 1), port: UInt16(bigEndian: raw.sin_port))
        let thread = Thread { [self] in loop() }
        self.thread = thread
        thread.start()
    }

    /// Source ports the queries came from, in order.
    var sourcePorts: [UInt16] { ports.withLock { $0 } }

    /// The names queried (lower case, without the trailing dot), in order.
    var queriedNames: [String] { names.withLock { $0 } }

    func close() {
        running.store(false, ordering: .releasing)
        while thread?.isFinished == false { usleep(1000) }
        Glibc.close(fd)
        Glibc.close(forger)
    }

    private static func bound(port: UInt16) throws -> Int32 {
        let fd = try loopbackUDPSocket(port: port, what: "scripted upstream")
        var tv = timeval(tv_sec: 0, tv_usec: 50_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        return fd
    }

    private func loop() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while running.load(ordering: .acquiring) {
            var from = sockaddr_in()
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let n = buffer.withUnsafeMutableBytes { raw in
                withUnsafeMutablePointer(to: &from) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, raw.baseAddress, raw.count, 0, $0, &length) }
                }
            }
            guard n > 12, let (name, questionEnd) = Self.question(buffer, n) else { continue }
            let query = Array(buffer[0..<n])
            let sender = from
            ports.withLock { $0.append(UInt16(bigEndian: from.sin_port)) }
            names.withLock { $0.append(name.lowercased()) }
            switch script(name.lowercased()) {
            case .silent:
                continue
            case .answer(let address, let delay):
                later(delay) { [self] in send(Self.reply(query, questionEnd, address), from: fd, to: sender) }
            case .forgedThenAnswer(let forgeries, let address, let delay):
                for forgery in forgeries {
                    switch forgery {
                    case .fromOtherPort(let a): send(Self.reply(query, questionEnd, a), from: forger, to: from)
                    case .wrongID(let a):
                        var reply = Self.reply(query, questionEnd, a)
                        reply[1] &+= 1
                        send(reply, from: fd, to: from)
                    case .otherCase(let a):
                        var reply = Self.reply(query, questionEnd, a)
                        for i in 13..<questionEnd - 4 where reply[i].isLetter { reply[i] ^= 0x20 }
                        send(reply, from: fd, to: from)
                    }
                }
                later(delay) { [self] in send(Self.reply(query, questionEnd, address), from: fd, to: sender) }
            }
        }
    }

    /// A delayed answer on a thread of its own (the global queue can be slow to run a timer
    /// while other suites load the machine).
    private func later(_ delay: Double, _ work: @escaping @Sendable () -> Void) {
        if delay <= 0 { work() } else {
            Thread.detachNewThread {
                Thread.sleep(forTimeInterval: delay)
                work()
            }
        }
    }

    private func send(_ packet: [UInt8], from socket: Int32, to address: sockaddr_in) {
        var address = address
        _ = packet.withUnsafeBytes { raw in
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(socket, raw.baseAddress, raw.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
    }

    /// The question's name and where the question ends (after type and class).
    private static func question(_ packet: [UInt8], _ count: Int) -> (String, Int)? {
        var i = 12
        var labels: [String] = []
        while i < count, packet[i] != 0 {
            let length = Int(packet[i])
            guard length < 64, i + 1 + length < count else { return nil }
            labels.append(String(decoding: packet[(i + 1)...(i + length)], as: UTF8.self))
            i += 1 + length
        }
        guard i + 5 <= count else { return nil }
        return (labels.joined(separator: "."), i + 5)
    }

    /// An answer to `query`: its header and question, one A record.
    private static func reply(_ query: [UInt8], _ questionEnd: Int, _ address: IPv4Address) -> [UInt8] {
        var reply = Array(query[0..<questionEnd])
        reply[2] = 0x81  // QR, RD
        reply[3] = 0x80  // RA, NOERROR
        reply[4] = 0; reply[5] = 1
        reply[6] = 0; reply[7] = 1
        reply[8] = 0; reply[9] = 0; reply[10] = 0; reply[11] = 0
        reply += [0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4]
        reply += [UInt8(address.value >> 24), UInt8(truncatingIfNeeded: address.value >> 16), UInt8(truncatingIfNeeded: address.value >> 8), UInt8(truncatingIfNeeded: address.value)]
        return reply
    }
}

private extension UInt8 {
    var isLetter: Bool { (0x41...0x5A).contains(self) || (0x61...0x7A).contains(self) }
}

/// A UDP socket bound to 127.0.0.1:`port` (0: any free port).
func loopbackUDPSocket(port: UInt16, what: String) throws -> Int32 {
    let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    var raw = sockaddr_in()
    raw.sin_family = sa_family_t(AF_INET)
    raw.sin_port = port.bigEndian
    raw.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
    let rc = withUnsafePointer(to: &raw) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard rc == 0 else {
        let error = SystemCallError.last("bind \(what)")
        close(fd)
        throw error
    }
    return fd
}

