import ArgumentParser
import ModelStore

extension Depot {
    struct Demo: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a tiny demo model, made on the spot with random weights, to try depot without a network.",
            discussion: "The model (demo:tiny, about 150 KB, a ChatML chat template) answers gibberish: it exists so that activating, chatting, swapping and deleting can be tried at once. Delete it with `depot delete demo:tiny`.")

        @OptionGroup var options: StoreOptions

        func run() throws {
            try options.withStore { store throws(StoreError) in
                let result = try DemoModel.add(to: store)
                options.emit(result) {
                    print("\(result.entry.name)  \(ByteCount.format(result.entry.sizeBytes))  random weights: it answers gibberish")
                    print("Try it: `depot serve`, open http://127.0.0.1:4302/, activate \(DemoModel.name) and chat; `depot delete \(DemoModel.name)` removes it.")
                }
            }
        }
    }
}
