import AsyncHTTPClient
import Crypto
import Foundation
import ModelStore
import NIOCore

/// The agent daemon's job API (`depot serve`) as a download driver: the daemon runs the
/// download, so it goes on after the app exits. The daemon and the app share the store, so
/// the finished entry is read from it directly.
public final class AgentJobClient: DownloadDriver {
    /// The daemon, e.g. http://127.0.0.1:4302.
    public let base: String
    let store: ModelStore
    let token: String?
    private let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.timeout = .init(connect: .seconds(2))
        return configuration
    }())

    /// `token` is the daemon's bearer token, when it requires one.
    public init(base: String, store: ModelStore, token: String? = nil) {
        self.base = base.hasSuffix("/") ? String(base.dropLast()) : base
        self.store = store
        self.token = token
    }

    deinit { client.shutdown(queue: .global()) { _ in } }

    /// Whether the agent serving this store answers at `base`. It must sign a fresh nonce with
    /// the key kept in the store (`agent.key`, readable by the store's owner alone), so a
    /// process of another user listening on the port first gets neither downloads nor tokens:
    /// this request carries none.
    public func isReachable() async -> Bool {
        guard let text = try? String(contentsOfFile: store.root + "/agent.key", encoding: .utf8),
              let raw = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)),
              let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: raw) else { return false }
        let nonce = Data((0..<24).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
        var request = HTTPClientRequest(url: base + "/agent/proof?nonce=" + nonce)
        request.method = .GET
        guard let response = try? await client.execute(request, timeout: .seconds(2)), response.status == .ok,
              let body = try? await response.body.collect(upTo: 4096),
              let proof = try? JSONDecoder().decode([String: String].self, from: Data(body.readableBytesView)),
              let signature = proof["signature"].flatMap({ Data(base64Encoded: $0) }) else { return false }
        return key.publicKey.isValidSignature(signature, for: Data(Self.proofPrefix.utf8) + Data(nonce.utf8))
    }

    /// What the agent signs with a nonce to prove it serves the store (see `isReachable`).
    public static let proofPrefix = "depot-agent-proof|"

    struct JobBody: Encodable {
        var source: String
        var projector: String?
        var name: String?
        var sha256: String?
        var projectorSHA256: String?
        var app: String?
        /// Passed per request and kept in the daemon's memory only, like any token.
        var token: String?
    }

    struct Job: Decodable {
        var id: String
        var state: String
        var completedBytes: UInt64
        var totalBytes: UInt64
        var message: String?
    }

    public func pull(_ request: PullRequest, progress: @escaping @Sendable (TransferProgress) -> Void) async throws(TransferError) -> ImportResult {
        var snapshot = TransferProgress(stage: .resolving, file: .weights, completedBytes: 0, totalBytes: 0, bytesPerSecond: 0)
        progress(snapshot)
        let body = JobBody(source: request.source, projector: request.projector, name: request.name, sha256: request.sha256?.sha256,
                           projectorSHA256: request.projectorSHA256?.sha256, app: request.app, token: request.token)
        let submitted = try await send("POST", "/jobs", json: body)
        guard submitted.status == 202, let id = (try? JSONDecoder().decode([String: String].self, from: submitted.body))?["id"],
              !id.isEmpty else {
            throw TransferError(.rejected, "the agent refused the download: \(Self.message(submitted.body))")
        }
        snapshot.jobID = id
        let started = ContinuousClock.now
        while true {
            let reply = try await send("GET", "/jobs")
            guard reply.status == 200, let jobs = try? JSONDecoder().decode([Job].self, from: reply.body) else {
                throw TransferError(.unreachable, "the agent answered \(reply.status) for its jobs")
            }
            guard let job = jobs.first(where: { $0.id == id }) else { break }
            switch job.state {
            case "paused": throw TransferError(.paused, "the download is paused in the agent; resume it to continue")
            case "failed": throw TransferError(.unreachable, job.message ?? "the agent's download failed")
            default:
                snapshot.stage = .downloading
                snapshot.completedBytes = job.completedBytes
                snapshot.totalBytes = job.totalBytes
                let seconds = (ContinuousClock.now - started).components.seconds
                snapshot.bytesPerSecond = seconds > 0 ? Double(job.completedBytes) / Double(seconds) : 0
                progress(snapshot)
            }
            try? await Task.sleep(for: .milliseconds(200))
            if Task.isCancelled { throw TransferError(.cancelled, "stopped following the agent's download; the agent goes on with it") }
        }
        // The job is gone: finished (the entry is in the store) or cancelled.
        guard let entry = finishedEntry(for: request) else {
            throw TransferError(.cancelled, "the agent's download was cancelled; nothing of it is kept")
        }
        snapshot.stage = .ready
        snapshot.completedBytes = entry.sizeBytes
        snapshot.totalBytes = entry.sizeBytes
        progress(snapshot)
        return ImportResult(entry: entry, created: true, files: entry.files.map {
            ImportedFile(role: $0.role, sha256: $0.sha256, size: $0.size, method: .downloaded, alreadyStored: false)
        })
    }

    /// The entry a finished job made: by name, else the newest from the same (redacted) source.
    private func finishedEntry(for request: PullRequest) -> ModelEntry? {
        if let name = request.name { return try? store.model(named: name) }
        let source = (try? TransferSource(request.source).redacted) ?? Redaction.redact(request.source)
        return (try? store.listModels())?.filter { $0.sourceURL == source }.max { $0.createdAt < $1.createdAt }
    }

    public func pause(_ jobID: String) async throws(TransferError) {
        _ = try await send("POST", "/jobs/\(jobID)/pause", json: [String: String]())
    }

    public func cancel(_ jobID: String) async throws(TransferError) {
        _ = try await send("DELETE", "/jobs/\(jobID)")
    }

    public func jobExists(_ jobID: String) async -> Bool {
        guard let reply = try? await send("GET", "/jobs"), let jobs = try? JSONDecoder().decode([Job].self, from: reply.body) else { return false }
        return jobs.contains { $0.id == jobID }
    }

    /// Closes connections.
    public func shutdown() async { try? await client.shutdown() }

    private func send(_ method: String, _ path: String, json: (some Encodable)? = nil as String?,
                      timeout: Duration = .seconds(30)) async throws(TransferError) -> (status: Int, body: Data) {
        var request = HTTPClientRequest(url: base + path)
        request.method = .init(rawValue: method)
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let json, let data = try? JSONEncoder().encode(json) {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: data))
        }
        do {
            let response = try await client.execute(request, timeout: .seconds(timeout.components.seconds))
            let body = try await response.body.collect(upTo: 16 << 20)
            return (Int(response.status.code), Data(body.readableBytesView))
        } catch {
            throw TransferError(.unreachable, "the agent at \(base) does not answer: \(error)")
        }
    }

    private static func message(_ body: Data) -> String {
        (try? JSONDecoder().decode([String: String].self, from: body))?["error"] ?? String(decoding: body, as: UTF8.self)
    }
}
