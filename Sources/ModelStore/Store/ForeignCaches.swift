import Foundation

/// A model found in another tool's cache, which the store can adopt (`ModelStore.adopt`): its
/// files stay where they are and the store hardlinks them.
public struct FoundModel: Codable, Sendable, Equatable {
    public enum Origin: String, Codable, Sendable {
        case ollama
        case huggingFace = "huggingface"
    }

    public var origin: Origin
    /// The entry's name: Ollama's own (`library/` dropped), or `hf.co/owner/repo:QUANT` as
    /// Ollama names Hugging Face models.
    public var name: String
    public var weights: String
    public var projector: String?
    /// Bytes of the weights (the first shard, for a split model) and projector.
    public var size: UInt64
    /// The manifest or snapshot file that lists it, for messages.
    public var listing: String
}

/// Something in a cache that is not adopted, and why.
public struct SkippedListing: Codable, Sendable, Equatable {
    public var listing: String
    public var reason: String

    public init(listing: String, reason: String) {
        self.listing = listing
        self.reason = reason
    }
}

/// What a cache holds.
public struct CacheScan: Codable, Sendable {
    public var root: String
    public var found: [FoundModel]
    public var skipped: [SkippedListing]
}

/// Reads the layouts of Ollama's store and the Hugging Face hub cache. Nothing here trusts the
/// hashes those layouts put in file names: adopting hashes every file (`ModelStore.adopt`).
public enum ForeignCaches {
    /// `$OLLAMA_MODELS`, else `~/.ollama/models`.
    public static func ollamaRoot(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        environment["OLLAMA_MODELS"] ?? home(environment) + "/.ollama/models"
    }

    /// `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`.
    public static func huggingFaceRoot(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        environment["HF_HUB_CACHE"] ?? environment["HF_HOME"].map { $0 + "/hub" }
            ?? (environment["XDG_CACHE_HOME"] ?? home(environment) + "/.cache") + "/huggingface/hub"
    }

    private static func home(_ environment: [String: String]) -> String {
        environment["HOME"] ?? NSHomeDirectory()
    }

    static let modelLayer = "application/vnd.ollama.image.model"
    static let projectorLayer = "application/vnd.ollama.image.projector"
    static let adapterLayer = "application/vnd.ollama.image.adapter"

    /// Ollama's store: `manifests/<registry>/<namespace>/<model>/<tag>`, each a manifest whose
    /// layers name blobs `blobs/sha256-<hex>`.
    public static func scanOllama(_ root: String) throws(StoreError) -> CacheScan {
        let manifests = root + "/manifests"
        guard isDirectory(manifests) else {
            throw StoreError(.notFound, "\(root) is not an Ollama store (it has no manifests/ directory); give the directory OLLAMA_MODELS points at")
        }
        var scan = CacheScan(root: root, found: [], skipped: [])
        for path in files(under: manifests).sorted() {
            let parts = path.dropFirst(manifests.count + 1).split(separator: "/").map(String.init)
            guard parts.count == 4 else { continue }
            do throws(StoreError) {
                scan.found.append(try ollamaModel(manifest: path, parts: parts, root: root))
            } catch {
                scan.skipped.append(SkippedListing(listing: path, reason: error.message))
            }
        }
        return scan
    }

    private struct Manifest: Decodable {
        struct Layer: Decodable {
            var mediaType: String
            var digest: String
            var size: UInt64?
        }
        var layers: [Layer]
    }

    private static func ollamaModel(manifest path: String, parts: [String], root: String) throws(StoreError) -> FoundModel {
        let manifest: Manifest
        do {
            manifest = try JSONDecoder().decode(Manifest.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw StoreError(.invalidInput, "not a manifest Ollama writes: \(error)")
        }
        let (registry, namespace, model, tag) = (parts[0], parts[1], parts[2], parts[3])
        let name = registry == "registry.ollama.ai" ? (namespace == "library" ? "" : namespace + "/") + model + ":" + tag
            : "\(registry)/\(namespace)/\(model):\(tag)"
        try ModelName.validate(name)
        if manifest.layers.contains(where: { $0.mediaType == adapterLayer }) {
            throw StoreError(.invalidInput, "it has a LoRA adapter layer, which depot does not apply; the model would answer differently")
        }
        guard let weights = manifest.layers.first(where: { $0.mediaType == modelLayer }) else {
            throw StoreError(.invalidInput, "it has no model layer")
        }
        func blob(_ layer: Manifest.Layer) throws(StoreError) -> String {
            let hex = layer.digest.hasPrefix("sha256:") ? String(layer.digest.dropFirst(7)) : ""
            guard hex.count == 64, hex.allSatisfy({ $0.isHexDigit && !$0.isUppercase }) else {
                throw StoreError(.invalidInput, "layer digest '\(layer.digest.prefix(80))' is not sha256:<64 hex digits>")
            }
            let path = root + "/blobs/sha256-" + hex
            guard (try? FileStatus.of(path))??.isRegularFile == true else { throw StoreError(.notFound, "its blob \(path) is missing") }
            return path
        }
        let weightsPath = try blob(weights)
        guard isGGUF(weightsPath) else { throw StoreError(.notGGUF, "its model layer is not a GGUF file") }
        let projector = try manifest.layers.first(where: { $0.mediaType == projectorLayer }).map { layer throws(StoreError) in try blob(layer) }
        return FoundModel(origin: .ollama, name: name, weights: weightsPath, projector: projector,
                          size: size(weightsPath) + (projector.map(size) ?? 0), listing: path)
    }

    /// The Hugging Face hub cache: `models--<owner>--<repo>/snapshots/<revision>/<file>`, each
    /// file a symlink into the repository's `blobs/` (an LFS blob is named by its SHA-256).
    /// The revisions its refs point at are read (all of them when it has none); GGUF files
    /// become entries, a projector (`mmproj` in its name) goes with the weights beside it.
    public static func scanHuggingFace(_ root: String) throws(StoreError) -> CacheScan {
        guard isDirectory(root) else {
            throw StoreError(.notFound, "\(root) is not a Hugging Face hub cache directory; give the directory HF_HUB_CACHE points at")
        }
        var scan = CacheScan(root: root, found: [], skipped: [])
        let repositories = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).filter { $0.hasPrefix("models--") }.sorted()
        for directory in repositories {
            let parts = directory.dropFirst("models--".count).components(separatedBy: "--")
            let repository = root + "/" + directory
            guard parts.count == 2 else {
                scan.skipped.append(SkippedListing(listing: repository, reason: "not named models--<owner>--<repo>"))
                continue
            }
            let refs = files(under: repository + "/refs").compactMap { try? String(contentsOfFile: $0, encoding: .utf8) }
                .map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
            let revisions = refs.isEmpty ? ((try? FileManager.default.contentsOfDirectory(atPath: repository + "/snapshots")) ?? []).sorted()
                : Array(Set(refs)).sorted()
            var names: Set<String> = []
            var ggufs = 0
            for revision in revisions where !revision.contains("/") && !revision.hasPrefix(".") {
                let snapshot = repository + "/snapshots/" + revision
                let all = files(under: snapshot).filter { $0.lowercased().hasSuffix(".gguf") }.sorted()
                ggufs += all.count
                let projectors = all.filter { URL(fileURLWithPath: $0).lastPathComponent.lowercased().contains("mmproj") }
                for path in all where !projectors.contains(path) {
                    // A split model is listed by its first shard.
                    if let shard = SplitModel.parts(of: path), shard.index != 1 { continue }
                    let found = huggingFaceModel(path, owner: parts[0], repository: parts[1], projectors: projectors)
                    switch found {
                    case .success(let model) where names.insert(model.name).inserted: scan.found.append(model)
                    case .success(let model):
                        scan.skipped.append(SkippedListing(listing: path, reason: "another file of this repository is named \(model.name) already"))
                    case .failure(let error): scan.skipped.append(SkippedListing(listing: path, reason: error.message))
                    }
                }
            }
            if ggufs == 0 { scan.skipped.append(SkippedListing(listing: repository, reason: "it holds no GGUF file (only other formats, such as safetensors)")) }
        }
        return scan
    }

    private static func huggingFaceModel(_ path: String, owner: String, repository: String, projectors: [String]) -> Result<FoundModel, StoreError> {
        guard isGGUF(path) else { return .failure(StoreError(.notGGUF, "not a GGUF file, or its blob is missing")) }
        let file = URL(fileURLWithPath: SplitModel.parts(of: path).map { $0.prefix + ".gguf" } ?? path).lastPathComponent
        let quantization = try? InspectedFile(path: path, role: .weights).facts.quantization
        let tag = quantization ?? String(ModelName.derive(fromFilename: file, quantization: nil).split(separator: ":")[0])
        let name = "hf.co/\(owner)/\(repository):\(tag)"
        do throws(StoreError) { try ModelName.validate(name) } catch { return .failure(error) }
        // The projector for these weights: the only one, or the one whose name shares theirs.
        let stem = file.lowercased().replacingOccurrences(of: ".gguf", with: "")
        let projector = projectors.count == 1 ? projectors[0]
            : projectors.first { URL(fileURLWithPath: $0).lastPathComponent.lowercased().contains(stem.split(separator: "-").first.map(String.init) ?? stem) }
        return .success(FoundModel(origin: .huggingFace, name: name, weights: path, projector: projector,
                                   size: size(path) + (projector.map(size) ?? 0), listing: path))
    }

    /// The SHA-256 a cache's file name claims for the file at `path` (following symlinks):
    /// Ollama's `sha256-<hex>`, or a Hugging Face LFS blob's `<hex>`; nil when it claims none.
    static func claimedDigest(of path: String) -> String? {
        let name = URL(fileURLWithPath: path).resolvingSymlinksInPath().lastPathComponent
        let hex = name.hasPrefix("sha256-") ? String(name.dropFirst(7)) : name
        return hex.count == 64 && hex.allSatisfy({ $0.isHexDigit && !$0.isUppercase }) ? hex : nil
    }

    static func isGGUF(_ path: String) -> Bool {
        guard let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        return (try? handle.read(upToCount: 4)) == Data("GGUF".utf8)
    }

    private static func size(_ path: String) -> UInt64 { ((try? FileStatus.of(path)) ?? nil)?.size ?? 0 }

    private static func isDirectory(_ path: String) -> Bool {
        var directory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &directory) && directory.boolValue
    }

    /// Every file (or symlink to one) below `directory`, as paths.
    private static func files(under directory: String) -> [String] {
        guard let enumerator = FileManager.default.enumerator(atPath: directory) else { return [] }
        return enumerator.compactMap { $0 as? String }.map { directory + "/" + $0 }.filter { !isDirectory($0) }
    }
}
