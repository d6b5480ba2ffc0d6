import Foundation
import GGUF

/// `demo:tiny`: a model our GGUF writer makes on the spot, with random weights (it answers
/// gibberish, and its name in the file says so), so a newcomer can try activating, chatting and
/// deleting without a network.
public enum DemoModel {
    public static let name = "demo:tiny"

    /// Writes the demo model and imports it (replacing an earlier demo).
    public static func add(to store: ModelStore, app: String? = nil) throws(StoreError) -> ImportResult {
        var shape = TinyModels.LlamaShape()
        shape.chatTemplate = TinyModels.chatML
        shape.contextLength = 2048
        let file = store.temporaryDirectory + "/demo-\(UUID().uuidString).gguf"
        do {
            try TinyModels.llama(name: "depot demo (random weights)", seed: UInt64(Date().timeIntervalSince1970), shape: shape).write(to: file)
        } catch {
            throw StoreError(.unwritable, "cannot write the demo model to \(file): \(error)")
        }
        defer { try? FileManager.default.removeItem(atPath: file) }
        return try store.importModel(ImportRequest(weights: file, name: name, app: app, mode: .move, replace: true))
    }
}
