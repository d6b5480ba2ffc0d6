import Foundation
import GRDB

/// The store's SQLite metadata (WAL mode, shared by every process using the store).
struct StoreDatabase: Sendable {
    let writer: DatabasePool
    /// Where blobs live, to turn digests into paths.
    let blobDirectory: String

    /// Opens (creating if needed) and migrates the database; the caller holds the store lock,
    /// so two processes opening a new store do not both run the first migration.
    init(path: String, blobDirectory: String) throws(StoreError) {
        var configuration = Configuration()
        // Other processes hold the write lock only for short transactions; waiting beats failing.
        configuration.busyMode = .timeout(60)
        do {
            writer = try DatabasePool(path: path, configuration: configuration)
            try Self.migrator.migrate(writer)
        } catch {
            throw StoreError(.database, "cannot open the store database \(path): \(Self.describe(error))")
        }
        self.blobDirectory = blobDirectory
    }

    func read<T>(_ body: (Database) throws -> T) throws(StoreError) -> T {
        do { return try writer.read(body) } catch { throw Self.storeError(error) }
    }

    func write<T>(_ body: (Database) throws -> T) throws(StoreError) -> T {
        do { return try writer.write(body) } catch { throw Self.storeError(error) }
    }

    /// StoreErrors pass through; database failures are reported without their SQL.
    static func storeError(_ error: Error) -> StoreError {
        if let storeError = error as? StoreError { return storeError }
        return StoreError(.database, "the store database failed: \(describe(error))")
    }

    private static func describe(_ error: Error) -> String {
        if let databaseError = error as? DatabaseError {
            return databaseError.message ?? "SQLite error \(databaseError.resultCode.rawValue)"
        }
        return "\(error)"
    }

    // MARK: Entries

    func modelRecord(named name: String, _ db: Database) throws -> ModelRecord {
        guard let record = try ModelRecord.filter(ModelRecord.Columns.name == name).fetchOne(db) else {
            throw StoreError(.notFound, "no model named '\(name)' in the store; `depot list` shows what is installed")
        }
        return record
    }

    /// Assembles entries for the given models with three queries, however many there are.
    /// With `all`, the models are every model, and files and references need no filter.
    func entries(for models: [ModelRecord], all: Bool = false, _ db: Database) throws -> [ModelEntry] {
        let ids = models.compactMap(\.id)
        let files = try (all ? ModelFileRecord.all() : ModelFileRecord.filter(ids.contains(ModelFileRecord.Columns.modelId))).fetchAll(db)
        let references = try (all ? AppReferenceRecord.all() : AppReferenceRecord.filter(ids.contains(AppReferenceRecord.Columns.modelId))).fetchAll(db)
        let filesByModel = Dictionary(grouping: files, by: \.modelId)
        let referencesByModel = Dictionary(grouping: references, by: \.modelId)
        return models.map { model in
            let modelFiles = (filesByModel[model.id!] ?? [])
                .sorted { ($0.role, $0.shardIndex) < ($1.role, $1.shardIndex) }
                .map { file in
                    ModelFile(role: file.role, shardIndex: file.shardIndex, sha256: file.blobDigest, size: UInt64(file.size),
                              path: blobPath(file.blobDigest), originalFilename: file.originalFilename,
                              sourceURL: file.sourceURL, etag: file.etag, lastModified: file.lastModified, facts: file.facts,
                              hashSource: file.hashSource)
                }
            let apps = (referencesByModel[model.id!] ?? [])
                .sorted { $0.appId < $1.appId }
                .map { AppUse(app: $0.appId, pinned: $0.pinned, since: $0.createdAt, lastUsedAt: $0.lastUsedAt) }
            let shardFacts = modelFiles.filter { $0.role == .shard }.compactMap(\.facts)
            let facts = shardFacts.first?.combined(withShards: shardFacts) ?? modelFiles.first { $0.role == .weights }?.facts
            return ModelEntry(name: model.name, status: model.status, statusDetail: model.statusDetail, facts: facts,
                              files: modelFiles, apps: apps, sourceURL: model.sourceURL, license: model.license,
                              compatibilityNotes: model.compatibilityNotes, createdAt: model.createdAt,
                              lastUsedAt: model.lastUsedAt)
        }
    }

    func blobPath(_ digest: String) -> String { blobDirectory + "/" + digest }

    // MARK: Blobs

    /// Digests among `digests` that no model file references any more.
    func unreferencedDigests(_ digests: Set<String>, _ db: Database) throws -> Set<String> {
        let stillUsed = try String.fetchSet(db, ModelFileRecord
            .filter(digests.contains(ModelFileRecord.Columns.blobDigest))
            .select(ModelFileRecord.Columns.blobDigest))
        return digests.subtracting(stillUsed)
    }

    /// Deletes a model's rows and returns the digests no other model references now; the
    /// caller removes those files after the transaction commits.
    func deleteModel(_ model: ModelRecord, _ db: Database) throws -> Set<String> {
        let digests = try String.fetchSet(db, ModelFileRecord
            .filter(ModelFileRecord.Columns.modelId == model.id)
            .select(ModelFileRecord.Columns.blobDigest))
        _ = try model.delete(db)
        let orphaned = try unreferencedDigests(digests, db)
        _ = try BlobRecord.filter(orphaned.contains(BlobRecord.Columns.digest)).deleteAll(db)
        return orphaned
    }
}
