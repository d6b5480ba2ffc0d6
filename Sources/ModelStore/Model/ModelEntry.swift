import Foundation
import GGUF

/// Whether an entry's files are known to match their hashes.
public enum ModelStatus: String, Codable, Sendable {
    /// Every file matched its SHA-256 when last checked.
    case ready
    /// A file is missing or its bytes no longer match; re-import or delete the entry.
    case corrupt
}

/// Where a file's expected SHA-256 came from, i.e. how far its integrity is vouched for.
public enum HashSource: String, Codable, Sendable {
    /// Hashed from a local file at import.
    case imported
    /// Matched the SHA-256 a model catalog lists.
    case catalog
    /// Matched a SHA-256 the user gave.
    case user
    /// Matched the SHA-256 the server published (Hugging Face's X-Linked-Etag).
    case server
    /// Downloaded with nothing to check against: the hash was recorded on first download.
    case firstDownload

    /// Whether something independent of the bytes vouched for the hash.
    public var isVerified: Bool { self != .firstDownload }
}

/// Where a file came from, as recorded in the store (secrets already removed).
public struct FileOrigin: Codable, Sendable, Equatable {
    /// Source URL without credentials.
    public var sourceURL: String?
    /// The file's name at its source.
    public var originalFilename: String
    /// The server's ETag.
    public var etag: String?
    /// The server's Last-Modified.
    public var lastModified: String?

    /// Makes an origin.
    public init(sourceURL: String?, originalFilename: String, etag: String? = nil, lastModified: String? = nil) {
        self.sourceURL = sourceURL
        self.originalFilename = originalFilename
        self.etag = etag
        self.lastModified = lastModified
    }
}

/// What a file is for within one logical model.
public enum FileRole: String, Codable, Sendable, Comparable {
    case weights, projector, shard

    public static func < (lhs: FileRole, rhs: FileRole) -> Bool {
        let order: [FileRole] = [.weights, .shard, .projector]
        return order.firstIndex(of: lhs)! < order.firstIndex(of: rhs)!
    }
}

/// One logical model as apps see it: weights plus projector and shards, with its metadata.
public struct ModelEntry: Codable, Sendable, Equatable {
    /// The entry's name, `family:tag`.
    public var name: String
    /// Integrity status.
    public var status: ModelStatus
    /// Why the status is what it is, when not ready.
    public var statusDetail: String?
    /// Facts from the weights file's GGUF header.
    public var facts: GGUFFacts?
    /// Files in role order: weights, shards, projector.
    public var files: [ModelFile]
    /// Apps that use this entry.
    public var apps: [AppUse]
    /// Where the weights came from, with secrets removed.
    public var sourceURL: String?
    /// License name, from the header or the catalog.
    public var license: String?
    /// Free-form notes about runtimes or devices this model needs.
    public var compatibilityNotes: String?
    /// When the entry was created.
    public var createdAt: Date
    /// When any app or the user last used it.
    public var lastUsedAt: Date?

    /// Bytes of all its files (a blob shared with another entry counts in both).
    public var sizeBytes: UInt64 { files.reduce(0) { $0 + $1.size } }
    /// Whether every file's hash was vouched for by something other than the download itself.
    public var isVerified: Bool { files.allSatisfy { $0.hashSource.isVerified } }
    /// Whether any app pinned it against pruning.
    public var isPinned: Bool { apps.contains(where: \.pinned) }
    /// The weights file (the first shard for split models).
    public var weights: ModelFile? { files.first { $0.role == .weights } ?? files.first { $0.role == .shard } }
    /// The multimodal projector, when the model has one.
    public var projector: ModelFile? { files.first { $0.role == .projector } }
}

/// One file of an entry.
public struct ModelFile: Codable, Sendable, Equatable {
    /// What the file is for.
    public var role: FileRole
    /// Position among shards; 0 otherwise.
    public var shardIndex: Int
    /// SHA-256 of the contents, lowercase hex.
    public var sha256: String
    /// Size in bytes.
    public var size: UInt64
    /// Absolute path of the blob; open it read-only.
    public var path: String
    /// The file's name where it came from.
    public var originalFilename: String
    /// Where it came from, with secrets removed.
    public var sourceURL: String?
    /// The server's ETag when it was downloaded.
    public var etag: String?
    /// The server's Last-Modified when it was downloaded.
    public var lastModified: String?
    /// Facts from its GGUF header.
    public var facts: GGUFFacts?
    /// Where the expected hash came from.
    public var hashSource: HashSource
}

/// An app's use of an entry.
public struct AppUse: Codable, Sendable, Equatable {
    /// The app's id.
    public var app: String
    /// Whether the app pinned the entry against pruning.
    public var pinned: Bool
    /// When the app first used it.
    public var since: Date
    /// When the app last used it.
    public var lastUsedAt: Date
}
