import Foundation
import GRDB

/// A persisted download: which source, which version of it, and where its partial file is.
struct TransferJobRecord: Codable, Sendable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "transferJob"
    var id: String
    /// The redacted source URL: identifies the file without any secret.
    var sourceKey: String
    var partialPath: String
    var size: Int64
    var etag: String?
    var lastModified: String?
    var expectedSHA256: String?
    /// Set once every byte is written and hashed.
    var sha256: String?
    var createdAt: Double
    var updatedAt: Double

    enum Columns {
        static let sourceKey = Column(CodingKeys.sourceKey)
    }
}

/// A byte range of a job's partial file known to be on disk (flushed before it was recorded).
struct TransferRangeRecord: Codable, Sendable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "transferRange"
    var jobId: String
    var start: Int64
    var end: Int64

    enum Columns {
        static let jobId = Column(CodingKeys.jobId)
    }
}

/// The download journal (`transfers.sqlite` in the store): what survives a kill, a crash or a
/// reboot so the next run resumes. Never holds a secret: sources are stored redacted.
struct TransferJournal: Sendable {
    let writer: DatabasePool

    init(path: String) throws(TransferError) {
        var configuration = Configuration()
        configuration.busyMode = .timeout(60)
        do {
            writer = try DatabasePool(path: path, configuration: configuration)
            try Self.migrator.migrate(writer)
        } catch {
            throw TransferError(.io, "cannot open the download journal \(path): \(error)")
        }
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.create(table: "transferJob") { t in
                t.primaryKey("id", .text)
                t.column("sourceKey", .text).notNull().unique()
                t.column("partialPath", .text).notNull()
                t.column("size", .integer).notNull()
                t.column("etag", .text)
                t.column("lastModified", .text)
                t.column("expectedSHA256", .text)
                t.column("sha256", .text)
                t.column("createdAt", .double).notNull()
                t.column("updatedAt", .double).notNull()
            }
            try db.create(table: "transferRange") { t in
                t.column("jobId", .text).notNull().indexed().references("transferJob", onDelete: .cascade)
                t.column("start", .integer).notNull()
                t.column("end", .integer).notNull()
            }
        }
        return migrator
    }

    private func write<T>(_ body: (Database) throws -> T) throws(TransferError) -> T {
        do { return try writer.write(body) } catch {
            throw TransferError(.io, "the download journal failed: \(error)")
        }
    }

    /// The job for this source, with its durable ranges, if one exists.
    func job(forSource key: String) throws(TransferError) -> (TransferJobRecord, IntervalSet)? {
        try write { db in
            guard let job = try TransferJobRecord.filter(TransferJobRecord.Columns.sourceKey == key).fetchOne(db) else { return nil }
            let ranges = try TransferRangeRecord.filter(TransferRangeRecord.Columns.jobId == job.id).fetchAll(db)
            return (job, IntervalSet(ranges.map { UInt64($0.start)..<UInt64($0.end) }))
        }
    }

    /// Creates or replaces the job for a source, with nothing downloaded yet.
    func startJob(_ job: TransferJobRecord) throws(TransferError) {
        try write { db in
            _ = try TransferJobRecord.filter(TransferJobRecord.Columns.sourceKey == job.sourceKey).deleteAll(db)
            try job.insert(db)
        }
    }

    /// Replaces the job's durable ranges; the caller flushed the partial file first.
    func recordRanges(_ ranges: IntervalSet, of jobID: String) throws(TransferError) {
        try write { db in
            _ = try TransferRangeRecord.filter(TransferRangeRecord.Columns.jobId == jobID).deleteAll(db)
            for range in ranges.ranges {
                try TransferRangeRecord(jobId: jobID, start: Int64(range.lowerBound), end: Int64(range.upperBound)).insert(db)
            }
            try db.execute(sql: "UPDATE transferJob SET updatedAt = ? WHERE id = ?",
                           arguments: [Date().timeIntervalSince1970, jobID])
        }
    }

    func recordFinished(_ jobID: String, sha256: String) throws(TransferError) {
        try write { db in
            try db.execute(sql: "UPDATE transferJob SET sha256 = ?, updatedAt = ? WHERE id = ?",
                           arguments: [sha256, Date().timeIntervalSince1970, jobID])
        }
    }

    func removeJob(_ jobID: String) throws(TransferError) {
        try write { db in _ = try TransferJobRecord.deleteOne(db, key: jobID) }
    }

    /// Every persisted job, newest first.
    func allJobs() throws(TransferError) -> [(TransferJobRecord, UInt64)] {
        try write { db in
            try TransferJobRecord.order(sql: "updatedAt DESC").fetchAll(db).map { job in
                let ranges = try TransferRangeRecord.filter(TransferRangeRecord.Columns.jobId == job.id).fetchAll(db)
                return (job, ranges.reduce(0) { $0 + UInt64($1.end - $1.start) })
            }
        }
    }
}
