import Foundation
import Hummingbird
import Logging
import ModelRuntime
import NIOCore
import ServiceLifecycle

extension Agent {
    /// Every route: EdgeCoder, Ollama, jobs and events, metrics, the web UI.
    public func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: ErrorMiddleware())
        if let token = configuration.token { router.add(middleware: TokenMiddleware(token: token)) }
        addEdgeCoderRoutes(to: router)
        addOllamaRoutes(to: router)
        addJobRoutes(to: router)
        return router
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
                                             address: { "http://\(host):\(boundPort.current)" }))
        }
        let app = Application(
            router: router(),
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
