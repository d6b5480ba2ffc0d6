import Foundation
import GGUF

/// Whether an entry's files are known to match their hashes.
public enum ModelStatus: String, Codable, Sendable {
    /// Every file matched its SHA-256 when last checked.
    case ready
    /// A file is missing or its bytes no longer match; re-import or delete the entry.
    case corrupt
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
