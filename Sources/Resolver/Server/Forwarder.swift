import CShim
import Dispatch
import Logging
import Netns
#if canImport(Glibc)
import Glibc
#endif

/// Sends queries dnsd does not answer itself to the upstream servers and relays their answers.
///
/// Lives on the serving loop's thread: a pool of connected UDP sockets per upstream, created in
/// the daemon's own namespace (so an upstream on the host's loopback works), registered in the
/// loop's epoll. Each query in flight holds one of `maxInFlight` slots; a full table answers
/// SERVFAIL at once instead of queueing without bound.
///
/// Spoofing (RFC 5452): every try gets a fresh random ID and goes out through a socket picked
/// at random from its server's pool, each bound by the kernel to a random source port; sockets
/// with nothing in flight are replaced by new ones (new ports) as the loop sweeps. An answer
/// counts only if it arrives on the socket that sent the try (so from that server, to that
/// port), carries the try's ID and repeats the question byte for byte, case included.
///
/// Tries: the preferred server first, then each other server once, each try bounded by
/// `timeout`; a server that refuses (ICMP port unreachable) or times out stops being preferred.
/// When every try failed the client gets SERVFAIL. A truncated UDP answer to a TCP client is
/// retried over TCP off the loop thread; a UDP client gets the truncated answer and retries
/// over TCP itself.
final class Forwarder {
    struct Configuration {
        var upstreams: [SocketAddress]
        var timeoutMilliseconds: Int
        var maxInFlight: Int
    }

    private struct Slot {
        var inUse = false
        var client: ForwardClient?
        var clientID: UInt16 = 0
        var upstreamID: UInt16 = 0
        /// The query as sent upstream (our ID in its first two bytes).
        var query: [UInt8] = []
        var questionEnd = 0
        var server = 0
        /// The socket (index into `sockets`) the current try went out on.
        var socket = 0
        /// Whether the current try counts in `triesOnSocket[socket]`.
        var onSocket = false
        var triesLeft = 0
        /// Bumped on every try, so a stale deadline or TCP result is recognised.
        var attempt: UInt32 = 0
        var viaTCP = false
        /// When the client's query arrived (for the answer's latency).
        var startedAt: UInt64 = 0
    }

    private struct Deadline {
        var slot: Int
        var attempt: UInt32
        var at: UInt64
    }

    private struct TCPResult: Sendable {
        var slot: Int
        var attempt: UInt32
        var reply: [UInt8]?
    }

    let configuration: Configuration
    /// Sockets per upstream server.
    static let poolSize = 16
    /// Upstream sockets: `poolSize` per server, server `s` owning `s * poolSize ..< (s + 1) * poolSize`.
    private(set) var sockets: [Int32]
    /// Tries in flight per socket (a socket is replaced only when it has none).
    private var triesOnSocket: [Int]
    private var nextRecycled = 0
    private var slots: [Slot]
    private var freeSlots: [Int]
    private var byID: [UInt16: Int] = [:]
    /// Deadlines in the order they fall due: every try has the same timeout, so appending keeps
    /// the queue sorted.
    private var deadlines: [Deadline] = []
    private var deadlineHead = 0
    private var preferred = 0
    private let parser = QueryParser()
    private let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 16)
    private var random = SystemRandomNumberGenerator()
    private let tcpResults = Mailbox<TCPResult>()
    private let wake: @Sendable () -> Void
    private let logger: Logger
    private let timeoutNanoseconds: UInt64

    /// Forwarded queries that got an upstream answer, and those answered SERVFAIL.
    private(set) var relayed = 0
    private(set) var failed = 0
    /// Answers by code (set by the server), and who hears of latencies and failed tries.
    var counters: DNSCounters?
    weak var observer: (any ForwardObserver)?

    init(configuration: Configuration, logger: Logger, wake: @escaping @Sendable () -> Void) throws {
        self.logger = logger
        self.wake = wake
        timeoutNanoseconds = UInt64(configuration.timeoutMilliseconds) * 1_000_000
        // An upstream this namespace cannot route to is left out (with a warning) rather than
        // stopping the responder: local names never depend on upstreams.
        var sockets: [Int32] = []
        var usable: [SocketAddress] = []
        for upstream in configuration.upstreams {
            var pool: [Int32] = []
            do {
                for _ in 0..<Self.poolSize { pool.append(try Sockets.connectedUDP(to: upstream)) }
                sockets += pool
                usable.append(upstream)
            } catch {
                pool.forEach { close($0) }
                logger.warning("upstream \(upstream) left out: \(error)")
            }
        }
        var adjusted = configuration
        adjusted.upstreams = usable
        self.configuration = adjusted
        self.sockets = sockets
        triesOnSocket = Array(repeating: 0, count: sockets.count)
        slots = Array(repeating: Slot(), count: configuration.maxInFlight)
        freeSlots = Array((0..<configuration.maxInFlight).reversed())
    }

    deinit {
        sockets.forEach { close($0) }
        scratch.deallocate()
    }

    var inFlight: Int { configuration.maxInFlight - freeSlots.count }

    private var serverCount: Int { configuration.upstreams.count }

    /// Starts forwarding `packet` (already parsed as `query`) for `client`.
    func forward(_ packet: UnsafeRawBufferPointer, query: Query, for client: ForwardClient, now: UInt64) {
        guard !sockets.isEmpty, let index = freeSlots.popLast() else {
            logger.debug("forward table full (\(configuration.maxInFlight) in flight): SERVFAIL")
            counters?.count(.forwarded, rcode: 2)
            answerServerFailure(packet, to: client)
            return
        }
        // Reuse the slot's query buffer: move it out so it is uniquely referenced, then refill.
        var buffer = slots[index].query
        slots[index].query = []
        buffer.removeAll(keepingCapacity: true)
        buffer.append(contentsOf: packet)
        if case .tcp(let connection) = client { connection.pendingForwards += 1 }
        var slot = Slot()
        slot.inUse = true
        slot.client = client
        slot.clientID = query.id
        slot.query = buffer
        slot.questionEnd = query.questionEnd
        slot.server = preferred
        slot.startedAt = now
        slot.triesLeft = serverCount
        // The attempt counter carries on from the slot's previous query: a deadline or a TCP
        // result still queued for that query must never be taken for this one's.
        slot.attempt = slots[index].attempt
        slots[index] = slot
        send(index, now: now)
    }

    /// Sends slot `index` to its current server with a new ID, or fails it when no tries remain.
    private func send(_ index: Int, now: UInt64) {
        leaveSocket(index)
        while slots[index].triesLeft > 0 {
            slots[index].triesLeft -= 1
            slots[index].attempt &+= 1
            if byID[slots[index].upstreamID] == index { byID[slots[index].upstreamID] = nil }
            var id: UInt16
            repeat { id = UInt16.random(in: 1...UInt16.max, using: &random) } while byID[id] != nil
            slots[index].upstreamID = id
            slots[index].query[0] = UInt8(id >> 8)
            slots[index].query[1] = UInt8(truncatingIfNeeded: id)
            byID[id] = index
            let server = slots[index].server
            let socket = server * Self.poolSize + Int.random(in: 0..<Self.poolSize, using: &random)
            slots[index].socket = socket
            let n = slots[index].query.withUnsafeBytes { Glibc.send(sockets[socket], $0.baseAddress!, $0.count, Int32(MSG_DONTWAIT)) }
            if n >= 0 {
                triesOnSocket[socket] += 1
                slots[index].onSocket = true
                deadlines.append(Deadline(slot: index, attempt: slots[index].attempt, at: now + timeoutNanoseconds))
                return
            }
            logger.debug("upstream \(configuration.upstreams[server]): \(SystemCallError.last("send"))")
            observer?.failed(upstream: configuration.upstreams[server])
            demote(server)
            slots[index].server = (server + 1) % serverCount
        }
        fail(index)
    }

    /// The slot's try no longer waits on its socket.
    private func leaveSocket(_ index: Int) {
        guard slots[index].onSocket else { return }
        slots[index].onSocket = false
        triesOnSocket[slots[index].socket] -= 1
    }

    /// Replaces up to `count` sockets that have nothing in flight with new ones (so new random
    /// source ports), calling `replaced(index, old, new)` for each so the loop can watch the
    /// new one. A socket that cannot be made is kept.
    func recycleSockets(count: Int, _ replaced: (Int, Int32, Int32) -> Void) {
        guard !sockets.isEmpty else { return }
        var done = 0
        for _ in 0..<sockets.count where done < count {
            let index = nextRecycled
            nextRecycled = (nextRecycled + 1) % sockets.count
            guard triesOnSocket[index] == 0,
                  let fresh = try? Sockets.connectedUDP(to: configuration.upstreams[index / Self.poolSize]) else { continue }
            let old = sockets[index]
            sockets[index] = fresh
            replaced(index, old, fresh)
            close(old)
            done += 1
        }
    }

    /// Stop preferring `server` after it failed.
    private func demote(_ server: Int) {
        if preferred == server { preferred = (server + 1) % max(1, serverCount) }
    }

    /// Reads answers waiting on upstream socket `socket`.
    func readAnswers(from socket: Int, now: UInt64) {
        let fd = sockets[socket]
        let server = socket / Self.poolSize
        for _ in 0..<64 {
            let n = recv(fd, scratch.baseAddress!, scratch.count, Int32(MSG_DONTWAIT))
            if n < 0 {
                if errno == ECONNREFUSED {
                    // The server's port is closed: every query waiting on it moves on now
                    // rather than at its deadline.
                    logger.debug("upstream \(configuration.upstreams[server]) refused")
                    observer?.failed(upstream: configuration.upstreams[server])
                    demote(server)
                    for index in slots.indices where slots[index].inUse && !slots[index].viaTCP && slots[index].socket == socket {
                        slots[index].server = (server + 1) % serverCount
                        send(index, now: now)
                    }
                    continue
                }
                return
            }
            guard n >= HeaderBits.headerSize else { continue }
            let reply = UnsafeMutableRawBufferPointer(rebasing: scratch[0..<n])
            let id = UnsafeRawBufferPointer(reply).loadBigEndianUInt16(at: 0)
            guard let index = byID[id], slots[index].inUse, !slots[index].viaTCP, slots[index].onSocket, slots[index].socket == socket,
                  sameQuestion(UnsafeRawBufferPointer(reply), slots[index])
            else { continue }
            let flags = UnsafeRawBufferPointer(reply).loadBigEndianUInt16(at: 2)
            if flags & HeaderBits.truncated != 0, let client = slots[index].client, client.overTCP {
                retryOverTCP(index, server: server)
                continue
            }
            deliver(index, reply: reply)
        }
    }

    /// Whether `reply` repeats the question of the slot's query byte for byte: the case of the
    /// name as sent included (RFC 5452 §9.1: a forger must also guess the client's spelling).
    private func sameQuestion(_ reply: UnsafeRawBufferPointer, _ slot: Slot) -> Bool {
        let end = slot.questionEnd
        guard reply.count >= end, reply.loadBigEndianUInt16(at: 4) == 1 else { return false }
        return slot.query.withUnsafeBytes { query in
            memcmp(query.baseAddress! + HeaderBits.headerSize, reply.baseAddress! + HeaderBits.headerSize,
                   end - HeaderBits.headerSize) == 0
        }
    }

    private func retryOverTCP(_ index: Int, server: Int) {
        leaveSocket(index)
        slots[index].viaTCP = true
        slots[index].attempt &+= 1
        byID[slots[index].upstreamID] = nil
        slots[index].upstreamID = 0
        let attempt = slots[index].attempt
        let query = slots[index].query
        let upstream = configuration.upstreams[server]
        let timeout = configuration.timeoutMilliseconds
        let results = tcpResults
        let wake = self.wake
        let logger = self.logger
        DispatchQueue.global().async {
            var reply: [UInt8]?
            do { reply = try TCPExchange.perform(query, with: upstream, timeoutMilliseconds: timeout) } catch {
                logger.debug("upstream \(upstream) over TCP: \(error)")
            }
            results.post(TCPResult(slot: index, attempt: attempt, reply: reply))
            wake()
        }
    }

    /// Collects finished TCP retries (called by the loop after a wake-up).
    func collectTCPResults() {
        for result in tcpResults.takeAll() where slots[result.slot].inUse && slots[result.slot].attempt == result.attempt {
            guard var reply = result.reply, reply.count >= HeaderBits.headerSize,
                  reply.withUnsafeBytes({ sameQuestion($0, slots[result.slot]) })
            else {
                fail(result.slot)
                continue
            }
            reply.withUnsafeMutableBytes { deliver(result.slot, reply: $0) }
        }
    }

    /// Fails or retries the queries whose try timed out.
    func expire(now: UInt64) {
        while deadlineHead < deadlines.count, deadlines[deadlineHead].at <= now {
            let due = deadlines[deadlineHead]
            deadlineHead += 1
            guard slots[due.slot].inUse, slots[due.slot].attempt == due.attempt else { continue }
            let server = slots[due.slot].server
            logger.debug("upstream \(configuration.upstreams[server]) timed out")
            observer?.failed(upstream: configuration.upstreams[server])
            demote(server)
            slots[due.slot].server = (server + 1) % serverCount
            send(due.slot, now: now)
        }
        if deadlineHead > 1024 && deadlineHead * 2 > deadlines.count {
            deadlines.removeFirst(deadlineHead)
            deadlineHead = 0
        }
    }

    /// When the earliest pending try times out, if any.
    var nextDeadline: UInt64? {
        deadlineHead < deadlines.count ? deadlines[deadlineHead].at : nil
    }

    /// Relays `reply` to the slot's client with the client's ID, then frees the slot.
    private func deliver(_ index: Int, reply: UnsafeMutableRawBufferPointer) {
        let slot = slots[index]
        release(index)
        if let observer { observer.answered(by: configuration.upstreams[slot.server], afterNanoseconds: Sockets.now() &- slot.startedAt) }
        counters?.count(.forwarded, rcode: reply.count > 3 ? reply[3] & 0x0F : 2)
        guard let client = slot.client, !client.isGone else { return }
        reply.storeBigEndian(slot.clientID, at: 0)
        relayed += 1
        var message = UnsafeRawBufferPointer(reply)
        if case .udp(_, _, _, let limit) = client, reply.count > limit {
            // Too big for what the client said it can take: header and question with TC.
            let flags = UnsafeRawBufferPointer(reply).loadBigEndianUInt16(at: 2) | HeaderBits.truncated
            reply.storeBigEndian(flags, at: 2)
            for offset in stride(from: 6, to: 12, by: 2) { reply.storeBigEndian(UInt16(0), at: offset) }
            message = UnsafeRawBufferPointer(rebasing: message[0..<slot.questionEnd])
        }
        send(message, to: client)
    }

    /// A finished answer to its client: a datagram from the sandbox's listener back to the
    /// sender, or a framed message queued on the connection (which the loop then flushes).
    private func send(_ message: UnsafeRawBufferPointer, to client: ForwardClient) {
        switch client {
        case .udp(let listener, var address, let length, _):
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    _ = sendto(listener.fd, message.baseAddress!, message.count, Int32(MSG_DONTWAIT), $0, length)
                }
            }
        case .tcp(let connection):
            connection.enqueue(message)
            onTCPAnswer?(connection)
        }
    }

    /// Called after an answer is queued on a TCP connection, so the loop can flush it.
    var onTCPAnswer: ((TCPConnection) -> Void)?

    private func fail(_ index: Int) {
        let slot = slots[index]
        release(index)
        failed += 1
        counters?.count(.forwarded, rcode: 2)
        guard let client = slot.client, !client.isGone else { return }
        var query = slot.query
        query[0] = UInt8(slot.clientID >> 8)
        query[1] = UInt8(truncatingIfNeeded: slot.clientID)
        query.withUnsafeBytes { answerServerFailure($0, to: client) }
    }

    /// Frees a slot; a TCP client owes one answer less (the connection closes only when it
    /// owes none).
    private func release(_ index: Int) {
        leaveSocket(index)
        if case .tcp(let connection) = slots[index].client { connection.pendingForwards -= 1 }
        if byID[slots[index].upstreamID] == index { byID[slots[index].upstreamID] = nil }
        slots[index].inUse = false
        slots[index].client = nil
        slots[index].viaTCP = false
        slots[index].upstreamID = 0
        freeSlots.append(index)
    }

    /// SERVFAIL for `packet` straight to the client.
    private func answerServerFailure(_ packet: UnsafeRawBufferPointer, to client: ForwardClient) {
        guard case .query(let query) = parser.parse(packet) else { return }
        var writer = ResponseWriter(buffer: scratch, limit: MessageSize.classicUDP)
        writer.start(answering: query, from: packet, authoritative: false)
        let length = writer.finish(code: .serverFailure)
        send(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(scratch)[0..<length]), to: client)
    }
}
