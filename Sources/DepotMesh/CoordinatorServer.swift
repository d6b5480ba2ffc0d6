import AsyncHTTPClient
import DepotAgent
import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle

extension Coordinator {
    /// One coordinator's entry in `/mesh/capabilities`.
    struct CapabilityMatch: Encodable {
        var coordinatorId: String
        var url: String?
        var agentCount: Int
        var totalParamCapacity: Double
        var avgLoad: Double
        var ageSeconds: Double
        var stale: Bool
    }

    public func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: ErrorMiddleware())
        let recorded = JSON.response(["status": "ok", "coordinatorId": id])
        let decoder = JSONDecoder()
        for path in ["/register", "/heartbeat"] {
            router.post(RouterPath(stringLiteral: path)) { request, context in
                let heartbeat = try await JSON.decode(Heartbeat.self, from: request, context: context, decoder: decoder)
                guard heartbeat.protocolVersion == Heartbeat.protocolVersion else {
                    throw AgentError.badRequest("protocolVersion \(heartbeat.protocolVersion) is not supported; this coordinator speaks \(Heartbeat.protocolVersion)")
                }
                guard !heartbeat.agentId.isEmpty, heartbeat.agentId.count <= 128 else {
                    throw AgentError.badRequest("field 'agentId' must be 1 to 128 characters")
                }
                guard (-1...1_000_000).contains(heartbeat.currentLoad) else {
                    throw AgentError.badRequest("field 'currentLoad' must be -1 (loading) or 0 to 1000000")
                }
                guard (0...1_000_000).contains(heartbeat.activeModelParamSize ?? 0) else {
                    throw AgentError.badRequest("field 'activeModelParamSize' must be 0 to 1000000 (billions of parameters)")
                }
                self.record(heartbeat)
                return recorded
            }
        }
        router.get("/mesh/agents") { _, _ in JSON.response(self.agentRows()) }
        router.get("/mesh/summary") { _, _ in JSON.response(self.summary()) }
        router.get("/mesh/capabilities") { request, _ in
            guard let model = request.uri.queryParameters.get("model") else {
                return JSON.response([self.summary()] + self.liveRemoteSummaries().map(\.signed.summary))
            }
            return JSON.response(self.capabilities(model))
        }
        router.get("/mesh/route") { request, _ in
            guard let model = request.uri.queryParameters.get("model") else { throw AgentError.badRequest("give ?model=NAME") }
            if let best = self.route(model) {
                return JSON.response(["agentId": best.heartbeat.agentId, "address": best.heartbeat.address, "coordinatorId": self.id])
            }
            // No local agent fits: the best federated coordinator that has one.
            guard let remote = self.capabilities(model).first(where: { $0.coordinatorId != self.id }), let url = remote.url else {
                throw AgentError.notFound("no available agent runs '\(model)' here or at a federated coordinator")
            }
            return JSON.response(["coordinatorId": remote.coordinatorId, "coordinatorURL": url])
        }
        router.post("/mesh/gossip") { request, context in
            let message = try await JSON.decode(GossipMessage.self, from: request, context: context, decoder: GossipMessage.decoder)
            switch self.receive(message) {
            case .success(let fresh):
                if fresh, message.hops + 1 < self.configuration.hopLimit { self.forward(message) }
                return JSON.response(["status": fresh ? "accepted" : "known"])
            case .failure(let reason):
                let status: HTTPResponse.Status = switch reason {
                case .notAPeer: .forbidden
                case .replayed, .duplicate: .conflict
                default: .badRequest
                }
                return AgentError(status, "gossip refused: \(reason.rawValue)").response
            }
        }
        router.get("/mesh/gossip/stats") { _, _ in JSON.response(self.gossipStats) }
        return router
    }

    /// This coordinator's and its federated peers' entries for `model`: available agents
    /// first, then capacity, then load; each with the age of its summary.
    func capabilities(_ model: String, at now: Date = Date()) -> [CapabilityMatch] {
        var matches: [CapabilityMatch] = []
        if let local = summary(at: now).modelAvailability[model] {
            matches.append(CapabilityMatch(coordinatorId: id, url: outbox.ownURL, agentCount: local.agentCount,
                                           totalParamCapacity: local.totalParamCapacity, avgLoad: local.avgLoad, ageSeconds: 0, stale: false))
        }
        for message in liveRemoteSummaries(at: now) {
            guard let entry = message.signed.summary.modelAvailability[model] else { continue }
            let age = now.timeIntervalSince(message.signed.sentAt)
            matches.append(CapabilityMatch(coordinatorId: message.signed.origin, url: message.signed.originURL,
                                           agentCount: entry.agentCount, totalParamCapacity: entry.totalParamCapacity,
                                           avgLoad: entry.avgLoad, ageSeconds: age, stale: age > 2 * configuration.gossipInterval.seconds))
        }
        return matches.sorted {
            ($1.agentCount, $1.totalParamCapacity, $0.avgLoad) < ($0.agentCount, $0.totalParamCapacity, $1.avgLoad)
        }
    }

    /// Serves until SIGTERM or SIGINT, gossiping to the peers; `onListening` gets the bound port.
    public func run(host: String, port: Int, onListening: @escaping @Sendable (Int) async -> Void) async throws {
        var logger = Logger(label: "depot.coordinator")
        logger.logLevel = .warning
        let app = Application(router: router(), configuration: .init(address: .hostname(host, port: port), serverName: "depot-coordinator"),
                              services: [GossipService(coordinator: self)],
                              onServerRunning: { channel in
                                  self.outbox.ownURL = "http://\(host == "0.0.0.0" ? "127.0.0.1" : host):\(channel.localAddress?.port ?? 0)"
                                  await onListening(channel.localAddress?.port ?? 0)
                              }, logger: logger)
        try await app.runService(gracefulShutdownSignals: [.sigterm, .sigint])
        try? persist()  // the last half second of heartbeats
    }
}
