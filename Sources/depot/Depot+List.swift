import ArgumentParser
import ModelStore

extension Depot {
    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the models in the store.")

        @OptionGroup var options: StoreOptions

        func run() throws {
            try options.withStore { store throws(StoreError) in
                let entries = try store.listModels()
                options.emit(entries) {
                    guard !entries.isEmpty else {
                        print("No models in \(store.root). Add one with `depot import FILE`.")
                        // Models this machine already has, in the other tools' caches.
                        for (tool, root, flag) in [("Ollama's store", ForeignCaches.ollamaRoot(), "--from-ollama"),
                                                   ("the Hugging Face cache", ForeignCaches.huggingFaceRoot(), "--from-hf")] {
                            let scan = try? flag == "--from-ollama" ? ForeignCaches.scanOllama(root) : ForeignCaches.scanHuggingFace(root)
                            guard let found = scan?.found, !found.isEmpty else { continue }
                            print("\(tool) (\(root)) has \(found.count) GGUF model\(found.count == 1 ? "" : "s") (\(found.prefix(3).map(\.name).joined(separator: ", "))\(found.count > 3 ? ", …" : "")): `depot import \(flag)` adopts them without copying.")
                        }
                        return
                    }
                    Output.table(["NAME", "SIZE", "QUANT", "PARAMS", "APPS", "LAST USED", "STATUS"], entries.map { entry in
                        [entry.name, ByteCount.format(entry.sizeBytes), entry.facts?.quantization ?? "-",
                         entry.facts?.parameterLabel ?? "-", entry.apps.isEmpty ? "-" : "\(entry.apps.count)",
                         Output.age(entry.lastUsedAt), Output.status(of: entry) + (entry.projector != nil ? " +projector" : "")]
                    })
                }
            }
        }
    }
}
