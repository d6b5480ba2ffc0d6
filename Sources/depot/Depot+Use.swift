import ArgumentParser
import ModelStore

extension Depot {
    struct Use: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Record that an app uses a model, so no other app deletes it silently.")

        @Argument(help: "Model name.") var name: String
        @Option(help: "The app's id, e.g. com.example.chat.") var app: String
        @Flag(inversion: .prefixedNo, help: "Pin (or unpin) the model for this app; pinned models are never pruned.")
        var pin: Bool?
        @OptionGroup var options: StoreOptions

        func run() throws {
            try options.withStore { store throws(StoreError) in
                let entry = try store.useModel(named: name, app: app, pin: pin)
                options.emit(entry) {
                    let pinned = entry.apps.first { $0.app == app }?.pinned == true
                    print("\(app) uses \(name)\(pinned ? " (pinned)" : "")")
                }
            }
        }
    }

    struct Release: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Record that an app no longer uses a model.")

        @Argument(help: "Model name.") var name: String
        @Option(help: "The app's id.") var app: String
        @OptionGroup var options: StoreOptions

        struct Outcome: Codable {
            var name: String
            var app: String
            var released: Bool
        }

        func run() throws {
            try options.withStore { store throws(StoreError) in
                let released = try store.releaseModel(named: name, app: app)
                options.emit(Outcome(name: name, app: app, released: released)) {
                    print(released ? "\(app) released \(name)" : "\(app) was not using \(name); nothing to release")
                }
            }
        }
    }
}
