import GRDB

extension StoreDatabase {
    /// Migrations are frozen once landed: add a new one rather than editing one.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.create(table: "blob") { t in
                t.primaryKey("digest", .text)
                t.column("size", .integer).notNull()
                t.column("inode", .integer).notNull()
                t.column("modifiedNanoseconds", .integer).notNull()
                t.column("createdAt", .datetime).notNull()
                t.column("verifiedAt", .datetime).notNull()
            }
            try db.create(table: "model") { t in
                t.autoIncrementedPrimaryKey("id")
                t.column("name", .text).notNull().unique()
                t.column("status", .text).notNull()
                t.column("statusDetail", .text)
                t.column("sourceURL", .text)
                t.column("license", .text)
                t.column("compatibilityNotes", .text)
                t.column("createdAt", .datetime).notNull()
                t.column("lastUsedAt", .datetime)
            }
            try db.create(table: "modelFile") { t in
                t.autoIncrementedPrimaryKey("id")
                t.belongsTo("model", onDelete: .cascade).notNull()
                t.column("role", .text).notNull()
                t.column("shardIndex", .integer).notNull()
                t.column("blobDigest", .text).notNull().indexed().references("blob", onDelete: .restrict)
                t.column("size", .integer).notNull()
                t.column("originalFilename", .text).notNull()
                t.column("sourceURL", .text)
                t.column("etag", .text)
                t.column("lastModified", .text)
                t.column("facts", .jsonText)
                t.column("hashSource", .text).notNull()
                t.uniqueKey(["modelId", "role", "shardIndex"])
            }
            try db.create(table: "appReference") { t in
                t.autoIncrementedPrimaryKey("id")
                t.belongsTo("model", onDelete: .cascade).notNull()
                t.column("appId", .text).notNull()
                t.column("pinned", .boolean).notNull()
                t.column("createdAt", .datetime).notNull()
                t.column("lastUsedAt", .datetime).notNull()
                t.uniqueKey(["modelId", "appId"])
            }
        }
        return migrator
    }
}
