import Foundation
import GRDB

extension ModelStore {
    /// Records that `app` uses the entry (creating the reference if needed) and stamps the
    /// last-used times; `pin` true or false changes whether the app pins it against pruning.
    @discardableResult
    public func useModel(named name: String, app: String, pin: Bool? = nil) throws(StoreError) -> ModelEntry {
        try ModelName.validate(name)
        try AppID.validate(app)
        let now = configuration.now()
        return try database.write { db in
            var model = try database.modelRecord(named: name, db)
            try recordUse(of: &model, by: app, pin: pin, at: now, db)
            return try database.entries(for: [model], db)[0]
        }
    }

    /// Removes `app`'s reference to the entry; returns false when the app had none.
    @discardableResult
    public func releaseModel(named name: String, app: String) throws(StoreError) -> Bool {
        try ModelName.validate(name)
        try AppID.validate(app)
        return try database.write { db in
            let model = try database.modelRecord(named: name, db)
            return try AppReferenceRecord
                .filter(AppReferenceRecord.Columns.modelId == model.id && AppReferenceRecord.Columns.appId == app)
                .deleteAll(db) > 0
        }
    }

    func recordUse(of model: inout ModelRecord, by app: String, pin: Bool?, at now: Date, _ db: Database) throws {
        let existing = try AppReferenceRecord
            .filter(AppReferenceRecord.Columns.modelId == model.id && AppReferenceRecord.Columns.appId == app)
            .fetchOne(db)
        var reference = existing ?? AppReferenceRecord(id: nil, modelId: model.id!, appId: app, pinned: false,
                                                       createdAt: now, lastUsedAt: now)
        reference.lastUsedAt = now
        if let pin { reference.pinned = pin }
        try reference.save(db)
        model.lastUsedAt = now
        try model.update(db)
    }
}
