import Foundation
import GRDB
#if canImport(Glibc)
import Glibc
#endif

/// A persisted pull: the request (redacted), who runs it, and whether someone asked it to
/// pause or cancel. Other processes read and change `state`; the running one obeys.
struct PullJobRecord: Codable, Sendable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "pullJob"
    var id: String
    /// `PullRequest.jobKey`: the same files, the same job.
    var key: String
    /// The redacted `PullRequest` as JSON.
    var request: String
    var state: String
    /// The process running it, if any.
    var ownerPID: Int32?
    var message: String?
    var createdAt: Double
    var updatedAt: Double

    enum Columns {
        static let key = Column(CodingKeys.key)
    }

    var storedRequest: PullRequest? { try? JSONDecoder().decode(PullRequest.self, from: Data(request.utf8)) }
}

/// A pull job as apps and `depot jobs` see it.
public struct PullJob: Sendable, Codable, Equatable {
    /// `running` has a live process behind it; `interrupted` lost it (killed, crashed, rebooted).
    public enum State: String, Sendable, Codable {
        case running, paused, cancelled, failed, interrupted
    }

    public var id: String
    public var name: String?
    /// The weights' address, redacted.
    public var source: String
    public var projector: String?
    public var state: State
    /// Bytes on disk over every file of the pull, as far as the journal knows.
    public var completedBytes: UInt64
    public var totalBytes: UInt64
    /// Why it failed.
    public var message: String?
    public var updatedAt: Date
    /// The request as stored (no token).
    public var request: PullRequest
}

/// Whether a process is alive (EPERM: alive, owned by someone else).
func processIsAlive(_ pid: Int32) -> Bool { kill(pid, 0) == 0 || errno == EPERM }

extension TransferJournal {
    /// Registers a pull, or joins the existing job for the same files. Returns the job's id
    /// and, when another live process is running it, that process's id.
    func claimPull(_ request: PullRequest, pid: Int32 = getpid()) throws(TransferError) -> (id: String, runningIn: Int32?) {
        let text = String(decoding: (try? JSONEncoder().encode(request.redacted)) ?? Data(), as: UTF8.self)
        return try write { db in
            let now = Date().timeIntervalSince1970
            if var job = try PullJobRecord.filter(PullJobRecord.Columns.key == request.jobKey).fetchOne(db) {
                if let owner = job.ownerPID, owner != pid, job.state == "running", processIsAlive(owner) {
                    return (job.id, owner)
                }
                job.ownerPID = pid
                job.state = "running"
                job.message = nil
                job.request = text
                job.updatedAt = now
                try job.update(db)
                return (job.id, nil)
            }
            let job = PullJobRecord(id: UUID().uuidString.lowercased(), key: request.jobKey, request: text, state: "running",
                                    ownerPID: pid, message: nil, createdAt: now, updatedAt: now)
            try job.insert(db)
            return (job.id, nil)
        }
    }

    func pullRecord(_ id: String) throws(TransferError) -> PullJobRecord? {
        try write { db in try PullJobRecord.fetchOne(db, key: id) }
    }

    /// Sets a job's state; false when the job does not exist.
    @discardableResult
    func setPullState(_ id: String, _ state: PullJob.State, message: String? = nil, owner: Int32? = nil) throws(TransferError) -> Bool {
        try write { db in
            try db.execute(sql: "UPDATE pullJob SET state = ?, message = ?, ownerPID = COALESCE(?, ownerPID), updatedAt = ? WHERE id = ?",
                           arguments: [state.rawValue, message, owner, Date().timeIntervalSince1970, id])
            return db.changesCount > 0
        }
    }

    /// The job's process gave it up (interrupted): it now reads as interrupted, not running.
    func releasePull(_ id: String) throws(TransferError) {
        try write { db in try db.execute(sql: "UPDATE pullJob SET ownerPID = NULL, updatedAt = ? WHERE id = ?",
                                         arguments: [Date().timeIntervalSince1970, id]) }
    }

    func removePull(_ id: String) throws(TransferError) {
        try write { db in _ = try PullJobRecord.deleteOne(db, key: id) }
    }

    /// Every pull job, newest first, with the progress of its files.
    func pullJobs() throws(TransferError) -> [PullJob] {
        let records = try write { db in try PullJobRecord.order(sql: "updatedAt DESC").fetchAll(db) }
        var jobs: [PullJob] = []
        for record in records {
            guard let request = record.storedRequest else { continue }
            var total: UInt64 = 0, done: UInt64 = 0
            for key in Set([PullRequest.fileKey(request.source, expected: request.sha256)]
                           + (request.projector.map { [PullRequest.fileKey($0, expected: request.projectorSHA256)] } ?? [])) {
                if let file = try progress(forKey: key) { total += file.total; done += file.done }
            }
            var state = PullJob.State(rawValue: record.state) ?? .failed
            if state == .running && !(record.ownerPID.map(processIsAlive) ?? false) { state = .interrupted }
            jobs.append(PullJob(id: record.id, name: request.name, source: request.source, projector: request.projector,
                                state: state, completedBytes: done, totalBytes: total, message: record.message,
                                updatedAt: Date(timeIntervalSince1970: record.updatedAt), request: request))
        }
        return jobs
    }
}
