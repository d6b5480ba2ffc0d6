import Foundation
import Hummingbird
import HummingbirdCore
import NIOCore
import NIOHTTPTypes

/// What keeps one client from starving the others: a cap on open connections, a deadline for
/// each request's head (a client dripping half a header is cut off), an idle timeout, and a
/// body limit (413 beyond it).
public struct ServerLimits: Sendable {
    public var maximumConnections = 512
    /// From connecting to a complete request head (a client dripping half a header is cut off).
    public var requestHeadTimeout: Duration = .seconds(10)
    /// Reading nothing for this long while a request is read, or between requests, closes the
    /// connection; it is also how long the next request head on a kept-alive connection may
    /// take to arrive (so dripping it byte by byte does not keep the connection either).
    public var idleTimeout: Duration = .seconds(60)
    public var maximumBodyBytes = 2 << 20

    public init() {}

    /// Descriptors kept for everything but connections (the store, blobs, partial files, logs).
    static let reservedDescriptors = 64

    /// The connection cap, lowered to what the process's descriptor limit (`ulimit -n`) leaves
    /// after the reserve: past it, accepting fails and the files a request needs cannot open.
    public var effectiveMaximumConnections: Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return maximumConnections }
        return max(4, min(maximumConnections, Int(clamping: limit.rlim_cur) - Self.reservedDescriptors))
    }

    /// The HTTP/1 server with these limits, for `Application(server:)`.
    public func server() -> HTTPServerBuilder { .http1(configuration: http1Configuration()) }

    func http1Configuration() -> HTTP1Channel.Configuration {
        let counter = ConnectionCounter(limit: effectiveMaximumConnections)
        let headTimeout = TimeAmount(requestHeadTimeout), idle = TimeAmount(idleTimeout)
        return .init(additionalChannelHandlers: [ConnectionGuard(counter: counter, headTimeout: headTimeout, keepAliveTimeout: idle)],
                     idleTimeout: idle)
    }
}

/// Refuses a body whose declared length is over the limit before reading any of it (a body
/// without a length is still cut off at the limit where it is collected).
public struct BodyLimitMiddleware<Context: RequestContext>: RouterMiddleware {
    let limit: Int
    /// Told of each request refused, so a server can count them by route.
    let refused: @Sendable (Request) -> Void

    public init(limit: Int, refused: @escaping @Sendable (Request) -> Void = { _ in }) {
        self.limit = limit
        self.refused = refused
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if let declared = request.headers[.contentLength].flatMap(Int.init), declared > limit {
            refused(request)
            return APIError(.contentTooLarge, "the request body is \(declared) bytes; this server takes at most \(limit)").response
        }
        return try await next(request, context)
    }
}

/// Open connections, shared by every connection's guard.
final class ConnectionCounter: @unchecked Sendable {
    let limit: Int
    private var open = 0
    private let lock = NSLock()  // guards `open`

    init(limit: Int) { self.limit = limit }

    func acquire() -> Bool {
        lock.withLock {
            guard open < limit else { return false }
            open += 1
            return true
        }
    }

    func release() { lock.withLock { open -= 1 } }
}

/// One per connection: counts it against the cap (closing it when the cap is reached) and
/// closes it when a request head does not arrive in time: `headTimeout` after connecting, or
/// `keepAliveTimeout` once every request on it has been answered (pipelined requests keep it
/// open until the last answer).
final class ConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    let counter: ConnectionCounter
    let headTimeout: TimeAmount
    let keepAliveTimeout: TimeAmount
    private var counted = false
    /// Since when a request head is awaited, and for how long; nil while requests are answered.
    private var waitingSince: NIODeadline?
    private var allowance: TimeAmount
    /// One timer at a time, rescheduled when it finds the wait restarted: arming one per
    /// request would cost a timer (and a wake-up of the event loop) on every response.
    private var timer: Scheduled<Void>?
    /// Request heads read whose response has not ended.
    private var unanswered = 0

    init(counter: ConnectionCounter, headTimeout: TimeAmount, keepAliveTimeout: TimeAmount) {
        self.counter = counter
        self.headTimeout = headTimeout
        self.keepAliveTimeout = keepAliveTimeout
        allowance = headTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        guard counter.acquire() else {
            context.close(promise: nil)
            return
        }
        counted = true
        startWaiting(context, for: headTimeout)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        if counted {
            counted = false
            counter.release()
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head = unwrapInboundIn(data) {
            unanswered += 1
            waitingSince = nil
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) {
            unanswered = max(0, unanswered - 1)
            if unanswered == 0 { startWaiting(context, for: keepAliveTimeout) }
        }
        context.write(data, promise: promise)
    }

    private func startWaiting(_ context: ChannelHandlerContext, for allowance: TimeAmount) {
        waitingSince = .now()
        self.allowance = allowance
        if timer == nil { schedule(context, in: allowance) }
    }

    private func schedule(_ context: ChannelHandlerContext, in delay: TimeAmount) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: delay) {
            let (handler, context) = loopBound.value
            handler.timer = nil
            guard let since = handler.waitingSince else { return }  // answering: the next wait rearms
            let waited = NIODeadline.now() - since
            if waited >= handler.allowance {
                context.close(promise: nil)
            } else {
                handler.schedule(context, in: handler.allowance - waited)
            }
        }
    }
}
