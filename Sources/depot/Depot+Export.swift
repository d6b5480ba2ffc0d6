import ArgumentParser
import ModelStore

extension Depot {
    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a model visible to another tool without copying it: Ollama, with --ollama.",
            discussion: "With --ollama the weights and projector are hardlinked into Ollama's store (DIR, default $OLLAMA_MODELS, else ~/.ollama/models) and a manifest is written under Ollama's name for the model (qwen2.5:7b under library/), so both tools run the same bytes. A ChatML chat template goes with it in Ollama's form; for other templates Ollama uses its default until a Modelfile gives one.")

        @Flag(help: "Export to Ollama's store.") var ollama = false
        @Argument(help: "Model name.") var name: String
        @Argument(help: "Ollama's store (default $OLLAMA_MODELS, else ~/.ollama/models).") var directory: String?
        @OptionGroup var options: StoreOptions

        func validate() throws {
            guard ollama else { throw ValidationError("say where to: --ollama (the only target so far)") }
        }

        func run() throws {
            let root = directory ?? ForeignCaches.ollamaRoot()
            try options.withStore { store throws(StoreError) in
                let export = try store.exportToOllama(name, root: root)
                options.emit(export) {
                    print("\(export.name) is in Ollama's store: \(export.manifest)")
                    print(export.linked.isEmpty ? "its files were there already" : "\(export.linked.count) file\(export.linked.count == 1 ? "" : "s") hardlinked (copied across file systems)")
                    if !export.template { print("no chat template in Ollama's form: Ollama uses its default until a Modelfile's TEMPLATE gives one") }
                }
            }
        }
    }
}
