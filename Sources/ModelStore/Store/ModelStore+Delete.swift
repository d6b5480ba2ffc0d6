import Foundation
import GRDB

/// What a deletion removed.
public struct DeletionResult: Codable, Sendable {
    /// The deleted entry's name.
    public var name: String
    /// Blobs no other entry needed, now removed.
    public var removedBlobs: [String]
    /// Bytes those blobs held.
    public var bytesFreed: UInt64
    /// Apps that still used the entry and were overridden with force.
    public var overriddenApps: [String]
}

extension ModelStore {
    /// Deletes an entry, and its blobs when no other entry uses them.
    ///
    /// Refuses while any app other than `app` references the entry, naming those apps,
    /// unless `force` is set: one app must not silently delete what another uses.
    public func deleteModel(named name: String, app: String? = nil, force: Bool = false) throws(StoreError) -> DeletionResult {
        try ModelName.validate(name)
        if let app { try AppID.validate(app) }
        return try lock.withLock { () throws(StoreError) in
            let result = try database.write { db in
                let model = try database.modelRecord(named: name, db)
                let users = try AppReferenceRecord.filter(AppReferenceRecord.Columns.modelId == model.id).fetchAll(db)
                let others = users.map(\.appId).filter { $0 != app }.sorted()
                if !others.isEmpty && !force {
                    let list = others.map { "'\($0)'" }.joined(separator: ", ")
                    throw StoreError(.inUse, "model '\(name)' is used by app\(others.count == 1 ? "" : "s") \(list); release it there first (depot release \(name) --app \(others[0])), or pass --force to delete it anyway")
                }
                return try removeEntry(model, overriding: others, db)
            }
            removeBlobFiles(Set(result.removedBlobs))
            return result
        }
    }

    /// Deletes the rows of an entry; the caller removes the returned blobs' files after commit.
    func removeEntry(_ model: ModelRecord, overriding apps: [String], _ db: Database) throws -> DeletionResult {
        let sizes = try blobSizes(db)
        let orphaned = try database.deleteModel(model, db)
        return DeletionResult(name: model.name, removedBlobs: orphaned.sorted(),
                              bytesFreed: orphaned.reduce(0) { $0 + (sizes[$1] ?? 0) }, overriddenApps: apps)
    }

    func blobSizes(_ db: Database) throws -> [String: UInt64] {
        Dictionary(uniqueKeysWithValues: try BlobRecord.fetchAll(db).map { ($0.digest, UInt64($0.size)) })
    }
}
