import DepotTestSupport
import Foundation
import GGUF
import Testing

/// Moving in: `depot import --from-ollama` and `--from-hf` adopt the models of real-shaped
/// Ollama stores and Hugging Face caches (our writer's GGUF files under each tool's layout) by
/// hardlink, checking every hash the layouts put in file names, as a user with both tools
/// installed would run it; and a newcomer's first run, with the demo model.
@Suite struct MovingInTests {
    /// Writes `writer`'s file as a blob named by its SHA-256 (`prefix` + hex) in `directory`;
    /// the hex.
    @discardableResult
    static func blob(_ writer: GGUFWriter?, bytes: Data? = nil, in directory: String, prefix: String) throws -> String {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let staging = directory + "/staging"
        if let writer { try writer.write(to: staging) } else { try (bytes ?? Data()).write(to: URL(fileURLWithPath: staging)) }
        let hex = try sha256sum(staging)
        try FileManager.default.moveItem(atPath: staging, toPath: directory + "/" + prefix + hex)
        return hex
    }

    static func manifest(_ root: String, _ name: String, layers: [(String, String)]) throws {
        let path = root + "/manifests/" + name
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let items = layers.map { #"{"mediaType": "application/vnd.ollama.image.\#($0.0)", "digest": "sha256:\#($0.1)", "size": 1}"# }
        let text = #"{"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json", "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": "sha256:\#(String(repeating: "0", count: 64))", "size": 2}, "layers": [\#(items.joined(separator: ", "))]}"#
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }

    static func inode(_ path: String) -> UInt64 {
        var status = stat()
        return stat(path, &status) == 0 ? UInt64(status.st_ino) : 0
    }

    static func object(_ text: String) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
    }

    @Test func anOllamaStoreIsAdoptedByHardlinkUnderItsNamesAndItsLiesAreRefused() throws {
        let workspace = Workspace()
        defer { workspace.remove() }
        let ollama = workspace.path + "/ollama", blobs = ollama + "/blobs"
        let weights = try Self.blob(TinyModels.llama(seed: 31), in: blobs, prefix: "sha256-")
        let projector = try Self.blob(TinyModels.projector(), in: blobs, prefix: "sha256-")
        let template = try Self.blob(nil, bytes: Data("{{ .Prompt }}".utf8), in: blobs, prefix: "sha256-")
        let other = try Self.blob(TinyModels.llama(seed: 32), in: blobs, prefix: "sha256-")
        let third = try Self.blob(TinyModels.llama(seed: 33), in: blobs, prefix: "sha256-")
        try Self.manifest(ollama, "registry.ollama.ai/library/tiny/latest", layers: [("model", weights), ("projector", projector), ("template", template)])
        try Self.manifest(ollama, "registry.ollama.ai/myns/other/q4", layers: [("model", other)])
        try Self.manifest(ollama, "hf.co/owner/repo/Q8_0", layers: [("model", third)])
        // What cannot be adopted: a LoRA adapter, a model layer that is no GGUF, a blob whose
        // bytes are not the hash it is named by, and a digest that walks out of blobs/.
        try Self.manifest(ollama, "registry.ollama.ai/library/adapted/latest", layers: [("model", other), ("adapter", template)])
        try Self.manifest(ollama, "registry.ollama.ai/library/notgguf/latest", layers: [("model", template)])
        let lie = String(repeating: "ab", count: 32)
        try TinyModels.llama(seed: 34).write(to: blobs + "/sha256-" + lie)
        try Self.manifest(ollama, "registry.ollama.ai/library/tampered/latest", layers: [("model", lie)])
        try Self.manifest(ollama, "registry.ollama.ai/library/escape/latest", layers: [("model", "../../../etc/passwd")])

        // An empty store points at them.
        let empty = try workspace.depot.run(["list"], environment: ["OLLAMA_MODELS": ollama, "HF_HUB_CACHE": workspace.path + "/none"])
        #expect(empty.stdout.contains("has 4 GGUF models") && empty.stdout.contains("depot import --from-ollama"), "\(empty.stdout)")

        let dry = try workspace.depot.run(["import", "--from-ollama", ollama, "--dry-run", "--json"])
        #expect(dry.status == 0, "\(dry.stderr)")
        let listed = (Self.object(dry.stdout)["adopted"] as? [[String: Any]] ?? []).compactMap { ($0["model"] as? [String: Any])?["name"] as? String }
        #expect(Set(listed) == ["tiny:latest", "myns/other:q4", "hf.co/owner/repo:Q8_0", "tampered:latest"], "\(listed)")
        #expect(try workspace.depot.run(["list", "--json"]).stdout.contains("tiny") == false, "a dry run changes nothing")

        // The default location is $OLLAMA_MODELS.
        let adopted = try workspace.depot.run(["import", "--from-ollama", "--json"], environment: ["OLLAMA_MODELS": ollama])
        #expect(adopted.status == 0, "\(adopted.stderr)")
        let answer = Self.object(adopted.stdout)
        let names = (answer["adopted"] as? [[String: Any]] ?? []).compactMap { ($0["model"] as? [String: Any])?["name"] as? String }
        #expect(Set(names) == ["tiny:latest", "myns/other:q4", "hf.co/owner/repo:Q8_0"], "\(names)")
        let skipped = (answer["skipped"] as? [[String: Any]] ?? []).map { "\($0["listing"] ?? ""): \($0["reason"] ?? "")" }
        for (manifest, reason) in [("adapted/latest", "adapter"), ("notgguf/latest", "not a GGUF"), ("tampered/latest", "named for SHA-256"),
                                   ("escape/latest", "is not sha256:<64 hex digits>")] {
            #expect(skipped.contains { $0.contains(manifest) && $0.contains(reason) }, "\(manifest): \(skipped)")
        }

        // No byte copied: the store's blobs are Ollama's files.
        let store = workspace.path + "/store/blobs/sha256/"
        #expect(Self.inode(store + weights) == Self.inode(blobs + "/sha256-" + weights) && Self.inode(store + weights) != 0)
        #expect(Self.inode(store + projector) == Self.inode(blobs + "/sha256-" + projector))
        #expect(!FileManager.default.fileExists(atPath: store + lie), "the tampered blob is not in the store")
        let shown = Self.object(try workspace.depot.run(["show", "tiny:latest", "--json"]).stdout)
        let roles = (shown["files"] as? [[String: Any]] ?? []).compactMap { $0["role"] as? String }
        #expect(roles.sorted() == ["projector", "weights"], "\(shown)")

        // Again: nothing changes.
        let again = Self.object(try workspace.depot.run(["import", "--from-ollama", ollama, "--json"]).stdout)
        let created = (again["adopted"] as? [[String: Any]] ?? []).compactMap { ($0["result"] as? [String: Any])?["created"] as? Bool }
        #expect(created == [false, false, false], "\(again)")
        let missing = try workspace.depot.run(["import", "--from-ollama", workspace.path + "/nothing"])
        #expect(missing.status == 3 && missing.stderr.contains("not an Ollama store"), "\(missing.stderr)")
    }

    @Test func aHuggingFaceCacheIsAdoptedByHardlinkAsOllamaNamesItsModels() throws {
        let workspace = Workspace()
        defer { workspace.remove() }
        let hub = workspace.path + "/hub", repository = hub + "/models--owner--tiny-GGUF", revision = "0123456789abcdef0123456789abcdef01234567"
        let weights = try Self.blob(TinyModels.llama(seed: 41), in: repository + "/blobs", prefix: "")
        let projector = try Self.blob(TinyModels.projector(), in: repository + "/blobs", prefix: "")
        let readme = repository + "/blobs/" + String(repeating: "1", count: 40)  // a git blob: named by SHA-1, no claim
        try Data("# tiny".utf8).write(to: URL(fileURLWithPath: readme))
        let snapshot = repository + "/snapshots/" + revision
        try FileManager.default.createDirectory(atPath: snapshot, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: snapshot + "/tiny-F32.gguf", withDestinationPath: "../../blobs/" + weights)
        try FileManager.default.createSymbolicLink(atPath: snapshot + "/mmproj-tiny-f16.gguf", withDestinationPath: "../../blobs/" + projector)
        try FileManager.default.createSymbolicLink(atPath: snapshot + "/README.md", withDestinationPath: "../../blobs/" + String(repeating: "1", count: 40))
        try FileManager.default.createDirectory(atPath: repository + "/refs", withIntermediateDirectories: true)
        try revision.write(toFile: repository + "/refs/main", atomically: true, encoding: .utf8)
        // A repository of safetensors only.
        let other = hub + "/models--owner--plain", otherSnapshot = other + "/snapshots/" + revision
        let tensors = try Self.blob(nil, bytes: Data(repeating: 7, count: 64), in: other + "/blobs", prefix: "")
        try FileManager.default.createDirectory(atPath: otherSnapshot, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: otherSnapshot + "/model.safetensors", withDestinationPath: "../../blobs/" + tensors)

        let adopted = try workspace.depot.run(["import", "--from-hf", "--json"], environment: ["HF_HUB_CACHE": hub])
        #expect(adopted.status == 0, "\(adopted.stderr)")
        let answer = Self.object(adopted.stdout)
        let models = (answer["adopted"] as? [[String: Any]] ?? []).compactMap { $0["model"] as? [String: Any] }
        #expect(models.map { $0["name"] as? String } == ["hf.co/owner/tiny-GGUF:F32"] && models.first?["projector"] != nil, "\(answer)")
        let skipped = answer["skipped"] as? [[String: Any]] ?? []
        #expect(skipped.contains { ($0["listing"] as? String)?.hasSuffix("models--owner--plain") == true && ($0["reason"] as? String)?.contains("no GGUF") == true },
                "\(skipped)")
        let store = workspace.path + "/store/blobs/sha256/"
        #expect(Self.inode(store + weights) == Self.inode(repository + "/blobs/" + weights) && Self.inode(store + weights) != 0)
        #expect(Self.inode(store + projector) == Self.inode(repository + "/blobs/" + projector))

        // A blob changed behind the cache's back is caught by its name, and nothing is taken.
        let fresh = Workspace()
        defer { fresh.remove() }
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: repository + "/blobs/" + weights))
        try handle.seek(toOffset: 4096)
        try handle.write(contentsOf: Data([0x55]))
        try handle.close()
        let tampered = Self.object(try fresh.depot.run(["import", "--from-hf", hub, "--json"]).stdout)
        #expect((tampered["adopted"] as? [Any])?.isEmpty == true, "\(tampered)")
        #expect((tampered["skipped"] as? [[String: Any]] ?? []).contains { ($0["reason"] as? String)?.contains("named for SHA-256") == true })
        #expect(try fresh.depot.run(["list", "--json"]).stdout.contains("tiny") == false)
    }

    @Test func theDemoModelChatsAndGoesWithoutANetwork() throws {
        let workspace = Workspace()
        defer { workspace.remove() }
        let demo = try workspace.depot.run(["demo", "--json"])
        #expect(demo.status == 0 && demo.stdout.contains("\"demo:tiny\""), "\(demo.stderr)")
        let text = try workspace.depot.run(["demo"])
        #expect(text.stdout.contains("random weights"), "it says what it is: \(text.stdout)")
        let agent = try AgentProcess(workspace, arguments: ["--catalog", "http://127.0.0.1:9/none.json"])
        defer { agent.stop() }
        let chat = try agent.post("/api/chat", #"{"model": "demo:tiny", "messages": [{"role": "user", "content": "hi"}], "stream": false, "options": {"num_predict": 8}}"#)
        #expect(chat.status == 200 && (chat.object["message"] as? [String: Any])?["role"] as? String == "assistant", "\(chat.body)")
        let deleted = try agent.request("DELETE", "/api/delete", #"{"model": "demo:tiny"}"#)
        #expect(deleted.status == 200, "\(deleted.body)")
        #expect(try workspace.depot.run(["list", "--json"]).stdout.contains("demo:tiny") == false)
    }

    /// `hf.co/<owner>/<repo>:<QUANT>`, as Ollama users type it, from a server that answers as the
    /// Hub does: the file of that quantization (Q4_K_M without one) with the repository's
    /// projector, checked against the Hub's SHA-256s; a quantization it does not have is an
    /// error listing those it has. The same name through the agent's /api/pull.
    @Test func hfCoNamesPullTheQuantizationAsOllamaDoes() throws {
        let workspace = Workspace()
        defer { workspace.remove() }
        let served = workspace.path + "/served", repository = served + "/hub/owner/tiny-GGUF"
        try FileManager.default.createDirectory(atPath: repository, withIntermediateDirectories: true)
        try TinyModels.llama(seed: 51).write(to: repository + "/Tiny-1M-Q8_0.gguf")
        try TinyModels.llama(seed: 52).write(to: repository + "/Tiny-1M-Q4_K_M.gguf")
        try TinyModels.projector().write(to: repository + "/mmproj-Tiny-1M-f16.gguf")
        try "# Tiny".write(toFile: repository + "/README.md", atomically: true, encoding: .utf8)
        let server = try FaultServer(root: served)
        defer { server.stop() }
        let hub = ["HF_ENDPOINT": "http://127.0.0.1:\(server.port)/hf"]

        let q8 = try workspace.depot.run(["pull", "hf.co/owner/tiny-GGUF:q8_0", "--json"], environment: hub)
        #expect(q8.status == 0, "\(q8.stderr)")
        let entry = Self.object(String(q8.stdout.split(separator: "\n").last ?? ""))["entry"] as? [String: Any] ?? [:]
        #expect(entry["name"] as? String == "hf.co/owner/tiny-GGUF:q8_0", "\(entry)")
        let files = entry["files"] as? [[String: Any]] ?? []
        let weights = files.first { $0["role"] as? String == "weights" }
        #expect(weights?["sha256"] as? String == (try sha256sum(repository + "/Tiny-1M-Q8_0.gguf")) && weights?["hashSource"] as? String == "server",
                "\(files)")
        #expect(files.first { $0["role"] as? String == "projector" }?["sha256"] as? String == (try sha256sum(repository + "/mmproj-Tiny-1M-f16.gguf")))

        let plain = try workspace.depot.run(["pull", "hf.co/owner/tiny-GGUF", "--json"], environment: hub)
        #expect(plain.status == 0 && plain.stdout.contains("hf.co/owner/tiny-GGUF:Q4_K_M"), "Q4_K_M by default: \(plain.stderr)")
        let missing = try workspace.depot.run(["pull", "hf.co/owner/tiny-GGUF:Q5_K_S"], environment: hub)
        #expect(missing.status == 3 && missing.stderr.contains("Q4_K_M, Q8_0"), "\(missing.status) \(missing.stderr)")
        let nowhere = try workspace.depot.run(["pull", "hf.co/owner/nothing:Q8_0"], environment: hub)
        #expect(nowhere.status == 3 && nowhere.stderr.contains("404"), "\(nowhere.status) \(nowhere.stderr)")

        let other = Workspace()
        defer { other.remove() }
        let agent = try AgentProcess(other, arguments: ["--catalog", "http://127.0.0.1:9/none.json"], environment: hub)
        defer { agent.stop() }
        let pulled = try agent.post("/api/pull", #"{"model": "hf.co/owner/tiny-GGUF:Q8_0", "stream": false}"#)
        #expect(pulled.status == 200 && pulled.object["status"] as? String == "success", "\(pulled.body)")
        let tags = (try agent.get("/api/tags").object["models"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
        #expect(tags == ["hf.co/owner/tiny-GGUF:Q8_0"], "\(tags)")
    }

    /// The other way: `depot export --ollama` puts an entry in Ollama's store by hardlink, with a
    /// manifest whose every digest is its blob's SHA-256, that reads back as the same model.
    @Test func anEntryIsExportedToOllamasStoreByHardlinkAndReadsBack() throws {
        let workspace = Workspace()
        defer { workspace.remove() }
        var shape = TinyModels.LlamaShape()
        shape.chatTemplate = TinyModels.chatML
        try TinyModels.llama(seed: 61, shape: shape).write(to: workspace.path + "/chat.gguf")
        try TinyModels.projector().write(to: workspace.path + "/mmproj.gguf")
        #expect(try workspace.depot.run(["import", workspace.path + "/chat.gguf", "--projector", workspace.path + "/mmproj.gguf",
                                         "--name", "myns/tiny:chat"]).status == 0)
        let ollama = workspace.path + "/ollama"
        let exported = try workspace.depot.run(["export", "--ollama", "myns/tiny:chat", "--json"], environment: ["OLLAMA_MODELS": ollama])
        #expect(exported.status == 0, "\(exported.stderr)")
        let manifestPath = ollama + "/manifests/registry.ollama.ai/myns/tiny/chat"
        let manifest = Self.object(try String(contentsOfFile: manifestPath, encoding: .utf8))
        let layers = manifest["layers"] as? [[String: Any]] ?? []
        #expect(layers.compactMap { $0["mediaType"] as? String } == ["application/vnd.ollama.image.model", "application/vnd.ollama.image.projector",
                                                                       "application/vnd.ollama.image.template"], "\(manifest)")
        for digest in layers.compactMap({ $0["digest"] as? String }) + [(manifest["config"] as? [String: Any])?["digest"] as? String ?? ""] {
            let blob = ollama + "/blobs/" + digest.replacingOccurrences(of: ":", with: "-")
            #expect(try sha256sum(blob) == String(digest.dropFirst(7)), "\(digest) names its blob's bytes")
        }
        let weights = try sha256sum(workspace.path + "/chat.gguf")
        #expect(Self.inode(ollama + "/blobs/sha256-" + weights) == Self.inode(workspace.path + "/store/blobs/sha256/" + weights))
        #expect(try workspace.depot.run(["export", "--ollama", "myns/tiny:chat", ollama]).stdout.contains("there already"))

        // Another store adopts it back: the same name, the same bytes, no copy.
        let other = Workspace()
        defer { other.remove() }
        let back = Self.object(try other.depot.run(["import", "--from-ollama", ollama, "--json"]).stdout)
        let names = (back["adopted"] as? [[String: Any]] ?? []).compactMap { ($0["model"] as? [String: Any])?["name"] as? String }
        #expect(names == ["myns/tiny:chat"], "\(back)")
        #expect(Self.inode(other.path + "/store/blobs/sha256/" + weights) == Self.inode(workspace.path + "/store/blobs/sha256/" + weights))
        #expect(try workspace.depot.run(["export", "--ollama", "nope:x", ollama]).status == 3)
    }
}
