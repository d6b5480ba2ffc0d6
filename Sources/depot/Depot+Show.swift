import ArgumentParser
import ModelStore

extension Depot {
    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a model's GGUF facts, files, source and the apps using it.")

        @Argument(help: "Model name, e.g. qwen2.5-coder:1.5b-q4_k_m.") var name: String
        @OptionGroup var options: StoreOptions

        func run() throws {
            try options.withStore { store throws(StoreError) in
                let entry = try store.model(named: name)
                options.emit(entry) { Self.describe(entry) }
            }
        }

        static func describe(_ entry: ModelEntry) {
            var lines: [(String, String)] = [("name", entry.name), ("status", Output.status(of: entry))]
            if let detail = entry.statusDetail { lines.append(("problem", detail)) }
            if let facts = entry.facts {
                lines += [
                    ("architecture", facts.architecture ?? "unknown"),
                    ("parameters", "\(facts.parameterLabel) (\(facts.parameterCount))"),
                    ("quantization", facts.quantization ?? "unknown"),
                    ("context", facts.contextLength.map(String.init) ?? "unknown"),
                    ("embedding", facts.embeddingLength.map(String.init) ?? "unknown"),
                    ("layers", facts.blockCount.map(String.init) ?? "unknown"),
                    ("heads", (facts.headCount.map(String.init) ?? "?") + facts.headCountKV.map { " (kv \($0))" }.orEmpty),
                    ("tokenizer", (facts.tokenizerModel ?? "none") + (facts.hasChatTemplate ? ", chat template" : ", no chat template")),
                ]
            }
            lines += [("size", ByteCount.format(entry.sizeBytes)), ("license", entry.license ?? "unknown"),
                      ("source", entry.sourceURL ?? "unknown"), ("created", Output.age(entry.createdAt)),
                      ("last used", Output.age(entry.lastUsedAt))]
            if let notes = entry.compatibilityNotes { lines.append(("notes", notes)) }
            for (label, value) in lines {
                print((label + ":").padding(toLength: 14, withPad: " ", startingAt: 0) + value)
            }
            print("files:")
            for file in entry.files {
                let role = file.role == .shard ? "shard \(file.shardIndex)" : file.role.rawValue
                let trust = file.hashSource.isVerified ? "sha256 \(file.hashSource.rawValue)" : "UNVERIFIED: nothing published a hash; recorded on first download"
                print("  \(role)  \(ByteCount.format(file.size))  \(Output.shortDigest(file.sha256))  \(file.originalFilename)  (\(trust))")
                print("    \(file.path)")
            }
            print("apps:" + (entry.apps.isEmpty ? " none" : ""))
            for app in entry.apps {
                print("  \(app.app)\(app.pinned ? "  pinned" : "")  last used \(Output.age(app.lastUsedAt))")
            }
        }
    }
}

extension Optional<String> {
    var orEmpty: String { self ?? "" }
}
