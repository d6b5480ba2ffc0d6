import ArgumentParser
import ModelStore

extension Depot {
    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete a model; refused while another app uses it, unless forced.")

        @Argument(help: "Model name.") var name: String
        @Option(help: "The app asking; its own use does not block the deletion.") var app: String?
        @Flag(help: "Delete even though other apps use the model.") var force = false
        @OptionGroup var options: StoreOptions

        func run() throws {
            try options.withStore { store throws(StoreError) in
                let result = try store.deleteModel(named: name, app: app, force: force)
                options.emit(result) {
                    if !result.overriddenApps.isEmpty {
                        print("warning: \(result.overriddenApps.joined(separator: ", ")) still used \(name)")
                    }
                    print("deleted \(name), freed \(ByteCount.format(result.bytesFreed))")
                }
            }
        }
    }
}
