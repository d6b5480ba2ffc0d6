import Foundation
import GGUF
import GRDB

/// A content-addressed file under `blobs/sha256/`, with the file status last seen to match its hash.
struct BlobRecord: Codable, Sendable, FetchableRecord, PersistableRecord {
    static let databaseTableName = "blob"
    var digest: String
    var size: Int64
    var inode: Int64
    var modifiedNanoseconds: Int64
    var createdAt: Date
    var verifiedAt: Date

    enum Columns {
        static let digest = Column(CodingKeys.digest)
    }
}

/// One logical model: a name, its status and where it came from. Its files are `ModelFileRecord`s.
struct ModelRecord: Codable, Sendable, FetchableRecord, MutablePersistableRecord {
    static let databaseTableName = "model"
    var id: Int64?
    var name: String
    var status: ModelStatus
    var statusDetail: String?
    var sourceURL: String?
    var license: String?
    var compatibilityNotes: String?
    var createdAt: Date
    var lastUsedAt: Date?

    enum Columns {
        static let id = Column(CodingKeys.id)
        static let name = Column(CodingKeys.name)
        static let status = Column(CodingKeys.status)
        static let lastUsedAt = Column(CodingKeys.lastUsedAt)
    }

    mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}

/// One file of a model (weights, projector or a shard), referencing a blob by digest.
struct ModelFileRecord: Codable, Sendable, FetchableRecord, MutablePersistableRecord {
    static let databaseTableName = "modelFile"
    var id: Int64?
    var modelId: Int64
    var role: FileRole
    var shardIndex: Int
    var blobDigest: String
    var size: Int64
    var originalFilename: String
    var sourceURL: String?
    var etag: String?
    var lastModified: String?
    var facts: GGUFFacts?
    var hashSource: HashSource

    enum Columns {
        static let modelId = Column(CodingKeys.modelId)
        static let blobDigest = Column(CodingKeys.blobDigest)
    }

    mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }

    /// One decoder for every row: building a decoder per row dominated listing large stores.
    private static let factsDecoder = JSONDecoder()
    static func databaseJSONDecoder(for column: String) -> JSONDecoder { factsDecoder }
}

/// An app's use of a model: while it exists, other apps cannot delete the model without force.
struct AppReferenceRecord: Codable, Sendable, FetchableRecord, MutablePersistableRecord {
    static let databaseTableName = "appReference"
    var id: Int64?
    var modelId: Int64
    var appId: String
    var pinned: Bool
    var createdAt: Date
    var lastUsedAt: Date

    enum Columns {
        static let modelId = Column(CodingKeys.modelId)
        static let appId = Column(CodingKeys.appId)
        static let pinned = Column(CodingKeys.pinned)
    }

    mutating func didInsert(_ inserted: InsertionSuccess) { id = inserted.rowID }
}

/// Dates are stored as Unix seconds: ordered, compact, and much faster to decode than text.
protocol UnixTimeRecord: FetchableRecord, EncodableRecord {}

extension UnixTimeRecord {
    static func databaseDateDecodingStrategy(for column: String) -> DatabaseDateDecodingStrategy { .timeIntervalSince1970 }
    static func databaseDateEncodingStrategy(for column: String) -> DatabaseDateEncodingStrategy { .timeIntervalSince1970 }
}

extension BlobRecord: UnixTimeRecord {}
extension ModelRecord: UnixTimeRecord {}
extension AppReferenceRecord: UnixTimeRecord {}
extension ModelStatus: DatabaseValueConvertible {}
extension FileRole: DatabaseValueConvertible {}
extension HashSource: DatabaseValueConvertible {}
