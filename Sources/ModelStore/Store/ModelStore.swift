import Foundation

/// The on-disk model store: content-addressed blobs plus SQLite metadata, shared by every app
/// and process of one user. Every method is safe to call from several processes at once.
///
/// Layout: `blobs/sha256/<hex>` (immutable, complete files only), `tmp/` (files being written),
/// `depot.sqlite` (metadata), `store.lock` (held while blobs and their rows change together).
public struct ModelStore: Sendable {
    /// How to open a store.
    public struct Configuration: Sendable {
        /// The store's directory.
        public var root: String
        /// Temporary files older than this, and not locked by a live writer, are garbage.
        public var temporaryFileGracePeriod: TimeInterval
        /// The clock for last-used times; tests replace it.
        public var now: @Sendable () -> Date

        /// Defaults to the per-user store and a one-hour grace period.
        public init(root: String = StoreLocation.defaultRoot(), temporaryFileGracePeriod: TimeInterval = 3600,
                    now: @escaping @Sendable () -> Date = { Date() }) {
            self.root = root
            self.temporaryFileGracePeriod = temporaryFileGracePeriod
            self.now = now
        }
    }

    /// The store's directory, absolute.
    public let root: String
    let configuration: Configuration
    let database: StoreDatabase
    let lock: StoreLock
    let blobDirectory: String
    let temporaryDirectory: String

    /// Opens the store, creating its directories and database when they do not exist yet.
    public init(configuration: Configuration = Configuration()) throws(StoreError) {
        let root = URL(fileURLWithPath: configuration.root).standardizedFileURL.path
        self.root = root
        self.configuration = configuration
        blobDirectory = root + "/blobs/sha256"
        temporaryDirectory = root + "/tmp"
        try createDirectory(blobDirectory)
        try createDirectory(temporaryDirectory)
        lock = StoreLock(path: root + "/store.lock")
        let (databasePath, blobDirectory) = (root + "/depot.sqlite", blobDirectory)
        database = try lock.withLock { () throws(StoreError) in
            try StoreDatabase(path: databasePath, blobDirectory: blobDirectory)
        }
    }

    /// Opens the store at `root` with default settings.
    public init(root: String) throws(StoreError) {
        try self.init(configuration: Configuration(root: root))
    }

    /// Every entry, sorted by name.
    public func listModels() throws(StoreError) -> [ModelEntry] {
        try database.read { db in
            try database.entries(for: ModelRecord.order(ModelRecord.Columns.name).fetchAll(db), all: true, db)
        }
    }

    /// One entry by name.
    public func model(named name: String) throws(StoreError) -> ModelEntry {
        try ModelName.validate(name)
        return try database.read { db in
            try database.entries(for: [database.modelRecord(named: name, db)], db)[0]
        }
    }

    /// Bytes held by blobs that entries reference (each blob once).
    public func usedBytes() throws(StoreError) -> UInt64 {
        try database.read { db in
            UInt64(try Int64.fetchOne(db, sql: "SELECT COALESCE(SUM(size), 0) FROM blob") ?? 0)
        }
    }

    /// Removes blob files after their rows are gone; a file left behind by a crash is garbage
    /// that `collectGarbage` finds later.
    func removeBlobFiles(_ digests: Set<String>) {
        for digest in digests { unlink(database.blobPath(digest)) }
    }
}
