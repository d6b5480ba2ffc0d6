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
