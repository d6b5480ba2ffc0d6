import Foundation
import GRDB

/// What pruning removes (or would remove, on a dry run) to fit a size limit.
public struct PrunePlan: Codable, Sendable {
    /// One entry to remove.
    public struct Removal: Codable, Sendable {
        public var name: String
        public var lastUsedAt: Date
        public var sizeBytes: UInt64
        /// Bytes freed by this removal (blobs shared with kept entries stay).
        public var bytesReclaimed: UInt64
        public var apps: [String]
    }

    /// The limit asked for.
    public var maxBytes: UInt64
    /// Bytes the store's blobs held before.
    public var usedBytes: UInt64
    /// Entries removed, least recently used first.
    public var removals: [Removal]
    /// Pinned entries that were never considered.
    public var pinned: [String]
    /// Entries other apps use, spared when an app prunes (`onBehalfOf`).
    public var usedByOtherApps: [String] = []
    /// True when nothing was actually removed.
    public var dryRun: Bool
    /// Bytes freed in all.
    public private(set) var bytesReclaimed: UInt64 = 0
    /// Bytes held after the plan.
    public private(set) var bytesAfter: UInt64
    /// Whether the store fits the limit after the plan (pinned entries may prevent it).
    public private(set) var fits: Bool

    init(maxBytes: UInt64, usedBytes: UInt64, pinned: [String], dryRun: Bool) {
        self.maxBytes = maxBytes
        self.usedBytes = usedBytes
        self.removals = []
        self.pinned = pinned
        self.dryRun = dryRun
        bytesAfter = usedBytes
        fits = usedBytes <= maxBytes
    }

    mutating func add(_ removal: Removal) {
        removals.append(removal)
        bytesReclaimed += removal.bytesReclaimed
        bytesAfter = usedBytes - bytesReclaimed
        fits = bytesAfter <= maxBytes
    }
}

extension ModelStore {
    /// Removes least-recently-used entries until the store's blobs fit in `maxBytes`, never
    /// touching an entry any app pinned. When an app prunes (`onBehalfOf`), entries another app
    /// uses are spared too: one app never silently removes another's model. With `dryRun`, only
    /// reports the plan.
    public func pruneLeastRecentlyUsed(toFit maxBytes: UInt64, dryRun: Bool = false,
                                       onBehalfOf app: String? = nil) throws(StoreError) -> PrunePlan {
        try lock.withLock { () throws(StoreError) in
            var removed: Set<String> = []
            let plan = try database.write { db in
                let plan = try planPrune(toFit: maxBytes, dryRun: dryRun, app: app, db)
                guard !dryRun else { return plan }
                for removal in plan.removals {
                    let model = try database.modelRecord(named: removal.name, db)
                    removed.formUnion(try removeEntry(model, overriding: removal.apps, db).removedBlobs)
                }
                return plan
            }
            removeBlobFiles(removed)
            return plan
        }
    }

    private func planPrune(toFit maxBytes: UInt64, dryRun: Bool, app: String?, _ db: Database) throws -> PrunePlan {
        let entries = try database.entries(for: ModelRecord.fetchAll(db), all: true, db)
        let sizes = try blobSizes(db)
        var users: [String: Int] = [:]
        for entry in entries {
            for digest in Set(entry.files.map(\.sha256)) { users[digest, default: 0] += 1 }
        }
        let usedBytes = users.keys.reduce(0) { $0 + (sizes[$1] ?? 0) }
        let usedByOthers = { (entry: ModelEntry) in app != nil && entry.apps.contains { $0.app != app } }
        let candidates = entries.filter { !$0.isPinned && !usedByOthers($0) }
            .map { (entry: $0, lastUse: Self.lastUse(of: $0)) }
            .sorted { ($0.lastUse, $0.entry.name) < ($1.lastUse, $1.entry.name) }
        var plan = PrunePlan(maxBytes: maxBytes, usedBytes: usedBytes,
                             pinned: entries.filter(\.isPinned).map(\.name), dryRun: dryRun)
        plan.usedByOtherApps = entries.filter { !$0.isPinned && usedByOthers($0) }.map(\.name)
        for (entry, lastUse) in candidates where !plan.fits {
            var reclaimed: UInt64 = 0
            for digest in Set(entry.files.map(\.sha256)) {
                users[digest]! -= 1
                if users[digest] == 0 { reclaimed += sizes[digest] ?? 0 }
            }
            plan.add(.init(name: entry.name, lastUsedAt: lastUse, sizeBytes: entry.sizeBytes,
                                       bytesReclaimed: reclaimed, apps: entry.apps.map(\.app)))
        }
        return plan
    }

    /// The latest use by anyone; an entry never used counts from its creation.
    static func lastUse(of entry: ModelEntry) -> Date {
        ([entry.createdAt, entry.lastUsedAt].compactMap { $0} + entry.apps.map(\.lastUsedAt)).max()!
    }
}
