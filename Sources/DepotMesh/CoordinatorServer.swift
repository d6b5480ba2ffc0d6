import AsyncHTTPClient
import DepotHTTP
import Foundation
import Hummingbird
import Logging
import MeshProtocol
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

    /// A page of `/mesh/agents` (installed models listed with `?installed=1`).
    struct AgentPage: Encodable {
        var agents: [AgentRow]
        var total: Int
        var offset: Int
        /// The offset of the next page, or nil after the last.
        var nextOffset: Int?
    }

    public func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: ErrorMiddleware())
        router.add(middleware: BrowserBoundaryMiddleware(allowedHosts: configuration.allowedHosts))
        let limit = configuration.limits.maximumBodyBytes
        router.add(middleware: BodyLimitMiddleware(limit: limit) { request in
            if request.uri.path == "/mesh/gossip" { self.countRejection(.oversized) }
        })
        let decoder = JSONDecoder()
        router.get("/mesh/challenge") { _, _ in JSON.response(self.challenge()) }
        router.post("/register") { request, context in
            let registration = try await JSON.decode(AgentRegistration.self, from: request, context: context, decoder: decoder, limit: limit)
            return JSON.response(try self.register(registration))
        }
        router.post("/heartbeat") { request, context in
            var request = request
            let body = try await request.collectBody(upTo: limit)
            try self.heartbeat(body: body, authorization: request.headers[.authorization])
            return JSON.response(self.heartbeatRecorded)
        }
        router.get("/mesh/agents") { request, _ in
            let query = request.uri.queryParameters
            let pageSize = try Self.integer(query.get("limit"), named: "limit", in: 1...1_000) ?? 100
            let offset = try Self.integer(query.get("offset"), named: "offset", in: 0...Int(Int32.max)) ?? 0
            let rows = self.agentRows()
            var page = Array(rows.dropFirst(offset).prefix(pageSize))
            if query.get("installed") != "1" { page = page.map(\.summarized) }
            return JSON.response(AgentPage(agents: page, total: rows.count, offset: offset,
                                           nextOffset: offset + page.count < rows.count ? offset + page.count : nil))
        }
        router.get("/mesh/stats") { _, _ in JSON.response(self.stats) }
        router.get("/mesh/seeders") { request, _ in
            let query = request.uri.queryParameters
            let limit = try Self.integer(query.get("limit"), named: "limit", in: 1...Self.maximumSeedersPerAnswer) ?? 8
            let size = try Self.integer(query.get("size"), named: "size", in: 1...Int(Int64.max)).map(UInt64.init)
            return JSON.response(try await self.seedersAcrossFederation(of: query.get("sha256") ?? "", credential: Self.bearer(request),
                                                                       size: size, limit: limit))
        }
        router.post("/mesh/federation/seeders") { request, context in
            let asked = try await JSON.decode(FederatedSeedersRequest.self, from: request, context: context, decoder: decoder, limit: limit)
            return JSON.response(try self.federatedSeeders(asked))
        }
        router.get("/mesh/federation/holds") { request, _ in
            let query = request.uri.queryParameters
            return JSON.response(["holds": self.holds(agent: query.get("agent") ?? "", sha256: query.get("sha256") ?? "")])
        }
        router.post("/mesh/receipts") { request, context in
            let submission = try await JSON.decode(ReceiptSubmission.self, from: request, context: context, decoder: decoder, limit: limit)
            return JSON.response(try self.submitReceipts(submission, credential: Self.bearer(request)))
        }
        router.post("/mesh/reports") { request, context in
            let report = try await JSON.decode(SeederReport.self, from: request, context: context, decoder: decoder, limit: limit)
            let banned = try await self.report(report, credential: Self.bearer(request))
            return JSON.response(["status": banned ? "banned" : "recorded"])
        }
        router.post("/mesh/federation/reports") { request, context in
            let report = try await JSON.decode(FederatedReport.self, from: request, context: context, decoder: decoder, limit: limit)
            return JSON.response(["status": try self.federatedReport(report) ? "banned" : "recorded"])
        }
        router.get("/mesh/credits") { request, _ in
            await self.settleFederatedCredits()
            return JSON.response(try self.credits(of: request.uri.queryParameters.get("agent") ?? ""))
        }
        router.get("/mesh/summary") { _, _ in JSON.response(self.summary()) }
        router.get("/mesh/capabilities") { request, _ in
            guard let model = request.uri.queryParameters.get("model") else {
                return JSON.response([self.summary()] + self.liveRemoteSummaries().map(\.signed.summary))
            }
            return JSON.response(self.capabilities(model))
        }
        router.get("/mesh/route") { request, _ in
            guard let model = request.uri.queryParameters.get("model") else { throw APIError.badRequest("give ?model=NAME") }
            if let best = self.route(model) {
                return JSON.response(["agentId": best.heartbeat.agentId, "address": best.heartbeat.address, "coordinatorId": self.id])
            }
            // No local agent fits: the best federated coordinator that has one.
            guard let remote = self.capabilities(model).first(where: { $0.coordinatorId != self.id }), let url = remote.url else {
                throw APIError.notFound("no available agent runs '\(model.prefix(200))' here or at a federated coordinator")
            }
            return JSON.response(["coordinatorId": remote.coordinatorId, "coordinatorURL": url])
        }
        router.post("/mesh/gossip") { request, context in
            let message: GossipMessage
            do {
                message = try await JSON.decode(GossipMessage.self, from: request, context: context, decoder: GossipMessage.decoder, limit: limit)
            } catch let error as any HTTPResponseError where error.status == .contentTooLarge {
                self.countRejection(.oversized)
                return APIError(.contentTooLarge, "gossip refused: oversized").response
            }
            switch self.receive(message) {
            case .success(let fresh):
                if fresh { self.forward(message) }
                return JSON.response(["status": fresh ? "accepted" : "known"])
            case .failure(let reason):
                let status: HTTPResponse.Status = switch reason {
                case .notAPeer: .forbidden
                case .replayed, .duplicate: .conflict
                case .oversized: .contentTooLarge
                default: .badRequest
                }
                return APIError(status, "gossip refused: \(reason.rawValue)").response
            }
        }
        router.get("/mesh/gossip/stats") { _, _ in JSON.response(self.gossipStats) }
        return router
    }

    /// The session credential in `Authorization: Bearer`.
    static func bearer(_ request: Request) -> String? { bearer(request.headers[.authorization]) }

    static func bearer(_ authorization: String?) -> String? {
        authorization.flatMap { $0.hasPrefix("Bearer ") ? String($0.dropFirst(7)) : nil }
    }

    /// `POST /heartbeat`, on the router or on the event loop (the hot path: every agent, every
    /// interval).
    func heartbeat(body: ByteBuffer, authorization: String?) throws(APIError) {
        guard body.readableBytes > 0 else { throw APIError.badRequest("the request needs a JSON body") }
        // The plain form agents send, read directly; anything else (and every error message)
        // from Foundation's decoder.
        let heartbeat: Heartbeat
        if let plain = body.withUnsafeReadableBytes(HeartbeatReader.read) {
            heartbeat = plain
        } else {
            do { heartbeat = try JSON.decode(Heartbeat.self, from: Data(buffer: body, byteTransferStrategy: .noCopy), decoder: Self.heartbeatDecoder) } catch {
                throw error as? APIError ?? APIError.badRequest("the body is not valid JSON")
            }
        }
        try self.heartbeat(heartbeat, credential: Self.bearer(authorization))
    }

    /// One for every heartbeat: making a decoder costs about as much as decoding one.
    private static let heartbeatDecoder = JSONDecoder()

    var heartbeatRecorded: [String: String] { ["status": "ok", "coordinatorId": id] }

    static func integer(_ text: String?, named name: String, in range: ClosedRange<Int>) throws -> Int? {
        guard let text else { return nil }
        guard let value = Int(text), range.contains(value) else {
            throw APIError.badRequest("'\(name)' must be a whole number from \(range.lowerBound) to \(range.upperBound)")
        }
        return value
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
        let recorded = JSON.body(heartbeatRecorded)
        let heartbeats = EventLoopRoute(.post, "/heartbeat") { head, body throws(APIError) in
            try self.heartbeat(body: body, authorization: head.headerFields[.authorization])
            return recorded
        }
        let server = configuration.limits.server(eventLoopRoutes: [heartbeats], allowedHosts: configuration.allowedHosts)
        let app = Application(router: router(), server: server,
                              configuration: .init(address: .hostname(host, port: port), serverName: "depot-coordinator"),
                              services: [GossipService(coordinator: self)],
                              onServerRunning: { channel in
                                  self.outbox.ownURL = "http://\(host == "0.0.0.0" ? "127.0.0.1" : host):\(channel.localAddress?.port ?? 0)"
                                  await onListening(channel.localAddress?.port ?? 0)
                              }, logger: logger)
        try await app.runService(gracefulShutdownSignals: [.sigterm, .sigint])
        try? persist()  // the last half second of heartbeats
    }
}
