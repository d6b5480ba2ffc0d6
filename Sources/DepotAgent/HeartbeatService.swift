import AsyncHTTPClient
import Foundation
import ModelRuntime
import ModelStore
import NIOCore
import ServiceLifecycle

extension Agent {
    /// This agent's id: made once, kept in the store, so restarts keep it.
    func agentID() -> String {
        let path = store.root + "/agent-id"
        if let text = try? String(contentsOfFile: path, encoding: .utf8), !text.isEmpty {
            return text.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        let id = UUID().uuidString.lowercased()
        try? (id + "\n").write(toFile: path, atomically: true, encoding: .utf8)
        return id
    }

    /// The heartbeat as things stand, or with the runtime `status` a change had.
    func heartbeat(address: String, status given: RuntimeStatus? = nil) async -> Heartbeat {
        let status = if let given { given } else { await runtime.currentStatus }
        let installed = ((try? manager.list()) ?? []).compactMap { entry in
            entry.weights.map { Heartbeat.InstalledModel(name: entry.name, sha256: $0.sha256, sizeBytes: entry.sizeBytes) }
        }
        #if os(Linux)
        let platform = "linux"
        #else
        let platform = "macos"
        #endif
        return Heartbeat(agentId: agentID(), platform: platform, freeMemoryMB: SystemMemory.availableBytes() >> 20, address: address,
                         activeModel: status.loadingModel ?? status.activeModel, activeModelParamSize: status.paramSize,
                         modelSwapInProgress: status.state == .loading, currentLoad: status.currentLoad, installedModels: installed)
    }
}

extension Agent {
    /// Yields nil every `interval`, and at once each change of the model or its load state (not
    /// of the number of requests in flight) with the status it had: a load can be over before
    /// a heartbeat or announcement is built. What heartbeats and nearby announcements send.
    func announcements(every interval: Duration) async -> AsyncStream<RuntimeStatus?> {
        let changes = await runtime.events()
        return AsyncStream { continuation in
            let ticker = Task {
                while !Task.isCancelled {
                    continuation.yield(nil)
                    try? await Task.sleep(for: interval)
                }
            }
            let watcher = Task {
                var last: (RuntimeState, String?, String?)?
                for await event in changes {
                    guard case .stateChanged(let status) = event else { continue }
                    let now = (status.state, status.activeModel, status.loadingModel)
                    if last.map({ $0.0 != now.0 || $0.1 != now.1 || $0.2 != now.2 }) ?? true {
                        last = now
                        continuation.yield(status)
                    }
                }
            }
            continuation.onTermination = { _ in
                ticker.cancel()
                watcher.cancel()
            }
        }
    }
}

/// Registers with the coordinator and heartbeats every interval, and at once when the model
/// or its state changes, so routers learn of a swap without waiting.
struct HeartbeatService: Service {
    let agent: Agent
    let coordinator: String
    let interval: Duration
    let address: @Sendable () -> String

    func run() async throws {
        // The first beat must carry the address the server actually bound.
        while address().hasSuffix(":0") { try await Task.sleep(for: .milliseconds(20)) }
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        defer { client.shutdown(queue: .global()) { _ in } }
        let beats = await agent.announcements(every: interval)
        var registered = false
        await withGracefulShutdownHandler {
            for await change in beats.cancelOnGracefulShutdown() {
                let body = await agent.heartbeat(address: address(), status: change)
                registered = await send(client, registered ? "/heartbeat" : "/register", body) || registered
            }
        } onGracefulShutdown: {}
    }

    private func send(_ client: HTTPClient, _ path: String, _ heartbeat: Heartbeat) async -> Bool {
        var request = HTTPClientRequest(url: coordinator + path)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        guard let data = try? JSONEncoder().encode(heartbeat) else { return false }
        request.body = .bytes(ByteBuffer(bytes: data))
        guard let response = try? await client.execute(request, timeout: .seconds(5)) else { return false }
        _ = try? await response.body.collect(upTo: 1 << 20)
        return response.status.code == 200
    }
}
