import ArgumentParser
import ModelStore

extension Depot {
    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Import a GGUF file (and its projector) into the store.",
            discussion: "The file is hashed and hardlinked into the store when on the same file system, else copied. The same bytes are stored once, whatever their names.")

        @Argument(help: "Path of the GGUF weights file.") var file: String
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
        }

        func run() throws {
            let request = ImportRequest(weights: file, projector: projector, name: name, app: app, pin: pin,
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
    }
}
