import Foundation
import ModelStore

/// What runs a controller's pull: this process's downloader, or the agent daemon.
public protocol DownloadDriver: Sendable {
    func pull(_ request: PullRequest, progress: @escaping @Sendable (TransferProgress) -> Void) async throws(TransferError) -> ImportResult
    func pause(_ jobID: String) async throws(TransferError)
    func cancel(_ jobID: String) async throws(TransferError)
    /// Whether the job is still known (paused or interrupted jobs are; finished ones are not).
    func jobExists(_ jobID: String) async -> Bool
}

extension ModelDownloader: DownloadDriver {
    public func cancel(_ jobID: String) async throws(TransferError) { try await cancel(jobID, timeout: .seconds(30)) }

    public func jobExists(_ jobID: String) async -> Bool { (try? job(jobID)) != nil }
}

/// Drives one pull and publishes snapshots of it (stage, bytes, redacted error), for an app's
/// progress view. Pause keeps the partial files; cancel deletes them; resume continues.
/// The job is persisted, so other processes see and may control it too.
public final class ModelDownloadController: @unchecked Sendable {
    // All mutable state is guarded by `lock`.
    private var latest = TransferProgress(stage: .idle, file: nil, completedBytes: 0, totalBytes: 0, bytesPerSecond: 0)
    private var run: Task<ImportResult, Error>?
    /// How the last run ended, for `result()` after it.
    private var outcome: Result<ImportResult, TransferError>?
    private var observers: [UUID: AsyncStream<TransferProgress>.Continuation] = [:]
    private let lock = NSLock()

    public let request: PullRequest
    let driver: any DownloadDriver

    public init(request: PullRequest, driver: any DownloadDriver) {
        self.request = request
        self.driver = driver
    }

    /// The latest snapshot.
    public var snapshot: TransferProgress { lock.withLock { latest } }

    /// Snapshots from now on, starting with the latest; ends when the pull finishes, fails,
    /// pauses or is cancelled.
    public var updates: AsyncStream<TransferProgress> {
        AsyncStream { continuation in
            let id = UUID()
            let current = lock.withLock {
                observers[id] = continuation
                return latest
            }
            continuation.yield(current)
            if Self.isFinal(current.stage) && current.stage != .idle { continuation.finish() }
            continuation.onTermination = { [weak self] _ in self?.lock.withLock { _ = self?.observers.removeValue(forKey: id) } }
        }
    }

    /// Starts the pull, or resumes it after a pause or failure; does nothing while it runs.
    public func start() {
        lock.withLock {
            guard run == nil else { return }
            outcome = nil
            run = Task { [self] in
                do throws(TransferError) {
                    let result = try await driver.pull(request) { self.publish($0) }
                    finish(.success(result))
                    return result
                } catch {
                    finish(.failure(error))
                    throw error
                }
            }
        }
    }

    /// The same as `start()`, for symmetry with `pause()`.
    public func resume() { start() }

    /// Stops the pull and keeps its partial files; `resume()` (or any process pulling the same
    /// files) continues it.
    public func pause() async {
        guard let (task, jobID) = current() else { return }
        if let jobID { try? await driver.pause(jobID) } else { task.cancel() }
        _ = try? await task.value
    }

    /// Stops the pull (running or paused) and deletes everything it downloaded.
    public func cancel() async {
        if let (task, jobID) = current() {
            if let jobID { try? await driver.cancel(jobID) } else { task.cancel() }
            _ = try? await task.value
        }
        // Stopped before its job was known, or paused: its files are removed from here.
        guard let jobID = snapshot.jobID, await driver.jobExists(jobID) else { return }
        try? await driver.cancel(jobID)
        var cancelled = snapshot
        cancelled.stage = .cancelled
        cancelled.message = "the download was cancelled; nothing of it is kept"
        publish(cancelled)
    }

    /// Waits for the pull and returns the stored entry: the running one, else how the last one
    /// ended, else a new one.
    public func result() async throws(TransferError) -> ImportResult {
        let (running, ended) = lock.withLock { (run, outcome) }
        if running == nil, let ended { return try ended.get() }
        start()
        guard let task = lock.withLock({ run }) else { throw TransferError(.cancelled, "the download was stopped") }
        do { return try await task.value } catch let error as TransferError { throw error } catch {
            throw TransferError(.cancelled, "the download was interrupted; its partial files are kept")
        }
    }

    private func current() -> (Task<ImportResult, Error>, String?)? {
        lock.withLock { run.map { ($0, latest.jobID) } }
    }

    private func publish(_ progress: TransferProgress) {
        let observers = lock.withLock {
            latest = progress
            return Array(self.observers.values)
        }
        for observer in observers { observer.yield(progress) }
    }

    /// The run ended: observers are told, and a later `start()` runs again.
    private func finish(_ ended: Result<ImportResult, TransferError>) {
        let observers = lock.withLock {
            run = nil
            outcome = ended
            defer { self.observers.removeAll() }
            return Array(self.observers.values)
        }
        for observer in observers { observer.finish() }
    }

    static func isFinal(_ stage: TransferProgress.Stage) -> Bool {
        [.idle, .ready, .failed, .cancelled].contains(stage)
    }
}
