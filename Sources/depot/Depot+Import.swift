import ArgumentParser
import ModelStore

extension Depot {
    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Import a GGUF file (and its projector) into the store, or adopt the models of an Ollama store or a Hugging Face cache.",
            discussion: """
                The file is hashed and hardlinked into the store when on the same file system, else copied. The same bytes are stored once, whatever their names.

                --from-ollama [DIR] (default $OLLAMA_MODELS, else ~/.ollama/models) and --from-hf [DIR] (default $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub) adopt every GGUF model found there under Ollama's names (qwen2.5:7b; hf.co/owner/repo:Q4_K_M), with its projector, by hardlink: no byte is copied on the same file system. Each file is hashed, and one whose bytes are not the SHA-256 its cache names it by is refused. What cannot be adopted is listed with the reason; adopting again changes nothing. --dry-run lists without adopting.
                """)

        @Argument(help: "Path of the GGUF weights file; with --from-ollama or --from-hf, the cache directory (optional).") var file: String?
        @Flag(help: "Adopt the models of an Ollama store.") var fromOllama = false
        @Flag(name: .customLong("from-hf"), help: "Adopt the GGUF models of a Hugging Face hub cache.") var fromHuggingFace = false
        @Flag(help: "With --from-ollama or --from-hf: list what would be adopted, change nothing.") var dryRun = false
        @Option(help: "Path of the multimodal projector (mmproj) that belongs to these weights.") var projector: String?
        @Option(help: "Entry name, family:tag (default: from the file name and quantization).") var name: String?
        @Option(help: "App that uses this model from now on, e.g. com.example.chat.") var app: String?
        @Flag(help: "Pin the model for --app so pruning never removes it.") var pin = false
        @Flag(help: "Remove the original file once imported.") var move = false
        @Flag(help: "Always copy, never hardlink, so later edits to the original cannot reach the store.") var copy = false
        @Flag(help: "Replace an existing entry of the same name that holds other files.") var force = false
        @OptionGroup var options: StoreOptions

        func validate() throws {
            if move && copy { throw ValidationError("--move and --copy cannot be combined") }
            if pin && app == nil { throw ValidationError("--pin needs --app: a pin belongs to an app") }
            if fromOllama && fromHuggingFace { throw ValidationError("adopt from one cache at a time: --from-ollama or --from-hf") }
            if fromOllama || fromHuggingFace {
                if projector != nil || name != nil || move || copy || force || pin {
                    throw ValidationError("--from-ollama and --from-hf take names and projectors from the cache, and always hardlink: leave out --projector, --name, --move, --copy, --force and --pin")
                }
            } else {
                if dryRun { throw ValidationError("--dry-run goes with --from-ollama or --from-hf") }
                if file == nil { throw ValidationError("give the GGUF file to import, or --from-ollama / --from-hf") }
            }
        }

        func run() throws {
            if fromOllama || fromHuggingFace { return try adoptCache() }
            let request = ImportRequest(weights: file ?? "", projector: projector, name: name, app: app, pin: pin,
                                        mode: move ? .move : copy ? .copy : .link, replace: force)
            try options.withStore { store throws(StoreError) in
                let result = try store.importModel(request)
                options.emit(result) {
                    for file in result.files {
                        let how = file.alreadyStored ? "already stored" : file.method.rawValue
                        print("\(file.role.rawValue)  \(ByteCount.format(file.size))  \(Output.shortDigest(file.sha256))  \(how)")
                    }
                    print(result.created ? "imported \(result.entry.name)" : "\(result.entry.name) was already imported with these files")
                }
            }
        }

        /// What adopting a cache did, per model.
        struct Adoption: Encodable {
            var root: String
            var adopted: [Adopted]
            var skipped: [SkippedListing]
            var dryRun: Bool

            struct Adopted: Encodable {
                var model: FoundModel
                /// Nil in a dry run.
                var result: ImportResult?
            }
        }

        private func adoptCache() throws {
            let root = file ?? (fromOllama ? ForeignCaches.ollamaRoot() : ForeignCaches.huggingFaceRoot())
            try options.withStore { store throws(StoreError) in
                let scan = try fromOllama ? ForeignCaches.scanOllama(root) : ForeignCaches.scanHuggingFace(root)
                var adoption = Adoption(root: root, adopted: [], skipped: scan.skipped, dryRun: dryRun)
                for model in scan.found {
                    if dryRun {
                        adoption.adopted.append(.init(model: model, result: nil))
                        continue
                    }
                    do throws(StoreError) {
                        adoption.adopted.append(.init(model: model, result: try store.adopt(model, app: app)))
                    } catch {
                        adoption.skipped.append(SkippedListing(listing: model.listing, reason: error.message))
                    }
                }
                options.emit(adoption) {
                    for item in adoption.adopted {
                        let how = item.result.map { result in
                            result.created ? "adopted (" + Set(result.files.map { $0.alreadyStored ? "already stored" : $0.method.rawValue }).sorted().joined(separator: ", ") + ")"
                                : "already adopted"
                        } ?? "would adopt"
                        print("\(item.model.name)  \(ByteCount.format(item.model.size))  \(how)\(item.model.projector != nil ? ", with its projector" : "")")
                    }
                    for skipped in adoption.skipped { print("skipped \(skipped.listing): \(skipped.reason)") }
                    if adoption.adopted.isEmpty && adoption.skipped.isEmpty { print("No models found in \(root)") }
                }
            }
        }
    }
}
