import Foundation
import GRDB
#if canImport(Glibc)
import Glibc
#endif

/// A persisted file download: which file, which version of it, and where its partial file is.
struct TransferJobRecord: Codable, Sendable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "transferJob"
    var id: String
    /// What identifies the file: `sha256:<hex>` when its hash is known in advance (so mirrors
    /// and other URLs of the same bytes continue one partial), else the redacted URL.
    var sourceKey: String
    /// The redacted URL the bytes came from last.
    var source: String?
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

    /// Opens and migrates the journal holding the flock on `lockPath` (the store's lock), so two
    /// processes opening a new or older journal do not both run a migration.
    init(path: String, lockPath: String) throws(TransferError) {
        var configuration = Configuration()
        configuration.busyMode = .timeout(60)
        let lock = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard lock >= 0 else { throw TransferError(.io, "cannot open the store lock \(lockPath): \(String(cString: strerror(errno)))") }
        defer { close(lock) }
        while flock(lock, LOCK_EX) != 0 && errno == EINTR {}
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
        migrator.registerMigration("v2: pull jobs and the URL of each file") { db in
            try db.alter(table: "transferJob") { t in t.add(column: "source", .text) }
            try db.execute(sql: "UPDATE transferJob SET source = sourceKey")
            try db.create(table: "pullJob") { t in
                t.primaryKey("id", .text)
                t.column("key", .text).notNull().unique()
                t.column("request", .text).notNull()
                t.column("state", .text).notNull()
                t.column("ownerPID", .integer)
                t.column("message", .text)
                t.column("createdAt", .double).notNull()
                t.column("updatedAt", .double).notNull()
            }
        }
        return migrator
    }

    func write<T>(_ body: (Database) throws -> T) throws(TransferError) -> T {
        do { return try writer.write(body) } catch {
            throw TransferError(.io, "the download journal failed: \(error)")
        }
    }

    /// The job for this file, with its durable ranges, if one exists.
    func job(forKey key: String) throws(TransferError) -> (TransferJobRecord, IntervalSet)? {
        try write { db in
            guard let job = try TransferJobRecord.filter(TransferJobRecord.Columns.sourceKey == key).fetchOne(db) else { return nil }
            let ranges = try TransferRangeRecord.filter(TransferRangeRecord.Columns.jobId == job.id).fetchAll(db)
            return (job, IntervalSet(ranges.map { UInt64($0.start)..<UInt64($0.end) }))
        }
    }

    /// The job for `key` when `reusable` accepts it and its partial file exists; otherwise
    /// `fresh` replaces it, with its empty partial file made in the same transaction. Two pulls
    /// (or processes) starting together therefore agree on one job and one partial file. True
    /// when `fresh` was started.
    func job(forKey key: String, orStart fresh: TransferJobRecord,
             reusing reusable: (TransferJobRecord) -> Bool) throws(TransferError) -> (TransferJobRecord, Bool) {
        try write { db in
            if let existing = try TransferJobRecord.filter(TransferJobRecord.Columns.sourceKey == key).fetchOne(db) {
                if reusable(existing) && FileManager.default.fileExists(atPath: existing.partialPath) { return (existing, false) }
                unlink(existing.partialPath)
                _ = try existing.delete(db)
            }
            let descriptor = open(fresh.partialPath, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
            guard descriptor >= 0 else {
                throw TransferError(.io, "cannot create the partial file \(fresh.partialPath): \(String(cString: strerror(errno)))")
            }
            close(descriptor)
            try fresh.insert(db)
            return (fresh, true)
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

    /// The job continues from another address of the same (hash-pinned) bytes.
    func moveJob(_ jobID: String, to source: String, etag: String?, lastModified: String?) throws(TransferError) {
        try write { db in
            try db.execute(sql: "UPDATE transferJob SET source = ?, etag = ?, lastModified = ? WHERE id = ?",
                           arguments: [source, etag, lastModified, jobID])
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

    /// The file job for `key`, and its bytes on disk, for progress shown by another process.
    func progress(forKey key: String) throws(TransferError) -> (total: UInt64, done: UInt64)? {
        try write { db in
            guard let job = try TransferJobRecord.filter(TransferJobRecord.Columns.sourceKey == key).fetchOne(db) else { return nil }
            let ranges = try TransferRangeRecord.filter(TransferRangeRecord.Columns.jobId == job.id).fetchAll(db)
            return (UInt64(job.size), job.sha256 != nil ? UInt64(job.size) : ranges.reduce(0) { $0 + UInt64($1.end - $1.start) })
        }
    }

}
