import AsyncHTTPClient
import Foundation
import MeshProtocol
import NIOCore
import ServiceLifecycle

/// One queue per federation peer, so a peer that hangs delays no other; and what was sent.
public final class GossipOutbox: @unchecked Sendable {
    public struct Traffic: Codable, Sendable {
        /// Gossip POSTs that reached a peer, and their bodies' bytes.
        public var sent = 0
        public var sentBytes = 0
        /// POSTs that failed (the peer was down or refused); the next round carries the news.
        public var failed = 0
    }

    let peers: [CoordinatorPeer]
    let queues: [AsyncStream<GossipMessage>]
    private let continuations: [AsyncStream<GossipMessage>.Continuation]
    // Guarded by `lock`.
    private var url: String?
    private var counted = Traffic()
    private let lock = NSLock()

    init(peers: [CoordinatorPeer]) {
        self.peers = peers
        let streams = peers.map { _ in AsyncStream.makeStream(of: GossipMessage.self, bufferingPolicy: .bufferingNewest(256)) }
        queues = streams.map(\.stream)
        continuations = streams.map(\.continuation)
    }

    /// Where this coordinator answers, once it listens.
    var ownURL: String? {
        get { lock.withLock { url } }
        set { lock.withLock { url = newValue } }
    }

    var traffic: Traffic { lock.withLock { counted } }

    /// Queues a message for every peer but the given ones (whoever sent or made it).
    func send(_ message: GossipMessage, skipping: Set<String> = []) {
        for (peer, continuation) in zip(peers, continuations) where !skipping.contains(peer.id) { continuation.yield(message) }
    }

    func count(bytes: Int?) {
        lock.withLock {
            if let bytes { counted.sent += 1; counted.sentBytes += bytes } else { counted.failed += 1 }
        }
    }
}

/// Sends this coordinator's summary to its peers every gossip interval, and what it relays.
/// When a model becomes available here or stops being so, the summary goes out early, at most
/// every tenth of the interval, so routers elsewhere learn of it in seconds, not a minute.
struct GossipService: Service {
    let coordinator: Coordinator

    func run() async throws {
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        defer { client.shutdown(queue: .global()) { _ in } }
        let outbox = coordinator.outbox
        // Graceful shutdown cancels the group: the ticker's sleep and each queue's wait end.
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    let interval = coordinator.configuration.gossipInterval, step = interval / 10
                    // The first round waits for the server's address (the summary names it).
                    while outbox.ownURL == nil && !Task.isCancelled { try? await Task.sleep(for: .milliseconds(10)) }
                    while !Task.isCancelled {
                        if let url = outbox.ownURL, let message = try? coordinator.outgoing(url: url) { outbox.send(message) }
                        var waited = Duration.zero
                        repeat {
                            try? await Task.sleep(for: step)
                            waited += step
                        } while waited < interval && !Task.isCancelled && !coordinator.takeModelsChanged()
                    }
                }
                for (peer, queue) in zip(outbox.peers, outbox.queues) {
                    group.addTask {
                        for await message in queue {
                            guard let body = try? GossipMessage.encoder.encode(message) else { continue }
                            outbox.count(bytes: await Self.post(body, to: peer, with: client) ? body.count : nil)
                        }
                    }
                }
            }
        }
    }

    /// True when the peer took the POST (2xx, or 409: it already had the news).
    static func post(_ body: Data, to peer: CoordinatorPeer, with client: HTTPClient) async -> Bool {
        var request = HTTPClientRequest(url: peer.url + "/mesh/gossip")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(bytes: body))
        guard let response = try? await client.execute(request, timeout: .seconds(5)) else { return false }
        _ = try? await response.body.collect(upTo: 1 << 20)
        return (200..<300).contains(response.status.code) || response.status == .conflict
    }
}
