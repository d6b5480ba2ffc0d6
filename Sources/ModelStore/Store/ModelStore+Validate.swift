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
                try database.write { db in
                    try db.execute(sql: "UPDATE model SET status = ?, statusDetail = ? WHERE name = ?",
                                   arguments: [status.rawValue, detail, entry.name])
                }
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
        try database.write { db in
            try db.execute(sql: "UPDATE blob SET inode = ?, modifiedNanoseconds = ?, verifiedAt = ? WHERE digest = ?",
                           arguments: [Int64(bitPattern: status.inode), status.modifiedNanoseconds, now.timeIntervalSince1970, file.sha256])
        }
        return (nil, status.size)
    }
}
