import DepotHTTP
import Foundation
import Hummingbird
import Logging
import MeshProtocol
import ModelRuntime
import ModelTransfer
import NIOCore
import ServiceLifecycle

extension Agent {
    /// Every route: EdgeCoder, Ollama, jobs and events, metrics, the web UI.
    public func router() -> Router<AgentRequestContext> {
        let router = Router(context: AgentRequestContext.self)
        router.add(middleware: ErrorMiddleware(translate: Agent.translate))
        router.add(middleware: BrowserBoundaryMiddleware(allowedOrigins: configuration.origins, allowedHosts: configuration.allowedHosts))
        router.add(middleware: BodyLimitMiddleware(limit: configuration.limits.maximumBodyBytes))
        router.add(middleware: JSONBodyMiddleware())
        if let token = configuration.token {
            router.add(middleware: BearerTokenMiddleware(token: token, message: "this agent needs 'Authorization: Bearer <token>'",
                                                         needsToken: Self.needsToken))
        }
        addEdgeCoderRoutes(to: router)
        addOllamaRoutes(to: router)
        addOpenAIRoutes(to: router)
        addEmbeddingRoutes(to: router)
        addJobRoutes(to: router)
        addCacheRoutes(to: router)
        addStorageRoutes(to: router)
        addPeerRoutes(to: router)
        // Apps check this before they send a token: only the agent holding the store's key can sign.
        router.get("/agent/proof") { request, _ in
            let nonce = request.uri.queryParameters.get("nonce") ?? ""
            guard (16...128).contains(nonce.utf8.count), nonce.utf8.allSatisfy({ $0 == 0x2D || $0 == 0x5F || $0 == 0x3D || (0x30...0x39).contains($0)
                || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) }) else {
                throw AgentError.badRequest("give ?nonce= with 16 to 128 base64url characters")
            }
            let signature = try self.identity.key.signature(for: Data((AgentJobClient.proofPrefix + nonce).utf8))
            return JSON.response(["agentId": self.identity.id, "signature": signature.base64EncodedString()])
        }
        router.get("/mesh/overview") { _, _ in JSON.response(await self.meshOverview()) }
        router.get("/mesh/peers") { _, _ in JSON.response(self.nearby.current?.currentPeers() ?? []) }
        router.get("/mesh/peers/stats") { _, _ in JSON.response(self.nearby.current?.stats ?? NearbyDiscovery.Stats()) }
        router.get("/mesh/peers/route") { request, _ in
            guard let model = request.uri.queryParameters.get("model") else { throw AgentError.badRequest("give ?model=NAME") }
            guard let peer = self.nearby.current?.route(model) else { throw AgentError.notFound("no available nearby peer runs '\(model)'") }
            return JSON.response(peer)
        }
        return router
    }

    /// With a token, what a request may do without it: fetch the web UI's files (the page then
    /// asks for the token), ask the version, and fetch blobs as a peer (tickets and the LAN
    /// policy decide those). Reads need it too: jobs, events and metrics show what a user downloads.
    @Sendable static func needsToken(_ request: Request) -> Bool {
        let path = request.uri.path
        let open = request.method == .options || path.hasPrefix("/p2p/") || path == "/agent/proof"
            || ((request.method == .get || request.method == .head) && (path == "/" || path.hasPrefix("/ui/") || path == "/api/version"))
        return !open
    }

    /// Serves until SIGTERM or SIGINT; then pauses running downloads (their journal stays, so
    /// they resume later) and returns. `onListening` gets the bound port.
    public func run(onListening: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        var logger = Logger(label: "depot.agent")
        logger.logLevel = .warning
        let boundPort = LockedValue(0)
        var services: [any Service] = [AgentLifecycle(agent: self)]
        if let coordinator = configuration.coordinator {
            let host = configuration.host == "0.0.0.0" ? "127.0.0.1" : configuration.host
            services.append(HeartbeatService(agent: self, coordinator: coordinator, interval: configuration.heartbeatInterval,
                                             joinToken: configuration.joinToken, address: { "http://\(host):\(boundPort.current)" }))
        }
        if let discovery = configuration.discovery {
            let nearby = try NearbyDiscovery(configuration: discovery, ownID: identity.id)
            self.nearby.current = nearby
            let host = configuration.host == "0.0.0.0" ? discovery.interface : configuration.host
            services.append(AnnounceService(agent: self, discovery: nearby, host: host, port: { boundPort.current }))
        }
        let app = Application(
            router: router(),
            server: configuration.limits.server(),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "depot"),
            services: services,
            onServerRunning: { channel in
                boundPort.current = channel.localAddress?.port ?? 0
                await onListening(boundPort.current)
            },
            logger: logger)
        try await app.runService(gracefulShutdownSignals: [.sigterm, .sigint])
    }
}

/// Announces this agent's record to nearby peers every interval and at once when the model
/// or the load state changes (a peer that is loading is skipped by routers until it is ready).
struct AnnounceService: Service {
    let agent: Agent
    let discovery: NearbyDiscovery
    let host: String
    let port: @Sendable () -> Int

    func run() async throws {
        while port() == 0 { try await Task.sleep(for: .milliseconds(20)) }
        let changes = await agent.announcements(every: discovery.configuration.interval)
        // Receivers drop a record not newer than the last they took from this agent; the clock
        // starts the count so a restart continues above the previous run's.
        var sequence = UInt64(max(0, Date().timeIntervalSince1970 * 1000))
        for await change in changes.cancelOnGracefulShutdown() {
            let beat = await agent.heartbeat(address: "", status: change)
            sequence += 1
            // A seeding agent names (by prefix) the blobs it holds and those it is downloading
            // (peers ask for its have-map), so LAN peers ask it first.
            let blobs = beat.seeding == nil ? [] : (agent.board?.downloading ?? []) + beat.installedModels.map(\.sha256)
            let seeded = blobs.compactMap { Data(hexDigits: String($0.prefix(2 * NearbyRecord.seededPrefixBytes))) }
                .reduce(into: [Data]()) { unique, prefix in if !unique.contains(prefix) { unique.append(prefix) } }
                .prefix(NearbyRecord.maximumSeeded)
            let record = NearbyRecord(publicKey: agent.identity.key.publicKey.rawRepresentation, sequence: sequence,
                                      activeModel: beat.activeModel, paramSize: beat.activeModelParamSize ?? 0, currentLoad: beat.currentLoad,
                                      freeMemoryMB: UInt32(clamping: beat.freeMemoryMB), host: host, port: UInt16(clamping: port()), seeded: Array(seeded))
            discovery.announce(record, signedBy: agent.identity)
        }
        discovery.stop()
    }
}

/// Runs beside the HTTP server: relays runtime events to subscribers, keeps event streams
/// alive, and on shutdown pauses downloads.
struct AgentLifecycle: Service {
    let agent: Agent

    func run() async throws {
        let relay = Task { await agent.relayRuntimeEvents() }
        let keepAlive = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(15))
                agent.events.keepAlive()
            }
        }
        try? await gracefulShutdown()
        relay.cancel()
        keepAlive.cancel()
        await agent.shutdown()
    }
}
