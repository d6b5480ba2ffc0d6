import Foundation

/// A file a downloader wrote into the store's `tmp/` directory and hashed as it arrived.
public struct DownloadedFile: Sendable {
    /// What the file is for.
    public var role: FileRole
    /// Its path under `temporaryDirectoryPath`.
    public var path: String
    /// SHA-256 of its bytes, lowercase hex.
    public var sha256: String
    /// Where it came from, secrets removed.
    public var origin: FileOrigin
    /// What vouched for the hash.
    public var hashSource: HashSource

    /// Describes a downloaded file.
    public init(role: FileRole, path: String, sha256: String, origin: FileOrigin, hashSource: HashSource) {
        self.role = role
        self.path = path
        self.sha256 = sha256
        self.origin = origin
        self.hashSource = hashSource
    }
}

extension ModelStore {
    /// Where downloaders write partial files: on the store's file system, so a finished file
    /// enters `blobs/` by rename, and swept by `collectGarbage` when abandoned.
    public var temporaryDirectoryPath: String { temporaryDirectory }

    /// Makes verified downloads visible as one entry. Each file's GGUF header is checked first;
    /// the files are renamed into `blobs/` (a file whose bytes are already stored stays where it
    /// is, for its downloader to remove). On failure nothing is visible and the files stay.
    public func recordDownload(_ files: [DownloadedFile], name: String, app: String? = nil,
                               replace: Bool = false) throws(StoreError) -> ImportResult {
        try ModelName.validate(name)
        if let app { try AppID.validate(app) }
        var staged: [StagedFile] = []
        for file in files {
            let inspected: InspectedFile
            do throws(StoreError) {
                inspected = try InspectedFile(path: file.path, role: file.role, origin: file.origin, hashSource: file.hashSource)
            } catch where error.code == .notGGUF {
                throw StoreError(.notGGUF, "the file downloaded from \(file.origin.sourceURL ?? file.origin.originalFilename) is not a usable GGUF model: \(error.message)")
            }
            staged.append(StagedFile(downloaded: inspected, digest: file.sha256))
        }
        let request = ImportRequest(weights: files.first?.path ?? "", name: name, app: app, replace: replace)
        return try lock.withLock { () throws(StoreError) in
            try record(staged, as: name, request: request)
        }
    }

    /// The path of a stored blob with this SHA-256 whose file is as recorded, if there is one:
    /// a download of known bytes can then be skipped.
    public func storedBlobPath(sha256: String) throws(StoreError) -> String? {
        let row = try database.read { db in try BlobRecord.fetchOne(db, key: sha256.lowercased()) }
        guard let row, blobFileIsAsRecorded(row) else { return nil }
        return database.blobPath(row.digest)
    }
}
