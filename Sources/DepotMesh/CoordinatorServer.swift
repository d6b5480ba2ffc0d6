import DepotAgent
import Foundation
import Hummingbird
import Logging

extension Coordinator {
    /// One coordinator's entry in `/mesh/capabilities`.
    struct CapabilityMatch: Encodable {
        var coordinatorId: String
        var agentCount: Int
        var totalParamCapacity: Double
        var avgLoad: Double
        var ageSeconds: Double
        var stale: Bool
    }

    public func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: ErrorMiddleware())
        for path in ["/register", "/heartbeat"] {
            router.post(RouterPath(stringLiteral: path)) { request, context in
                let heartbeat = try await JSON.decode(Heartbeat.self, from: request, context: context)
                guard heartbeat.protocolVersion == Heartbeat.protocolVersion else {
                    throw AgentError.badRequest("protocolVersion \(heartbeat.protocolVersion) is not supported; this coordinator speaks \(Heartbeat.protocolVersion)")
                }
                guard !heartbeat.agentId.isEmpty, heartbeat.agentId.count <= 128 else {
                    throw AgentError.badRequest("field 'agentId' must be 1 to 128 characters")
                }
                try self.record(heartbeat)
                return JSON.response(["status": "ok", "coordinatorId": self.id])
            }
        }
        router.get("/mesh/agents") { _, _ in JSON.response(self.agentRows()) }
        router.get("/mesh/summary") { _, _ in JSON.response(self.summary()) }
        router.get("/mesh/capabilities") { request, _ in
            let summary = self.summary()
            guard let model = request.uri.queryParameters.get("model") else { return JSON.response([summary]) }
            let matches = summary.modelAvailability[model].map {
                [CapabilityMatch(coordinatorId: self.id, agentCount: $0.agentCount, totalParamCapacity: $0.totalParamCapacity,
                                 avgLoad: $0.avgLoad, ageSeconds: 0, stale: false)]
            } ?? []
            return JSON.response(matches)
        }
        router.get("/mesh/route") { request, _ in
            guard let model = request.uri.queryParameters.get("model") else { throw AgentError.badRequest("give ?model=NAME") }
            guard let best = self.route(model) else { throw AgentError.notFound("no available agent runs '\(model)'") }
            return JSON.response(["agentId": best.heartbeat.agentId, "address": best.heartbeat.address,
                                  "coordinatorId": self.id])
        }
        return router
    }

    /// Serves until SIGTERM or SIGINT; `onListening` gets the bound port.
    public func run(host: String, port: Int, onListening: @escaping @Sendable (Int) async -> Void) async throws {
        var logger = Logger(label: "depot.coordinator")
        logger.logLevel = .warning
        let app = Application(router: router(), configuration: .init(address: .hostname(host, port: port), serverName: "depot-coordinator"),
                              onServerRunning: { channel in await onListening(channel.localAddress?.port ?? 0) }, logger: logger)
        try await app.runService(gracefulShutdownSignals: [.sigterm, .sigint])
    }
}
