import AsyncHTTPClient
import DepotHTTP
import Foundation
import MeshProtocol
import ModelRuntime
import ModelStore
import NIOCore
import ServiceLifecycle

extension Agent {
    /// The heartbeat as things stand, or with the runtime `status` a change had.
    func heartbeat(address: String, status given: RuntimeStatus? = nil) async -> Heartbeat {
        let status = if let given { given } else { await runtime.currentStatus }
        let installed = ((try? manager.list()) ?? []).compactMap { entry in
            entry.weights.map { Heartbeat.InstalledModel(name: entry.name, sha256: $0.sha256, sizeBytes: $0.size) }
        }
        #if os(Linux)
        let platform = "linux"
        #else
        let platform = "macos"
        #endif
        return Heartbeat(agentId: identity.id, platform: platform, freeMemoryMB: SystemMemory.availableBytes() >> 20, address: address,
                         activeModel: status.loadingModel ?? status.activeModel, activeModelParamSize: status.paramSize,
                         modelSwapInProgress: status.state == .loading, currentLoad: status.currentLoad,
                         installedModels: Array(installed.prefix(Heartbeat.Limits.defaultInstalledModels)),
                         seeding: configuration.seed.map { SeedingPolicy(maximumUploads: $0.maximumUploads, bytesPerSecond: $0.bytesPerSecond) })
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
///
/// Registration proves the agent holds its key: it signs a nonce the coordinator issued (so it
/// cannot be replayed) and gets a session credential back. Heartbeats carry that credential,
/// which the coordinator checks with one HMAC instead of an Ed25519 verification per beat; the
/// agent registers again before it expires, or when the coordinator has forgotten it (401).
struct HeartbeatService: Service {
    let agent: Agent
    let coordinator: String
    let interval: Duration
    let joinToken: String?
    let address: @Sendable () -> String

    struct Session {
        var credential: String
        var renewAt: ContinuousClock.Instant
    }

    func run() async throws {
        // The first beat must carry the address the server actually bound.
        while address().hasSuffix(":0") { try await Task.sleep(for: .milliseconds(20)) }
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        defer { client.shutdown(queue: .global()) { _ in } }
        let beats = await agent.announcements(every: interval)
        var session: Session?
        var lastComplaint: String?
        await withGracefulShutdownHandler {
            for await change in beats.cancelOnGracefulShutdown() {
                let beat = await agent.heartbeat(address: address(), status: change)
                if let current = session, ContinuousClock.now < current.renewAt {
                    let (status, _) = await CoordinatorRequests.post(coordinator + "/heartbeat", beat, credential: current.credential, client: client)
                    if status == 200 { await agent.submitReceipts(to: coordinator, credential: current.credential, client: client) }
                    guard status == 401 || status == 403 else { continue }
                }
                // Not registered yet, due for a new credential, or refused (the coordinator
                // restarted, forgot this agent, or the address changed): register; the
                // registration carries this beat.
                switch await register(client, beat) {
                case .success(let registered):
                    session = registered
                    lastComplaint = nil
                case .failure(let complaint):
                    session = nil
                    if complaint.description != lastComplaint {
                        lastComplaint = complaint.description
                        FileHandle.standardError.write(Data("depot: the coordinator at \(coordinator) did not register this agent: \(complaint)\n".utf8))
                    }
                }
            }
        } onGracefulShutdown: {}
    }

    private func register(_ client: HTTPClient, _ beat: Heartbeat) async -> Result<Session, MeshProtocolError> {
        let (answered, body) = await CoordinatorRequests.get(coordinator + "/mesh/challenge", credential: nil, client: client)
        guard answered != 0 else { return .failure(MeshProtocolError("unreachable")) }
        guard answered == 200, let challenge = try? JSONDecoder().decode(RegistrationChallenge.self, from: body) else {
            return .failure(MeshProtocolError("no registration challenge (\(answered)); is it a Depot coordinator of this version?"))
        }
        guard let registration = try? AgentRegistration(identity: agent.identity, challenge: challenge, heartbeat: beat, joinToken: joinToken) else {
            return .failure(MeshProtocolError("cannot sign the registration"))
        }
        let started = ContinuousClock.now
        let (status, reply) = await CoordinatorRequests.post(coordinator + "/register", registration, credential: nil, client: client)
        guard status == 200, let receipt = try? JSONDecoder().decode(RegistrationReceipt.self, from: reply) else {
            let message = (try? JSONDecoder().decode([String: String].self, from: reply))?["error"] ?? "status \(status)"
            return .failure(MeshProtocolError(message))
        }
        // Its tickets admit peers beyond the LAN to this agent's blobs; the key must be the
        // one the coordinator's id derives from. The credential also asks it for seeders.
        if let key = receipt.coordinatorPublicKey, MeshIdentity.id(ofPublicKey: key) == receipt.coordinatorId {
            agent.coordinatorKey.current = key
        }
        agent.meshCredential.current = receipt.credential
        // A day at most: the figure comes from the network (1e300 would trap below).
        let lifetime = min(max(1, receipt.credentialExpiresInSeconds), 86_400)
        return .success(Session(credential: receipt.credential, renewAt: started + .milliseconds(Int64(lifetime * 800))))
    }

    /// The status (0 when unreachable) and body of a POST.
}
