import Foundation
import GRDB

/// The outcome of validating one entry.
public struct ValidationResult: Codable, Sendable {
    /// The entry's name.
    public var name: String
    /// Its status after the check.
    public var status: ModelStatus
    /// What was wrong, when not ready.
    public var detail: String?
    /// Bytes read and hashed for it (0 when the fast path trusted every file).
    public var bytesHashed: UInt64
}

extension ModelStore {
    /// Checks entries' blobs. The fast path trusts a blob whose (size, mtime, inode) match what
    /// was recorded when it was last hashed and reads nothing; a blob that differs, and every
    /// blob with `full`, is hashed again. Entries whose files are missing or altered are marked
    /// corrupt; corrupt entries that check out again become ready.
    public func validate(name: String? = nil, full: Bool = false) throws(StoreError) -> [ValidationResult] {
        let entries = if let name { [try model(named: name)] } else { try listModels() }
        let records = try database.read { db in
            Dictionary(uniqueKeysWithValues: try BlobRecord.fetchAll(db).map { ($0.digest, $0) })
        }
        var verdicts: [String: (problem: String?, hashed: UInt64)] = [:]
        var results: [ValidationResult] = []
        for entry in entries {
            var problems: [String] = []
            var hashed: UInt64 = 0
            for file in entry.files {
                if verdicts[file.sha256] == nil {
                    verdicts[file.sha256] = try check(file, recorded: records[file.sha256], full: full)
                    hashed += verdicts[file.sha256]!.hashed
                }
                if let problem = verdicts[file.sha256]!.problem { problems.append("\(file.role) \(problem)") }
            }
            let status: ModelStatus = problems.isEmpty ? .ready : .corrupt
            let detail = problems.isEmpty ? nil
                : problems.joined(separator: "; ") + "; import the original file again to repair it, or delete the model"
            if status != entry.status || detail != entry.statusDetail {
                try recordStatus(status, detail: detail, of: entry)
            }
            results.append(ValidationResult(name: entry.name, status: status, detail: detail, bytesHashed: hashed))
        }
        return results
    }

    private func check(_ file: ModelFile, recorded: BlobRecord?, full: Bool) throws(StoreError) -> (problem: String?, hashed: UInt64) {
        let short = "sha256:" + file.sha256.prefix(12)
        guard let status = try FileStatus.of(file.path), status.isRegularFile else {
            return ("blob \(short) is missing", 0)
        }
        if !full, let recorded, status.size == UInt64(recorded.size), Int64(bitPattern: status.inode) == recorded.inode,
           status.modifiedNanoseconds == recorded.modifiedNanoseconds {
            return (nil, 0)
        }
        let found = try BlobHasher.hash(path: file.path)
        guard found == file.sha256 else {
            return ("blob \(short) has changed: expected sha256 \(file.sha256), found \(found)", status.size)
        }
        let now = configuration.now()
        try lock.withLock { () throws(StoreError) in
            // Hashing ran without the lock; record only if the file is still the one hashed.
            guard let current = try FileStatus.of(file.path), current == status else { return }
            try database.write { db in
                try db.execute(sql: "UPDATE blob SET inode = ?, modifiedNanoseconds = ?, verifiedAt = ? WHERE digest = ?",
                               arguments: [Int64(bitPattern: status.inode), status.modifiedNanoseconds,
                                           now.timeIntervalSince1970, file.sha256])
            }
        }
        return (nil, status.size)
    }

    /// Sets an entry's status, unless it was deleted, replaced or repaired while it was checked.
    private func recordStatus(_ status: ModelStatus, detail: String?, of entry: ModelEntry) throws(StoreError) {
        try lock.withLock { () throws(StoreError) in
            try database.write { db in
                guard let model = try ModelRecord.filter(ModelRecord.Columns.name == entry.name).fetchOne(db) else { return }
                let digests = try String.fetchAll(db, ModelFileRecord.filter(ModelFileRecord.Columns.modelId == model.id)
                    .select(ModelFileRecord.Columns.blobDigest))
                guard digests.sorted() == entry.files.map(\.sha256).sorted() else { return }
                try db.execute(sql: "UPDATE model SET status = ?, statusDetail = ? WHERE id = ?",
                               arguments: [status.rawValue, detail, model.id])
            }
        }
    }
}
