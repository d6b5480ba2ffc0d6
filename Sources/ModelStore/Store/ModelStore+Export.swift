import Crypto
import Foundation
import GGUF
#if canImport(Glibc)
import Glibc
#endif

/// What exporting an entry to Ollama's store wrote.
public struct OllamaExport: Codable, Sendable {
    public var name: String
    public var manifest: String
    /// Blobs hardlinked (or copied across file systems) into Ollama's `blobs/`.
    public var linked: [String]
    /// Whether a chat template went with it (only for templates it can write in Ollama's form).
    public var template: Bool
}

extension ModelStore {
    /// Makes entry `name` visible to Ollama at `root` (its `OLLAMA_MODELS`): the weights and
    /// projector hardlinked into `blobs/sha256-<hex>` (so both tools run the same bytes), a
    /// config, and a manifest under Ollama's name for it. A ChatML template is written as
    /// Ollama's template; others are left to Ollama's default.
    public func exportToOllama(_ name: String, root: String) throws(StoreError) -> OllamaExport {
        let entry = try model(named: name)
        guard !entry.files.contains(where: { $0.role == .shard }), let weights = entry.weights else {
            throw StoreError(.invalidInput, "'\(name)' is split into shards, which Ollama's store holds as one file; it cannot be exported yet")
        }
        let manifestPath = root + "/manifests/" + Self.ollamaManifestPath(of: entry.name)
        var layers: [(mediaType: String, digest: String, size: UInt64)] = [("application/vnd.ollama.image.model", weights.sha256, weights.size)]
        var linked: [String] = []
        for file in [weights] + (entry.projector.map { [$0] } ?? []) {
            if try linkBlob(file, into: root) { linked.append(file.sha256) }
        }
        if let projector = entry.projector { layers.append(("application/vnd.ollama.image.projector", projector.sha256, projector.size)) }
        let template = (try? GGUFReader.read(path: weights.path))?["tokenizer.chat_template"]?.string
        let ollamaTemplate = template.flatMap { $0.contains("<|im_start|>") ? Self.chatMLTemplate : nil }
        if let ollamaTemplate {
            let digest = try writeBlob(Data(ollamaTemplate.utf8), into: root)
            layers.append(("application/vnd.ollama.image.template", digest, UInt64(ollamaTemplate.utf8.count)))
        }
        let config: [String: Any] = [
            "model_format": "gguf", "model_family": entry.facts?.architecture ?? "unknown",
            "model_families": [entry.facts?.architecture ?? "unknown"], "model_type": entry.facts?.parameterLabel ?? "unknown",
            "file_type": entry.facts?.quantization ?? "unknown", "architecture": "amd64", "os": "linux",
            "rootfs": ["type": "layers", "diff_ids": layers.map { "sha256:" + $0.digest }],
        ]
        let configData = (try? JSONSerialization.data(withJSONObject: config, options: [.sortedKeys])) ?? Data()
        let configDigest = try writeBlob(configData, into: root)
        let manifest: [String: Any] = [
            "schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": ["mediaType": "application/vnd.docker.container.image.v1+json", "digest": "sha256:" + configDigest, "size": configData.count],
            "layers": layers.map { ["mediaType": $0.mediaType, "digest": "sha256:" + $0.digest, "size": $0.size] as [String: Any] },
        ]
        do {
            try FileManager.default.createDirectory(atPath: (manifestPath as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try JSONSerialization.data(withJSONObject: manifest, options: [.sortedKeys]).write(to: URL(fileURLWithPath: manifestPath), options: .atomic)
        } catch {
            throw StoreError(.unwritable, "cannot write Ollama's manifest \(manifestPath): \(error.localizedDescription)")
        }
        return OllamaExport(name: entry.name, manifest: manifestPath, linked: linked, template: ollamaTemplate != nil)
    }

    /// `manifests/`-relative path of an entry's name: `model:tag` under Ollama's registry and
    /// `library/`, `ns/model:tag` under its registry, `host/ns/model:tag` as it is.
    static func ollamaManifestPath(of name: String) -> String {
        let colon = name.lastIndex(of: ":")!
        let (path, tag) = (name[..<colon], name[name.index(after: colon)...])
        let parts = path.split(separator: "/")
        let full = parts.count == 3 ? parts : parts.count == 2 ? ["registry.ollama.ai"] + parts : ["registry.ollama.ai", "library"] + parts
        return full.joined(separator: "/") + "/" + tag
    }

    /// Ollama's form of the ChatML template.
    static let chatMLTemplate = """
        {{- range .Messages }}<|im_start|>{{ .Role }}
        {{ .Content }}<|im_end|>
        {{ end }}<|im_start|>assistant

        """

    /// Hardlinks (else copies) a stored blob into Ollama's `blobs/`; false when it is there already.
    private func linkBlob(_ file: ModelFile, into root: String) throws(StoreError) -> Bool {
        let target = root + "/blobs/sha256-" + file.sha256
        if FileManager.default.fileExists(atPath: target) { return false }
        do {
            try FileManager.default.createDirectory(atPath: root + "/blobs", withIntermediateDirectories: true)
            if link(file.path, target) != 0 { try FileManager.default.copyItem(atPath: file.path, toPath: target) }
        } catch {
            throw StoreError(.unwritable, "cannot place \(file.path) in \(root)/blobs: \(error.localizedDescription)")
        }
        return true
    }

    /// Writes `data` as a blob of Ollama's store; its SHA-256.
    private func writeBlob(_ data: Data, into root: String) throws(StoreError) -> String {
        let digest = SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
        let target = root + "/blobs/sha256-" + digest
        do {
            try FileManager.default.createDirectory(atPath: root + "/blobs", withIntermediateDirectories: true)
            if !FileManager.default.fileExists(atPath: target) { try data.write(to: URL(fileURLWithPath: target), options: .atomic) }
        } catch {
            throw StoreError(.unwritable, "cannot write \(target): \(error.localizedDescription)")
        }
        return digest
    }
}
