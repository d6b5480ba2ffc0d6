/// How an imported file gets into the store.
public enum ImportMode: String, Sendable, Codable {
    /// Hardlink when the file is on the store's file system, else copy. The original stays.
    case link
    /// Always copy, so later edits to the original cannot reach the store.
    case copy
    /// Like `link`, then remove the original once the entry is recorded.
    case move
}

/// What to import: a weights file and, for multimodal models, its projector.
public struct ImportRequest: Sendable {
    /// Path of the GGUF weights.
    public var weights: String
    /// Path of the multimodal projector (mmproj), if the model has one.
    public var projector: String?
    /// Entry name; derived from the file name and quantization when nil.
    public var name: String?
    /// App that uses the entry from now on.
    public var app: String?
    /// Whether that app pins the entry against pruning.
    public var pin: Bool
    /// Link, copy or move.
    public var mode: ImportMode
    /// Replace an entry of the same name that holds other files.
    public var replace: Bool
    /// Refuse a file whose name claims a SHA-256 its bytes do not have (Ollama's
    /// `sha256-<hex>` blobs, Hugging Face's LFS blobs), rather than take it under its bytes' hash.
    public var checkNamedDigests = false

    /// A request with the usual defaults: link, no app, no replacing.
    public init(weights: String, projector: String? = nil, name: String? = nil, app: String? = nil,
                pin: Bool = false, mode: ImportMode = .link, replace: Bool = false) {
        self.weights = weights
        self.projector = projector
        self.name = name
        self.app = app
        self.pin = pin
        self.mode = mode
        self.replace = replace
    }
}

/// What an import did.
public struct ImportResult: Codable, Sendable {
    /// The entry as it now stands.
    public var entry: ModelEntry
    /// False when the same files were already stored under this name (nothing changed).
    public var created: Bool
    /// Per file: how it entered the store.
    public var files: [ImportedFile]

    public init(entry: ModelEntry, created: Bool, files: [ImportedFile]) {
        self.entry = entry
        self.created = created
        self.files = files
    }
}

/// How one file entered the store.
public struct ImportedFile: Codable, Sendable {
    /// The file's role.
    public var role: FileRole
    /// SHA-256, lowercase hex.
    public var sha256: String
    /// Size in bytes.
    public var size: UInt64
    /// How its bytes got into the store.
    public var method: ImportMethod
    /// True when a blob with these bytes was already stored (nothing new was kept).
    public var alreadyStored: Bool

    public init(role: FileRole, sha256: String, size: UInt64, method: ImportMethod, alreadyStored: Bool) {
        self.role = role
        self.sha256 = sha256
        self.size = size
        self.method = method
        self.alreadyStored = alreadyStored
    }
}

/// How a file's bytes got into the store.
public enum ImportMethod: String, Codable, Sendable {
    case hardlinked, copied, moved, downloaded
}
