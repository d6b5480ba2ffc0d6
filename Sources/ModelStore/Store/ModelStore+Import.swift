import Foundation
import GRDB
#if canImport(Glibc)
import Glibc
#endif

extension ModelStore {
    /// Imports a GGUF file (and its projector) as one entry.
    ///
    /// Files are checked as GGUF, then linked or copied into `tmp/` and hashed without holding
    /// the store lock; only placing the blobs and recording the entry happen under it. The
    /// same bytes imported twice are stored once. On any failure nothing becomes visible and
    /// the originals are untouched.
    public func importModel(_ request: ImportRequest) throws(StoreError) -> ImportResult {
        if let name = request.name { try ModelName.validate(name) }
        if let app = request.app { try AppID.validate(app) }
        var sources = try SplitModel.shards(of: InspectedFile(path: request.weights, role: .weights))
        if let projector = request.projector {
            sources.append(try InspectedFile(path: projector, role: .projector))
        }
        let weightsName = SplitModel.parts(of: request.weights).map { $0.prefix + ".gguf" } ?? request.weights
        let name = request.name ?? ModelName.derive(
            fromFilename: URL(fileURLWithPath: weightsName).lastPathComponent,
            quantization: sources[0].facts.quantization)
        try ModelName.validate(name)

        var staged: [StagedFile] = []
        defer { staged.forEach { $0.discard() } }
        for source in sources {
            if request.mode != .copy, let digest = try storedDigest(ofSameFile: source.status) {
                staged.append(StagedFile(alreadyStored: source, digest: digest, mode: request.mode))
            } else {
                staged.append(try StagedFile(source, mode: request.mode, temporaryDirectory: temporaryDirectory))
            }
        }
        if request.checkNamedDigests {
            for file in staged {
                guard let claimed = ForeignCaches.claimedDigest(of: file.source.path), claimed != file.digest else { continue }
                throw StoreError(.corrupt, "\(file.source.path) is named for SHA-256 \(claimed.prefix(12))… but its bytes hash to \(file.digest.prefix(12))…: that copy is damaged or was changed, so it was not taken")
            }
        }
        let result = try lock.withLock { () throws(StoreError) in
            try record(staged, as: name, request: request)
        }
        if request.mode == .move {
            // A file inside the store (a blob imported again) is the store's own; it never goes.
            for file in staged where !file.source.realPath.hasPrefix(root + "/") {
                if let current = try? FileStatus.of(file.source.realPath), current.sameContents(as: file.source.status) {
                    unlink(file.source.realPath)
                    if file.source.path != file.source.realPath { unlink(file.source.path) }  // the symlink to it
                }
            }
        }
        return result
    }

    /// Adopts a model found in another tool's cache: its files hardlinked (copied across file
    /// systems), each hashed, and refused when the hash its cache named it by is not its bytes'.
    public func adopt(_ model: FoundModel, app: String? = nil) throws(StoreError) -> ImportResult {
        var request = ImportRequest(weights: model.weights, projector: model.projector, name: model.name, app: app, mode: .link)
        request.checkNamedDigests = true
        return try importModel(request)
    }

    /// The digest of a stored blob that is this very file (a hardlink of it), trusted on the same
    /// (device, inode, size, mtime) as fast validation trusts; nil when there is none.
    private func storedDigest(ofSameFile status: FileStatus) throws(StoreError) -> String? {
        let candidates = try database.read { db in
            try BlobRecord.filter(sql: "inode = ? AND size = ? AND modifiedNanoseconds = ?",
                                  arguments: [Int64(bitPattern: status.inode), Int64(status.size), status.modifiedNanoseconds])
                .fetchAll(db)
        }
        return candidates.first { blob in
            (try? FileStatus.of(database.blobPath(blob.digest)))??.device == status.device
        }?.digest
    }

    /// Places staged blobs and records the entry; the caller holds the store lock.
    func record(_ staged: [StagedFile], as name: String, request: ImportRequest) throws(StoreError) -> ImportResult {
        // A stored blob is kept only while its file is as recorded; a missing or altered one is
        // replaced by the freshly hashed copy, so re-importing repairs a corrupt entry.
        let rows = try database.read { db in
            try BlobRecord.filter(staged.map(\.digest).contains(BlobRecord.Columns.digest)).fetchAll(db)
        }
        let knownDigests = Set(rows.filter(blobFileIsAsRecorded).map(\.digest))
        var placed: [String] = []
        do throws(StoreError) {
            for file in staged where !knownDigests.contains(file.digest) && !placed.contains(file.digest) {
                let path = database.blobPath(file.digest)
                guard let temporaryPath = file.temporaryPath else {
                    // The source was this blob's other link, and another process deleted the
                    // blob meanwhile: the source still holds the bytes, so link it back.
                    try relink(file, to: path)
                    placed.append(file.digest)
                    continue
                }
                guard rename(temporaryPath, path) == 0 else {
                    throw StoreError(.io, "cannot move \(file.source.path) into the store: \(systemMessage()); try again")
                }
                // Read-only guards a copy against accidental writes; a hardlink shares its mode with the original.
                if file.method == .copied { chmod(path, 0o444) }
                placed.append(file.digest)
            }
            syncDirectory(blobDirectory)

            let (entry, created, orphaned) = try database.write { db in
                try recordEntry(staged, as: name, request: request, db)
            }
            removeBlobFiles(orphaned)
            let files = staged.map { file in
                ImportedFile(role: file.source.role, sha256: file.digest, size: file.size, method: file.method,
                             alreadyStored: knownDigests.contains(file.digest))
            }
            return ImportResult(entry: entry, created: created, files: files)
        } catch {
            // Only blobs new to the store go; one that replaced a broken file stays, as it is correct.
            removeBlobFiles(Set(placed).subtracting(rows.map(\.digest)))
            throw error
        }
    }

    /// Returns the entry, whether it was created, and blobs the replaced entry no longer needs.
    private func recordEntry(_ staged: [StagedFile], as name: String, request: ImportRequest,
                             _ db: Database) throws -> (ModelEntry, Bool, Set<String>) {
        let now = configuration.now()
        var orphaned = Set<String>()
        if var existing = try ModelRecord.filter(ModelRecord.Columns.name == name).fetchOne(db) {
            let existingFiles = try ModelFileRecord.filter(ModelFileRecord.Columns.modelId == existing.id).fetchAll(db)
            let sameFiles = Set(existingFiles.map { "\($0.role)/\($0.shardIndex)/\($0.blobDigest)" })
                == Set(staged.map { "\($0.source.role)/\($0.source.shardIndex)/\($0.digest)" })
            if sameFiles {
                try recordBlobs(staged, at: now, db)
                if existing.status != .ready {
                    existing.status = .ready
                    existing.statusDetail = nil
                    try existing.update(db)
                }
                if let app = request.app { try recordUse(of: &existing, by: app, pin: request.pin ? true : nil, at: now, db) }
                return (try database.entries(for: [existing], db)[0], false, [])
            }
            guard request.replace else {
                throw StoreError(.alreadyExists, "a model named '\(name)' already exists with other files; choose another --name, or pass --force to replace it")
            }
            orphaned = try database.deleteModel(existing, db).subtracting(staged.map(\.digest))
        }
        try recordBlobs(staged, at: now, db)
        let weights = staged[0].source
        var model = ModelRecord(id: nil, name: name, status: .ready, statusDetail: nil,
                                sourceURL: weights.origin.sourceURL,
                                license: weights.facts.license, compatibilityNotes: nil, createdAt: now, lastUsedAt: nil)
        try model.insert(db)
        for file in staged {
            var record = ModelFileRecord(id: nil, modelId: model.id!, role: file.source.role, shardIndex: file.source.shardIndex,
                                         blobDigest: file.digest, size: Int64(file.size),
                                         originalFilename: file.source.origin.originalFilename,
                                         sourceURL: file.source.origin.sourceURL, etag: file.source.origin.etag,
                                         lastModified: file.source.origin.lastModified, facts: file.source.facts,
                                         hashSource: file.source.hashSource)
            try record.insert(db)
        }
        if let app = request.app { try recordUse(of: &model, by: app, pin: request.pin, at: now, db) }
        return (try database.entries(for: [model], db)[0], true, orphaned)
    }

    /// Records each staged blob's file status, the one its bytes were just hashed under.
    private func recordBlobs(_ staged: [StagedFile], at now: Date, _ db: Database) throws {
        for file in staged {
            guard let status = try FileStatus.of(database.blobPath(file.digest)) else {
                throw StoreError(.io, "blob \(file.digest) vanished from the store while importing; try again")
            }
            let blob = BlobRecord(digest: file.digest, size: Int64(status.size), inode: Int64(bitPattern: status.inode),
                                  modifiedNanoseconds: status.modifiedNanoseconds, createdAt: now, verifiedAt: now)
            if try BlobRecord.exists(db, key: file.digest) {
                try db.execute(sql: "UPDATE blob SET inode = ?, modifiedNanoseconds = ?, verifiedAt = ? WHERE digest = ?",
                               arguments: [blob.inode, blob.modifiedNanoseconds, now.timeIntervalSince1970, blob.digest])
            } else {
                try blob.insert(db)
            }
        }
    }

    /// Links an already-hashed source into the blob path, if it is still the file hashed.
    private func relink(_ file: StagedFile, to path: String) throws(StoreError) {
        guard linkat(AT_FDCWD, file.source.realPath, AT_FDCWD, path, AT_SYMLINK_FOLLOW) == 0 else {
            throw StoreError(.io, "cannot link \(file.source.path) into the store: \(systemMessage()); try again")
        }
        guard let linked = try FileStatus.of(path), linked.sameContents(as: file.source.status) else {
            unlink(path)
            throw StoreError(.sourceChanged, "\(file.source.path) changed while it was being imported; try again")
        }
    }

    func blobFileIsAsRecorded(_ blob: BlobRecord) -> Bool {
        guard let status = try? FileStatus.of(database.blobPath(blob.digest)) else { return false }
        return status.size == UInt64(blob.size) && Int64(bitPattern: status.inode) == blob.inode
            && status.modifiedNanoseconds == blob.modifiedNanoseconds
    }
}
