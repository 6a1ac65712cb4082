import CommandLineSupport
import ControlAPI
import CShim
import Foundation
import Node
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// The control API: HTTP/1.1 + JSON on the daemon's unix socket (mode 0600, peer uid checked),
/// served by SwiftNIO on one event-loop thread. A request is read whole (at most 1 MiB), turned
/// into a `Command` by `Routes`, carried out off the event loop (commands block on the store and
/// the kernel), and answered with its JSON, `Connection: close`. `GET /v1/events` streams one JSON
/// line per change until the client goes.
///
/// No client can stop or wedge it: one that hangs up early costs a failed write (no signal);
/// one that never sends is closed after `clientTimeout`; past `maxClients` at once a newcomer
/// gets 503; an events client that stops reading is dropped once its channel is not writable;
/// out of file descriptors, NIO's accept back-off waits and tries again (logged once).
final class APIServer: @unchecked Sendable {
    let path: String
    private let logger: Logger
    private let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    /// Where requests are carried out, off the event loop: commands wait on the store and the
    /// kernel, and a read must never queue behind them: libdispatch's global queue has only as
    /// many threads as cores, and twenty attaches waiting on etcd kept a `ps` waiting there.
    /// `workerThreads` requests run at once (a burst of a kubelet's or a runtime's calls); more
    /// wait for a free thread.
    private let workers = NIOThreadPool(numberOfThreads: APIServer.workerThreads)
    static let workerThreads = 32
    private var channel: Channel?
    private let active = ClientCount()

    /// How long a client may take to send its whole request (reset by nothing: a client that
    /// sends a byte now and then is cut off all the same), and to stay silent.
    static let clientTimeout = TimeAmount.seconds(5)
    static let maxClients = 128
    static let maxFollowers = 128
    /// What an events follower may have unread before it is dropped: a burst (a re-listing of
    /// thousands of endpoints) fits; a follower that does not read at all does not.
    static let followerBacklog = 4 << 20
    static let maxBody = 1 << 20

    init(path: String, logger: Logger) {
        self.path = path
        self.logger = logger
    }

    /// 0600; `DNSD_TEST_SOCKET_MODE` (octal) widens it for the test that proves the peer-uid
    /// check refuses a non-root client on its own.
    private static var socketMode: mode_t {
        ProcessInfo.processInfo.environment["DNSD_TEST_SOCKET_MODE"].flatMap { mode_t($0, radix: 8) } ?? 0o600
    }

    /// Listens; from then on every request goes to `routes`, and `GET /v1/events` (when `events`
    /// is given) to `events`' followers.
    func start(routes: any HTTPRoutes, events: EventHub?) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let logger = self.logger
        let active = self.active
        let workers = self.workers
        workers.start()
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 128)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(AcceptErrorLogger(logger: logger)) }
            }
            .childChannelInitializer { channel in
                let over = active.value.add(1, ordering: .relaxed).newValue > Self.maxClients
                let slot = ClientSlot(active)
                channel.closeFuture.whenComplete { _ in slot.release() }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: Self.clientTimeout))
                    try channel.pipeline.syncOperations.addHandler(
                        APIHandler(routes: routes, events: events, busy: over, slot: slot, workers: workers, logger: logger))
                }
            }
        unlink(path)
        let old = umask(0o077)
        defer { umask(old) }
        channel = try bootstrap.bind(unixDomainSocketPath: path).wait()
        guard chmod(path, Self.socketMode) == 0 else { throw CLIError("cannot set the mode of \(path): \(String(cString: strerror(errno)))") }
    }

    /// Stops accepting; requests already accepted go on (see `waitForClients`).
    func stop() {
        try? channel?.close().wait()
        channel = nil
        unlink(path)
    }

    /// Waits up to `seconds` for the clients being served to get their replies.
    func waitForClients(seconds: Double) {
        let deadline = Date().addingTimeInterval(seconds)
        while active.value.load(ordering: .relaxed) > 0, Date() < deadline { usleep(5000) }
    }
}

/// The connections being served, shared with the channel initializer: requests (`value`, at
/// most `maxClients`) and events followers (`followers`, counted apart: a follower lives as long
/// as its client, and must never make the daemon refuse requests).
final class ClientCount: Sendable {
    let value = Atomic<Int>(0)
    let followers = Atomic<Int>(0)
}

/// One connection's place in the counts: a request's until it becomes an events follower, and
/// given back once when it closes.
final class ClientSlot: @unchecked Sendable {
    private let counts: ClientCount
    private let lock = NSLock()
    private var following = false
    private var released = false

    init(_ counts: ClientCount) { self.counts = counts }

    /// Moves this connection from the requests to the followers; false (and nothing moved) when
    /// `maxFollowers` follow already.
    func becomeFollower() -> Bool {
        lock.withLock {
            guard !following, !released else { return following }
            guard counts.followers.add(1, ordering: .relaxed).newValue <= APIServer.maxFollowers else {
                counts.followers.subtract(1, ordering: .relaxed)
                return false
            }
            counts.value.subtract(1, ordering: .relaxed)
            following = true
            return true
        }
    }

    func release() {
        lock.withLock {
            guard !released else { return }
            released = true
            if following { counts.followers.subtract(1, ordering: .relaxed) } else { counts.value.subtract(1, ordering: .relaxed) }
        }
    }
}

/// Logs the server channel's accept failures (EMFILE...) once per episode; NIO's accept
/// back-off, after it in the pipeline, waits and accepts again.
private final class AcceptErrorLogger: ChannelInboundHandler {
    typealias InboundIn = Channel
    private let logger: Logger
    private var failing = false

    init(logger: Logger) { self.logger = logger }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if failing {
            logger.info("control socket: accepting again")
            failing = false
        }
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if !failing {
            logger.error("control socket: cannot accept (\(error)); backing off and retrying")
            failing = true
        }
        context.fireErrorCaught(error)
    }
}

/// What a server answers: a status and a JSON body for each request (run off the event loop).
protocol HTTPRoutes: Sendable {
    func respond(method: String, path: String, body: Data) -> (status: Int, body: Data)
}

/// The control API's routes: each request one typed `Command` for the daemon.
struct ControlRoutes: HTTPRoutes {
    let perform: @Sendable (Command) throws -> CommandResult

    func respond(method: String, path: String, body: Data) -> (status: Int, body: Data) {
        do {
            let (command, success) = try Routes.command(method: method, path: path, body: body)
            return (success, try perform(command).json())
        } catch {
            let refusal = APIError(error)
            return (refusal.status, APIHandler.errorBody(refusal.message))
        }
    }
}

/// One client connection: one request, one answer (or the events stream).
final class APIHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let routes: any HTTPRoutes
    private let events: EventHub?
    private let busy: Bool
    private let slot: ClientSlot
    private var deadline: Scheduled<Void>?
    private let workers: NIOThreadPool
    let logger: Logger
    private var head: HTTPRequestHead?
    private var body = ByteBuffer()
    private var peerIsRoot = false
    private var responding = false
    private var subscription: Int?

    init(routes: any HTTPRoutes, events: EventHub?, busy: Bool, slot: ClientSlot, workers: NIOThreadPool, logger: Logger) {
        self.slot = slot
        self.workers = workers
        self.routes = routes
        self.events = events
        self.busy = busy
        self.logger = logger
    }

    func channelActive(context: ChannelHandlerContext) {
        // Root only: the socket is 0600 already; peer credentials make it explicit.
        if let provider = context.channel as? SocketOptionProvider {
            provider.unsafeGetSocketOption(level: NIOBSDSocket.OptionLevel(rawValue: SOL_SOCKET),
                                           name: NIOBSDSocket.Option(rawValue: SO_PEERCRED)).whenComplete { [self] (result: Result<dnsd_ucred, Error>) in
                if case .success(let credentials) = result { peerIsRoot = credentials.uid == 0 }
            }
        }
        // The whole request within the client timeout, however its bytes trickle in (the idle
        // handler alone is reset by every byte).
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        deadline = context.eventLoop.scheduleTask(in: APIServer.clientTimeout) {
            let (handler, context) = bound.value
            if !handler.responding { context.close(promise: nil) }
        }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        if let subscription { events?.unsubscribe(subscription) }
        context.fireChannelInactive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // A client that never sends (or never finishes its request) is closed; one following
        // the events stream sends nothing by design.
        if event is IdleStateHandler.IdleStateEvent, !responding {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
        case .body(var chunk):
            guard !responding else { return }
            guard body.readableBytes + chunk.readableBytes <= APIServer.maxBody else {
                // Refused as soon as it is too large, not after reading the rest.
                responding = true
                return answer(context, 413, error: "request body over \(APIServer.maxBody) bytes")
            }
            body.writeBuffer(&chunk)
        case .end:
            guard let head, !responding else { return }
            responding = true
            route(head, context: context)
        }
    }

    private func route(_ head: HTTPRequestHead, context: ChannelHandlerContext) {
        guard !busy else { return answer(context, 503, error: "the daemon is busy (\(APIServer.maxClients) clients connected); try again") }
        guard peerIsRoot else { return answer(context, 403, error: "only root may control dnsd") }
        let method = head.method.rawValue
        let path = head.uri
        if let events, APIRoute.match(method: method, path: path)?.route == .events {
            guard slot.becomeFollower() else {
                return answer(context, 503, error: "too many events followers (\(APIServer.maxFollowers)); try again")
            }
            return follow(context, events)
        }
        let body = Data(self.body.readableBytesView)
        let routes = self.routes
        let loop = context.eventLoop
        let bound = NIOLoopBound((self, context), eventLoop: loop)
        // Off the event loop: commands block on the store and the kernel.
        workers.submit { _ in
            let reply = routes.respond(method: method, path: path, body: body)
            loop.execute {
                let (handler, context) = bound.value
                handler.write(context, reply.status, reply.body)
            }
        }
    }

    static func errorBody(_ message: String) -> Data {
        (try? JSONEncoder().encode(["error": message])) ?? Data("{}".utf8)
    }

    private func answer(_ context: ChannelHandlerContext, _ status: Int, error: String) {
        write(context, status, Self.errorBody(error))
    }

    private func write(_ context: ChannelHandlerContext, _ status: Int, _ json: Data) {
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Content-Length", value: String(json.count + 1))
        headers.add(name: "Connection", value: "close")
        let head = HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: status), headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        var buffer = context.channel.allocator.buffer(capacity: json.count + 1)
        buffer.writeBytes(json)
        buffer.writeInteger(UInt8(ascii: "\n"))
        context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in context.close(promise: nil) }
    }

    /// `GET /v1/events`: a chunked stream of JSON lines until the client goes (or stops reading).
    private func follow(_ context: ChannelHandlerContext, _ events: EventHub) {
        context.channel.setOption(ChannelOptions.writeBufferWaterMark,
                                  value: .init(low: APIServer.followerBacklog / 4, high: APIServer.followerBacklog)).whenFailure { _ in }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/x-ndjson")
        context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
        let loop = context.eventLoop
        let channel = context.channel
        let bound = NIOLoopBound((self, context), eventLoop: loop)
        subscription = events.subscribe { line in
            guard channel.isActive else { return false }
            loop.execute {
                let (handler, context) = bound.value
                guard context.channel.isWritable else {
                    // A follower that does not read (`followerBacklog` unread): dropped rather
                    // than buffered without bound, told why if it ever reads again.
                    handler.logger.warning("an events follower fell \(APIServer.followerBacklog >> 20) MiB behind; dropping it")
                    var reason = context.channel.allocator.buffer(capacity: 128)
                    reason.writeString(#"{"error":"dropped: this reader fell too far behind the events"}"# + "\n")
                    context.writeAndFlush(handler.wrapOutboundOut(.body(.byteBuffer(reason))), promise: nil)
                    context.close(promise: nil)
                    return
                }
                var buffer = context.channel.allocator.buffer(capacity: line.count)
                buffer.writeBytes(line)
                context.writeAndFlush(handler.wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
            }
            return true
        }
    }
}
