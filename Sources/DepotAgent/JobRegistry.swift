import DepotHTTP
import Foundation
import ModelStore
import ModelTransfer

/// Downloads the agent runs for apps (and for swaps that need a pull first). Each one's
/// progress goes out as `job` events; the jobs themselves are persisted by the transfer
/// journal, so `depot jobs` and a restarted agent see them too.
final class JobRegistry: @unchecked Sendable {
    private struct Running {
        let model: String?
        let controller: ModelDownloadController
    }

    // Guarded by `lock`.
    private var running: [ObjectIdentifier: Running] = [:]
    private var order: [ObjectIdentifier] = []
    private let lock = NSLock()
    let manager: StoreModelManager
    let events: EventHub
    let metrics: AgentMetrics

    init(manager: StoreModelManager, events: EventHub, metrics: AgentMetrics) {
        self.manager = manager
        self.events = events
        self.metrics = metrics
    }

    /// Downloads running at once at most; one more is refused with 429 (a request for files
    /// already being fetched joins that download instead).
    static let maximumRunning = 8

    /// Starts a download; `whenDone` runs after it succeeds. Returns its controller.
    @discardableResult
    func start(_ request: PullRequest, model: String?,
               whenDone: @escaping @Sendable (ImportResult) async -> Void = { _ in }) throws(AgentError) -> ModelDownloadController {
        let full = lock.withLock {
            running.count >= Self.maximumRunning && !running.values.contains { $0.controller.request.fileKeys == request.fileKeys }
        }
        guard !full else {
            throw AgentError(.tooManyRequests, "\(Self.maximumRunning) downloads are running; wait for one to finish, or pause one (POST /jobs/ID/pause)")
        }
        let controller = manager.ensure(request)
        let key = ObjectIdentifier(controller)
        lock.withLock {
            running[key] = Running(model: model, controller: controller)
            order.append(key)
        }
        let updates = controller.updates
        controller.start()
        Task { [events, metrics] in
            var last: TransferProgress?
            for await progress in updates {
                last = progress
                events.publish("job", PullStatus(model: model ?? request.name, progress: progress))
            }
            let outcome = await Result { () async throws(TransferError) -> ImportResult in try await controller.result() }
            self.finished(key)
            switch outcome {
            case .success(let result):
                metrics.recordDownload(bytes: result.files.filter { !$0.alreadyStored }.reduce(0) { $0 + $1.size }, succeeded: true)
                await whenDone(result)
            case .failure:
                metrics.recordDownload(bytes: 0, succeeded: last?.stage == .idle)
            }
        }
        return controller
    }

    /// The persisted job id, once the download has registered it (or nil if it ended first).
    func jobID(of controller: ModelDownloadController) async -> String? {
        for _ in 0..<200 {
            let snapshot = controller.snapshot
            if let id = snapshot.jobID { return id }
            if [.ready, .failed, .cancelled].contains(snapshot.stage) { return nil }
            try? await Task.sleep(for: .milliseconds(25))
        }
        return nil
    }

    private func finished(_ key: ObjectIdentifier) {
        lock.withLock {
            running[key] = nil
            order.removeAll { $0 == key }
        }
    }

    /// The newest running download, for `/model/status`.
    func currentPull() -> PullStatus? {
        lock.withLock {
            order.last.flatMap { running[$0] }.map { PullStatus(model: $0.model ?? $0.controller.request.name, progress: $0.controller.snapshot) }
        }
    }

    /// The running download of this model, if any.
    func pull(of model: String) -> PullStatus? {
        lock.withLock {
            running.values.first { ($0.model ?? $0.controller.request.name) == model }
                .map { PullStatus(model: model, progress: $0.controller.snapshot) }
        }
    }

    /// Waits (up to `limit`) until this process no longer runs a download of `request`'s files:
    /// a job resumed right after a pause must not start while its paused run is still stopping,
    /// which would leave the journal saying paused under the new run.
    func waitUntilStopped(_ request: PullRequest, limit: Duration = .seconds(30)) async {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline,
              lock.withLock({ running.values.contains { $0.controller.request.fileKeys == request.fileKeys } }) {
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Pauses every download (shutdown): the partial files and the journal stay for a resume.
    func pauseAll() async {
        let controllers = lock.withLock { running.values.map(\.controller) }
        for controller in controllers { await controller.pause() }
    }
}

extension Result where Failure == TransferError {
    init(catching body: () async throws(TransferError) -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}
