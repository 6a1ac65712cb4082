import Addressing
import CShim
import Foundation
import Logging
import Netns

/// The embedded DNS responder: one thread, one epoll set, serving 127.0.0.11:53 over UDP and
/// TCP inside any number of sandboxes, answering from a `RecordStore` and forwarding the rest.
///
/// Sockets are made inside each sandbox's namespace on a dedicated `NamespaceThread` and then
/// served from the loop thread, which never changes namespace. Everything the loop owns (the
/// listeners, connections, forwarder) is touched only on the loop thread; other threads talk to
/// it through a mailbox and an eventfd.
///
/// Fairness: each ready UDP socket gets one batch per loop turn, so a sandbox flooding its
/// resolver cannot starve the others. A batch is 32 datagrams while one sandbox has the loop to
/// itself (fewer system calls per answer), and 4 once another sandbox asked within the last
/// 2 ms: then a query waits behind at most a few short batches of its neighbour's, not a long one.
public final class DNSServer: @unchecked Sendable {
    public struct Configuration: Sendable {
        /// TTL of answers from the record table.
        public var ttl: UInt32 = 10
        /// Upstream servers for names dnsd does not own, tried in order.
        public var upstreams: [SocketAddress] = []
        public var upstreamTimeoutMilliseconds = 1500
        public var maxInFlightForwards = 1024
        public var maxTCPConnectionsPerSandbox = 32
        public var tcpIdleTimeoutMilliseconds = 10_000
        /// Where the responder answers inside each sandbox.
        public var listenAddress = SocketAddress(IPv4Address(127, 0, 0, 11), port: 53)

        public init() {}
    }

    /// How a sandbox's port 53 is served.
    public enum Mode: Sendable {
        /// Bind 127.0.0.11:53 itself.
        case direct
        /// Bind random ports and DNAT 127.0.0.11:53 to them, leaving port 53 to the sandbox's apps.
        case redirect
    }

    /// Where a served sandbox's listeners ended up.
    public struct Listening: Sendable, Equatable {
        public var udp: SocketAddress
        public var tcp: SocketAddress
    }

    private enum Command: @unchecked Sendable {
        case add(SandboxID, udp: Int32, tcp: Int32, DispatchSemaphore)
        case remove(SandboxID, DispatchSemaphore)
        case stop
    }

    private enum Source {
        case wake
        case udp(UDPListener)
        case tcpListener(Int32, SandboxID)
        case connection(TCPConnection)
        case upstream(Int)
    }

    private struct Served {
        var udp: UDPListener
        var udpToken: Int
        var tcpFD: Int32
        var tcpToken: Int
        var connections: Set<Int> = []
    }

    public let configuration: Configuration
    /// What was answered, by path and code (for metrics).
    public let counters = DNSCounters()
    private let store: RecordStore
    private let logger: Logger
    private let namespaceThread: NamespaceThread
    private let epoll: Int32
    private let wakeFD: Int32
    private let commands = Mailbox<Command>()
    private var thread: Thread?

    // Loop-thread state.
    private var sources: [Source?] = []
    private var freeTokens: [Int] = []
    private var served: [SandboxID: Served] = [:]
    private let responder: Responder
    private let batch = DatagramBatch()
    private let tcpScratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 16)
    private var forwarder: Forwarder!
    /// The epoll token of each upstream socket (index-aligned with `forwarder.sockets`).
    private var upstreamTokens: [Int] = []
    private var running = true
    private var redirectPaths: [SandboxID: String] = [:]
    private let redirectLock = NSLock()

    public init(records: RecordStore, configuration: Configuration, logger: Logger) throws {
        self.store = records
        self.configuration = configuration
        self.logger = logger
        responder = Responder.standard(ttl: configuration.ttl, hasUpstreams: !configuration.upstreams.isEmpty)
        namespaceThread = try NamespaceThread(name: "dnsd-dns-sockets")
        epoll = dnsd_epoll_create()
        guard epoll >= 0 else { throw SystemCallError.last("epoll_create") }
        wakeFD = dnsd_eventfd()
        guard wakeFD >= 0 else {
            close(epoll)
            throw SystemCallError.last("eventfd")
        }
        let wakeFD = self.wakeFD
        forwarder = try Forwarder(
            configuration: .init(
                upstreams: configuration.upstreams, timeoutMilliseconds: configuration.upstreamTimeoutMilliseconds,
                maxInFlight: configuration.maxInFlightForwards),
            logger: logger,
            wake: { Self.signal(wakeFD) })
        forwarder.onTCPAnswer = { [unowned self] connection in self.flush(connection) }
        forwarder.counters = counters
        _ = register(.wake, fd: wakeFD)
        upstreamTokens = forwarder.sockets.enumerated().map { index, fd in register(.upstream(index), fd: fd) }
    }

    deinit {
        tcpScratch.deallocate()
        close(wakeFD)
        close(epoll)
    }

    /// Who hears of forwarded answers' latencies and failed tries (set before `start`).
    public func observeForwarding(_ observer: any ForwardObserver) { forwarder.observer = observer }

    /// Starts the serving thread.
    public func start() {
        let thread = Thread { [self] in run() }
        thread.name = "dnsd-dns"
        self.thread = thread
        thread.start()
    }

    /// Serves DNS inside `namespace` for `sandbox`. When it returns, queries are answered.
    @discardableResult
    public func serve(_ sandbox: SandboxID, in namespace: NamespaceHandle, mode: Mode = .direct, at address: SocketAddress? = nil) throws -> Listening {
        let listen = address ?? configuration.listenAddress
        let bindAddress = mode == .direct ? listen : SocketAddress(listen.address, port: 0)
        let (udp, tcp) = try namespaceThread.run(in: namespace) { () throws -> (Int32, Int32) in
            // A fresh namespace has lo down, and 127.0.0.11 lives on lo.
            guard dnsd_link_set_up("lo") == 0 else { throw SystemCallError.last("set lo up in \(namespace.path)") }
            let udp = try Sockets.udp(bindingTo: bindAddress)
            do {
                return (udp, try Sockets.tcpListener(bindingTo: bindAddress))
            } catch {
                close(udp)
                throw error
            }
        }
        let listening: Listening
        do {
            listening = Listening(udp: try Sockets.localAddress(udp), tcp: try Sockets.localAddress(tcp))
            if mode == .redirect {
                try PacketRedirect.install(
                    namespacePath: namespace.path, address: listen, udpPort: listening.udp.port, tcpPort: listening.tcp.port)
                redirectLock.withLock { redirectPaths[sandbox] = namespace.path }
            }
        } catch {
            close(udp)
            close(tcp)
            throw error
        }
        let done = DispatchSemaphore(value: 0)
        submit(.add(sandbox, udp: udp, tcp: tcp, done))
        done.wait()
        logger.debug("serving DNS", metadata: ["sandbox": "\(sandbox)", "netns": "\(namespace.path)", "udp": "\(listening.udp)"])
        return listening
    }

    /// Stops serving `sandbox`. When it returns, every socket it had is closed, so deleting the
    /// sandbox's namespace frees it (an open socket would keep the namespace and its links alive).
    public func stopServing(_ sandbox: SandboxID) {
        let done = DispatchSemaphore(value: 0)
        submit(.remove(sandbox, done))
        done.wait()
        if let path = redirectLock.withLock({ redirectPaths.removeValue(forKey: sandbox) }) {
            PacketRedirect.remove(namespacePath: path)
        }
    }

    /// Stops the serving thread and closes every socket.
    public func shutdown() {
        guard thread != nil else { return }
        submit(.stop)
        while thread?.isFinished == false { usleep(1000) }
        thread = nil
        namespaceThread.shutdown()
    }

    private func submit(_ command: Command) {
        commands.post(command)
        Self.signal(wakeFD)
    }

    private static func signal(_ fd: Int32) {
        var one: UInt64 = 1
        _ = write(fd, &one, 8)
    }

    // MARK: - Loop thread

    private func register(_ source: Source, fd: Int32, events: UInt32 = dnsd_EPOLLIN) -> Int {
        let token: Int
        if let free = freeTokens.popLast() {
            token = free
            sources[token] = source
        } else {
            token = sources.count
            sources.append(source)
        }
        if dnsd_epoll_add(epoll, fd, events, UInt64(token)) != 0 {
            logger.error("\(SystemCallError.last("epoll add"))")
        }
        return token
    }

    private func unregister(_ token: Int, fd: Int32) {
        _ = dnsd_epoll_del(epoll, fd)
        sources[token] = nil
        freeTokens.append(token)
    }

    private func run() {
        var events = [dnsd_event](repeating: dnsd_event(), count: 64)
        var nextSweep = Sockets.now() + 1_000_000_000
        while running {
            var timeout: Int32 = 1000
            let before = Sockets.now()
            if let deadline = forwarder.nextDeadline {
                timeout = deadline <= before ? 0 : Int32(min(1000, (deadline - before + 999_999) / 1_000_000))
            }
            if !pausedListeners.isEmpty {
                timeout = min(timeout, resumeAcceptingAt <= before ? 0 : Int32((resumeAcceptingAt - before + 999_999) / 1_000_000))
            }
            let count = events.withUnsafeMutableBufferPointer { dnsd_epoll_wait(epoll, $0.baseAddress, 64, timeout) }
            let now = Sockets.now()
            if count > 0 {
                let table = store.table
                for i in 0..<Int(count) {
                    let token = Int(events[i].data)
                    guard token < sources.count, let source = sources[token] else { continue }
                    handle(source, token: token, events: events[i].events, table: table, now: now)
                }
            }
            forwarder.expire(now: now)
            if !pausedListeners.isEmpty, now >= resumeAcceptingAt { resumeAccepting() }
            if now >= nextSweep {
                closeIdleConnections(now: now)
                // New source ports for the forwarder, a few sockets per second.
                forwarder.recycleSockets(count: 4) { index, old, new in
                    unregister(upstreamTokens[index], fd: old)
                    upstreamTokens[index] = register(.upstream(index), fd: new)
                }
                nextSweep = now + 1_000_000_000
            }
        }
        for sandbox in Array(served.keys) { removeSandbox(sandbox) }
    }

    @inline(__always)
    private func handle(_ source: Source, token: Int, events: UInt32, table: RecordTable, now: UInt64) {
        switch source {
        case .udp(let listener):
            serveDatagrams(listener, table: table, now: now)
        case .connection(let connection):
            serveConnection(connection, events: events, table: table, now: now)
        case .tcpListener(let fd, let sandbox):
            accept(on: fd, for: sandbox, token: token, now: now)
        case .upstream(let index):
            forwarder.readAnswers(from: index, now: now)
        case .wake:
            var value: UInt64 = 0
            _ = read(wakeFD, &value, 8)
            for command in commands.takeAll() { perform(command) }
            forwarder.collectTCPResults()
        }
    }

    private func perform(_ command: Command) {
        switch command {
        case .add(let sandbox, let udpFD, let tcpFD, let done):
            removeSandbox(sandbox)
            let listener = UDPListener(fd: udpFD, sandbox: sandbox)
            let udpToken = register(.udp(listener), fd: udpFD)
            let tcpToken = register(.tcpListener(tcpFD, sandbox), fd: tcpFD)
            served[sandbox] = Served(udp: listener, udpToken: udpToken, tcpFD: tcpFD, tcpToken: tcpToken)
            done.signal()
        case .remove(let sandbox, let done):
            removeSandbox(sandbox)
            done.signal()
        case .stop:
            running = false
        }
    }

    private func removeSandbox(_ sandbox: SandboxID) {
        guard let entry = served.removeValue(forKey: sandbox) else { return }
        for token in entry.connections {
            if case .connection(let connection) = sources[token] { closeConnection(connection, forget: false) }
        }
        unregister(entry.udpToken, fd: entry.udp.fd)
        entry.udp.isOpen = false
        close(entry.udp.fd)
        unregister(entry.tcpToken, fd: entry.tcpFD)
        close(entry.tcpFD)
    }

    /// One batch from one sandbox's UDP socket: answer what the table can, forward the rest.
    /// (epoll is level-triggered: a socket with more queued is ready again next turn, after the
    /// other ready sockets had theirs.)
    @inline(__always)
    private func serveDatagrams(_ listener: UDPListener, table: RecordTable, now: UInt64) {
        if listener !== lastListener {
            lastListener = listener
            lastSwitch = now
        }
        let shared = now &- lastSwitch < Self.sharedWindowNanoseconds
        do {
            let count = batch.receive(from: listener.fd, upTo: shared ? Self.sharedBatch : batch.capacity)
            guard count > 0 else { return }
            for i in 0..<count {
                let packet = batch.packet(i)
                switch responder.respond(to: packet, from: listener.sandbox, table: table, into: batch.output(i), overUDP: true) {
                case .reply(let length):
                    counters.countReply(batch.output(i), length: length)
                    batch.queueReply(i, length: length)
                case .forward(let query):
                    let sender = batch.sender(i)
                    // The client's own EDNS size bounds what is relayed to it.
                    let limit = min(max(query.edns?.udpPayloadSize ?? MessageSize.classicUDP, MessageSize.classicUDP), 4096)
                    forwarder.forward(
                        packet, query: query,
                        for: .udp(listener, address: sender.address, addressLength: sender.length, limit: limit), now: now)
                case .drop:
                    continue
                }
            }
            batch.sendQueued(on: listener.fd)
        }
    }

    /// The listener served last, and when the loop last moved between sandboxes.
    private var lastListener: UDPListener?
    private var lastSwitch: UInt64 = 0
    private static let sharedWindowNanoseconds: UInt64 = 2_000_000
    private static let sharedBatch = 4

    private func accept(on fd: Int32, for sandbox: SandboxID, token listenerToken: Int, now: UInt64) {
        for _ in 0..<16 {
            let client = Glibc.accept(fd, nil, nil)
            if client >= 0 { acceptFailureLogged = false }
            guard client >= 0 else {
                switch errno {
                case EINTR, ECONNABORTED, EPROTO: continue
                case EMFILE, ENFILE, ENOBUFS, ENOMEM: pauseAccepting(fd, token: listenerToken, sandbox: sandbox, now: now)
                default: break
                }
                return
            }
            _ = fcntl(client, F_SETFL, fcntl(client, F_GETFL) | O_NONBLOCK)
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            guard served[sandbox] != nil else {
                close(client)
                continue
            }
            if served[sandbox]!.connections.count >= configuration.maxTCPConnectionsPerSandbox {
                // RFC 7766 §6.2.3: under pressure the longest-idle connection makes room, so a
                // client that needs TCP now (after a truncated answer) is served at once.
                guard let victim = longestIdleConnection(of: sandbox) else {
                    close(client)
                    continue
                }
                logger.debug("TCP connection limit reached: closing the longest-idle one", metadata: ["sandbox": "\(sandbox)"])
                closeConnection(victim)
            }
            let token = freeTokens.last ?? sources.count
            let connection = TCPConnection(fd: client, sandbox: sandbox, token: token, now: now)
            let registered = register(.connection(connection), fd: client)
            precondition(registered == token)
            served[sandbox]!.connections.insert(token)
        }
    }

    /// The connection of `sandbox` that was active least recently, preferring those that owe
    /// the client nothing.
    private func longestIdleConnection(of sandbox: SandboxID) -> TCPConnection? {
        var best: TCPConnection?
        for token in served[sandbox]?.connections ?? [] {
            guard case .connection(let connection) = sources[token] else { continue }
            guard let current = best else {
                best = connection
                continue
            }
            let idle = connection.pendingForwards == 0 && connection.pendingOutput == 0
            let currentIdle = current.pendingForwards == 0 && current.pendingOutput == 0
            if (idle && !currentIdle) || (idle == currentIdle && connection.lastActive < current.lastActive) { best = connection }
        }
        return best
    }

    /// Out of file descriptors (or kernel memory): stop watching this listener for a moment
    /// rather than spin on a connection that cannot be accepted; it waits in the backlog.
    private func pauseAccepting(_ fd: Int32, token: Int, sandbox: SandboxID, now: UInt64) {
        if pausedListeners.isEmpty {
            if !acceptFailureLogged {
                logger.error("DNS over TCP: cannot accept (\(String(cString: strerror(errno)))); pausing the listeners, retrying every 100 ms")
                acceptFailureLogged = true
            }
            resumeAcceptingAt = now + Self.acceptPauseNanoseconds
        }
        _ = dnsd_epoll_mod(epoll, fd, 0, UInt64(token))
        pausedListeners.append((fd, token, sandbox))
    }

    private func resumeAccepting() {
        for (fd, token, sandbox) in pausedListeners where served[sandbox]?.tcpToken == token {
            _ = dnsd_epoll_mod(epoll, fd, dnsd_EPOLLIN, UInt64(token))
        }
        pausedListeners.removeAll()
    }

    private var pausedListeners: [(fd: Int32, token: Int, sandbox: SandboxID)] = []
    private var resumeAcceptingAt: UInt64 = 0
    private var acceptFailureLogged = false
    private static let acceptPauseNanoseconds: UInt64 = 100_000_000

    private func serveConnection(_ connection: TCPConnection, events: UInt32, table: RecordTable, now: UInt64) {
        connection.lastActive = now
        if events & dnsd_EPOLLOUT != 0 { flush(connection) }
        guard connection.isOpen else { return }
        guard events & (dnsd_EPOLLIN | dnsd_EPOLLHUP | dnsd_EPOLLERR) != 0 || connection.hasBufferedMessage else { return }
        let keep = connection.readMessages { packet in
            switch responder.respond(to: packet, from: connection.sandbox, table: table, into: tcpScratch, overUDP: false) {
            case .reply(let length):
                counters.countReply(tcpScratch, length: length)
                connection.enqueue(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(tcpScratch)[0..<length]))
            case .forward(let query):
                forwarder.forward(packet, query: query, for: .tcp(connection), now: now)
            case .drop:
                break
            }
        }
        guard keep else {
            closeConnection(connection)
            return
        }
        flush(connection)
    }

    /// Writes what a connection owes. Watches for writability while some remains; stops
    /// reading while the client lets answers pile up; closes it past the output limit.
    private func flush(_ connection: TCPConnection) {
        guard connection.isOpen else { return }
        if connection.overflowed {
            logger.debug("TCP client does not read its answers: closing", metadata: ["sandbox": "\(connection.sandbox)"])
            closeConnection(connection)
            return
        }
        let pending = connection.flush()
        if connection.isFinished {
            closeConnection(connection)
            return
        }
        var events: UInt32 = 0
        if !connection.readClosed && !connection.isBackedUp { events |= dnsd_EPOLLIN }
        // Queries left buffered while the output was backed up: a writable socket brings the
        // loop back to them even if the client sends nothing more.
        if pending || connection.hasBufferedMessage { events |= dnsd_EPOLLOUT }
        _ = dnsd_epoll_mod(epoll, connection.fd, events, UInt64(connection.token))
    }

    private func closeConnection(_ connection: TCPConnection, forget: Bool = true) {
        guard connection.isOpen else { return }
        unregister(connection.token, fd: connection.fd)
        if forget { served[connection.sandbox]?.connections.remove(connection.token) }
        connection.close()
    }

    private func closeIdleConnections(now: UInt64) {
        let idle = UInt64(configuration.tcpIdleTimeoutMilliseconds) * 1_000_000
        for entry in served.values {
            for token in entry.connections {
                guard case .connection(let connection) = sources[token] else { continue }
                if now - connection.lastActive > idle { closeConnection(connection) }
            }
        }
    }
}
