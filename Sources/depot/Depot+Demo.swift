import ArgumentParser
import Foundation
import GGUF
import ModelStore

extension Depot {
    struct Demo: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a tiny demo model, made on the spot with random weights, to try depot without a network.",
            discussion: "The model (demo:tiny, about 100 KB, a ChatML chat template) answers gibberish: it exists so that activating, chatting, swapping and deleting can be tried at once. Delete it with `depot delete demo:tiny`.")

        static let name = "demo:tiny"

        @OptionGroup var options: StoreOptions

        func run() throws {
            var shape = TinyModels.LlamaShape()
            shape.chatTemplate = TinyModels.chatML
            shape.contextLength = 2048
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("depot-demo-\(UUID().uuidString).gguf").path
            do {
                try TinyModels.llama(name: "depot demo (random weights)", seed: UInt64(Date().timeIntervalSince1970), shape: shape).write(to: file)
            } catch {
                Output.error("cannot write the demo model to \(file): \(error)")
                throw ExitCode(1)
            }
            defer { try? FileManager.default.removeItem(atPath: file) }
            try options.withStore { store throws(StoreError) in
                let result = try store.importModel(ImportRequest(weights: file, name: Self.name, mode: .move, replace: true))
                options.emit(result) {
                    print("\(result.entry.name)  \(ByteCount.format(result.entry.sizeBytes))  random weights: it answers gibberish")
                    print("Try it: `depot serve`, open http://127.0.0.1:4302/, activate \(Self.name) and chat; `depot delete \(Self.name)` removes it.")
                }
            }
        }
    }
}
