import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTPTypes

/// A route answered on the connection's event loop, ahead of the router: for a small, hot,
/// synchronous request (a coordinator's heartbeats) whose work costs less than the router's
/// per-request task, body stream and response writer around it. Only the plain case is taken
/// here: method and path match, the body's declared length is within the limit, no `Origin`,
/// a `Host` the browser boundary accepts, no `Connection: close`, and no earlier request on the
/// connection still unanswered (so answers keep their order). Anything else goes on to the
/// router, whose middleware answers it as before: the same route must be on the router too.
public struct EventLoopRoute: Sendable {
    public let method: HTTPRequest.Method
    public let path: String
    /// The body of a 200 JSON answer, from the request's head and body; runs on the event
    /// loop, so it must not block.
    public let answer: @Sendable (HTTPRequest, ByteBuffer) throws(APIError) -> ByteBuffer

    public init(_ method: HTTPRequest.Method, _ path: String,
                answer: @escaping @Sendable (HTTPRequest, ByteBuffer) throws(APIError) -> ByteBuffer) {
        self.method = method
        self.path = path
        self.answer = answer
    }
}

/// Hummingbird's HTTP/1 channel with the event-loop routes' handler placed after its
/// connection-state handler (which then keeps counting these requests for its idle timeout)
/// and before the router's stream.
struct HTTP1ChannelWithEventLoopRoutes: HTTPChannelHandler {
    let inner: HTTP1Channel
    let routes: [EventLoopRoute]
    let limits: EventLoopRouteHandler.Limits

    var responder: HTTPChannelHandler.Responder { inner.responder }

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<HTTP1Channel.Value> {
        inner.setup(channel: channel, logger: logger).flatMapThrowing { value in
            let pipeline = channel.pipeline.syncOperations
            let state = try pipeline.handler(type: HTTPConnectionStateHandler.self)
            try pipeline.addHandler(EventLoopRouteHandler(routes: routes, limits: limits), position: .after(state))
            return value
        }
    }

    func handle(value: HTTP1Channel.Value, logger: Logger) async {
        await inner.handle(value: value, logger: logger)
    }
}

final class EventLoopRouteHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    struct Limits {
        var maximumBodyBytes: Int
        var allowedHosts: Set<String>
    }

    let routes: [EventLoopRoute]
    let limits: Limits
    /// Requests passed on to the router whose answer has not ended.
    private var withRouter = 0
    /// The request being read for a route here.
    private var taken: (route: EventLoopRoute, head: HTTPRequest, body: ByteBuffer)?
    private var answeredSinceFlush = false

    init(routes: [EventLoopRoute], limits: Limits) {
        self.routes = routes
        self.limits = limits
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            if withRouter == 0, let route = route(for: head) {
                taken = (route, head, context.channel.allocator.buffer(capacity: 0))
                return
            }
            withRouter += 1
        case .body(var chunk):
            if taken != nil {
                taken!.body.writeBuffer(&chunk)
                return
            }
        case .end:
            if let (route, head, body) = taken {
                taken = nil
                answer(route, head, body, context: context)
                return
            }
        }
        context.fireChannelRead(data)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if answeredSinceFlush {
            answeredSinceFlush = false
            context.flush()
        }
        context.fireChannelReadComplete()
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) { withRouter = max(0, withRouter - 1) }
        context.write(data, promise: promise)
    }

    private func route(for head: HTTPRequest) -> EventLoopRoute? {
        guard let route = routes.first(where: { $0.method == head.method && head.path?.split(separator: "?").first.map(String.init) == $0.path }),
              let length = head.headerFields[.contentLength].flatMap(Int.init), length <= limits.maximumBodyBytes,
              head.headerFields[.transferEncoding] == nil, head.headerFields[.origin] == nil,
              head.headerFields[.connection]?.lowercased().contains("close") != true,
              BrowserBoundaryMiddleware<BasicRequestContext>.isAcceptable(host: head.authority ?? "", allowed: limits.allowedHosts)
        else { return nil }
        return route
    }

    private func answer(_ route: EventLoopRoute, _ head: HTTPRequest, _ body: ByteBuffer, context: ChannelHandlerContext) {
        let status: HTTPResponse.Status, answer: ByteBuffer
        do throws(APIError) {
            (status, answer) = (.ok, try route.answer(head, body))
        } catch {
            (status, answer) = (error.status, JSON.body(["error": error.message]))
        }
        let response = HTTPResponse(status: status, headerFields: [.contentType: "application/json; charset=utf-8",
                                                                   .contentLength: String(answer.readableBytes)])
        context.write(wrapOutboundOut(.head(response)), promise: nil)
        context.write(wrapOutboundOut(.body(answer)), promise: nil)
        context.write(wrapOutboundOut(.end(nil)), promise: nil)
        answeredSinceFlush = true
    }
}

extension ServerLimits {
    /// The HTTP/1 server with these limits, answering `routes` on the event loop when a
    /// request allows it (see `EventLoopRoute`); `allowedHosts` as the browser boundary's.
    public func server(eventLoopRoutes routes: [EventLoopRoute], allowedHosts: [String]) -> HTTPServerBuilder {
        let configuration = http1Configuration()
        let limits = EventLoopRouteHandler.Limits(maximumBodyBytes: maximumBodyBytes, allowedHosts: Set(allowedHosts.map { $0.lowercased() }))
        return HTTPServerBuilder { responder in
            HTTP1ChannelWithEventLoopRoutes(inner: HTTP1Channel(responder: responder, configuration: configuration), routes: routes, limits: limits)
        }
    }
}
