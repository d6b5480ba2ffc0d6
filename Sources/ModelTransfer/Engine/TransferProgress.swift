import Foundation
import ModelStore

/// A snapshot of a pull, as apps and the CLI show it.
public struct TransferProgress: Sendable, Codable, Equatable {
    /// Where the pull is.
    public enum Stage: String, Sendable, Codable {
        case idle, resolving, checkingCache, downloading, verifying, ready, failed, cancelled
    }

    /// The current stage.
    public var stage: Stage
    /// The file being worked on.
    public var file: FileRole?
    /// Bytes on disk, over all files of the pull.
    public var completedBytes: UInt64
    /// Bytes in all files of the pull, as far as known.
    public var totalBytes: UInt64
    /// Download rate since this run started.
    public var bytesPerSecond: Double
    /// What went wrong, redacted, when failed; or which mirror took over.
    public var message: String?
    /// The address the current file comes from, redacted.
    public var source: String?
    /// True while another process is downloading this file and this one waits for it (the
    /// bytes shown are that process's).
    public var sharedTransfer: Bool = false
    /// The persisted job, for pausing, resuming or cancelling it.
    public var jobID: String?
}

/// Collects progress from parallel connections and passes snapshots on, at most ten a second
/// (and at once on every change of stage).
final class ProgressReporter: @unchecked Sendable {
    // All state is guarded by `lock`.
    private var snapshot = TransferProgress(stage: .idle, file: nil, completedBytes: 0, totalBytes: 0, bytesPerSecond: 0)
    private var totals: [FileRole: UInt64] = [:]
    private var completed: [FileRole: UInt64] = [:]
    private var resumedBytes: UInt64 = 0
    private var started = ContinuousClock.now
    private var lastEmitted = ContinuousClock.now
    private let lock = NSLock()
    private let sink: @Sendable (TransferProgress) -> Void

    init(_ sink: @escaping @Sendable (TransferProgress) -> Void) { self.sink = sink }

    func stage(_ stage: TransferProgress.Stage, file: FileRole? = nil, message: String? = nil) {
        let snapshot = lock.withLock {
            self.snapshot.stage = stage
            if let file { self.snapshot.file = file }
            self.snapshot.message = message
            return update()
        }
        sink(snapshot)
    }

    func setTotal(_ total: UInt64, for file: FileRole) { lock.withLock { totals[file] = total } }

    /// The job is registered: said at once, so a pause or cancel can name it.
    func setJob(_ id: String) {
        let snapshot = lock.withLock {
            self.snapshot.jobID = id
            return update()
        }
        sink(snapshot)
    }

    func setSource(_ source: String, note: String? = nil) {
        let snapshot = lock.withLock {
            self.snapshot.source = source
            self.snapshot.message = note
            return update()
        }
        if note != nil { sink(snapshot) }
    }

    /// Whether another process's download of this file is being waited for.
    func shared(_ shared: Bool) {
        let snapshot: TransferProgress? = lock.withLock {
            guard self.snapshot.sharedTransfer != shared else { return nil }
            self.snapshot.sharedTransfer = shared
            return update()
        }
        if let snapshot { sink(snapshot) }
    }

    /// Bytes of `file` on disk as another process reports them through the journal.
    func setCompleted(_ bytes: UInt64, for file: FileRole) {
        let snapshot: TransferProgress? = lock.withLock {
            completed[file] = bytes
            guard ContinuousClock.now - lastEmitted >= .milliseconds(100) else { return nil }
            return update()
        }
        if let snapshot { sink(snapshot) }
    }

    /// Bytes of `file` on disk as a (re)start begins, from the journal or the store; the rate
    /// counts only what arrives after this.
    func setResumed(_ bytes: UInt64, for file: FileRole) {
        lock.withLock {
            completed[file] = bytes
            resumedBytes = completed.values.reduce(0, +)
            started = .now
        }
    }

    /// Adds arrived bytes (negative: a bad piece was thrown away).
    func add(_ bytes: Int, for file: FileRole) {
        let snapshot: TransferProgress? = lock.withLock {
            let current = Int64(completed[file, default: 0]) + Int64(bytes)
            completed[file] = UInt64(max(0, current))
            guard ContinuousClock.now - lastEmitted >= .milliseconds(100) else { return nil }
            return update()
        }
        if let snapshot { sink(snapshot) }
    }

    private func update() -> TransferProgress {
        lastEmitted = .now
        snapshot.totalBytes = totals.values.reduce(0, +)
        snapshot.completedBytes = completed.values.reduce(0, +)
        let seconds = Double((ContinuousClock.now - started).components.attoseconds) / 1e18
            + Double((ContinuousClock.now - started).components.seconds)
        let fresh = snapshot.completedBytes >= resumedBytes ? snapshot.completedBytes - resumedBytes : 0
        snapshot.bytesPerSecond = seconds > 0.2 ? Double(fresh) / seconds : 0
        return snapshot
    }
}
