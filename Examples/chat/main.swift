import ArgumentParser
import Foundation
import ModelRuntime
import ModelStore
import ModelTransfer

/// A small chat-style app that needs one model and its projector. It asks Depot for them
/// (the shared store when it can, its own store otherwise), shows the download, loads the
/// model in llama.cpp and answers one prompt.
@main
struct ChatExample: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "depot-chat-example",
                                                    abstract: "Answer one prompt with a model Depot provides.")

    @Option(help: "URL of the GGUF weights.") var model: String
    @Option(help: "URL of the multimodal projector.") var projector: String?
    @Option(help: "Expected SHA-256 of the weights.") var sha256: String?
    @Option(help: "Expected SHA-256 of the projector.") var projectorSha256: String?
    @Option(help: "Name of the model in the store.") var name = "example:chat"
    @Option(help: "The prompt to answer.") var prompt = "hello"
    @Option(help: "Shared store (default: Depot's per-user store).") var store: String?
    @Option(help: "Agent daemon to hand downloads to.") var agent = "http://127.0.0.1:4302"
    @Option(help: "This app's own store, used when the shared one is not available.") var appDirectory: String?

    func run() async throws {
        // 1. Ask for a manager: shared (through the daemon if it runs) or this app's own.
        let manager = try await AutomaticModelManager.automatic(
            appID: "com.example.chat", sharedRoot: store ?? StoreLocation.defaultRoot(), agentURL: agent, appDirectory: appDirectory)
        print("manager: \(manager.choice.rawValue): \(manager.reason)")

        // 2. Make sure the model and its projector are there, showing progress.
        let download = manager.ensure(PullRequest(
            source: model, projector: projector, name: name, app: "com.example.chat",
            sha256: try sha256.map { try ExpectedHash(sha256: $0, source: .user) },
            projectorSHA256: try projectorSha256.map { try ExpectedHash(sha256: $0, source: .user) }))
        let progress = Task {
            var lastPercent = -1
            for await snapshot in download.updates {
                if let note = snapshot.message, snapshot.stage != .failed { print("note: \(note)") }
                let percent = snapshot.totalBytes == 0 ? 0 : Int(snapshot.completedBytes * 100 / snapshot.totalBytes)
                if snapshot.stage == .downloading && percent / 10 != lastPercent / 10 {
                    print("downloading \(percent)%")
                    lastPercent = percent
                }
            }
        }
        let entry = try await download.result().entry
        await progress.value
        print("ready: \(entry.name) (\(entry.isVerified ? "verified" : "unverified"), \(entry.sizeBytes) bytes)")

        // 3. Load it in llama.cpp and answer the prompt.
        let runtime = ModelRuntime(engine: LlamaEngine(contextLength: 256), keepAlive: nil)
        _ = try await runtime.activate(ModelFiles(name: entry.name, weights: entry.weights!.path, projector: entry.projector?.path))
        var options = GenerationOptions()
        options.temperature = 0
        options.maximumTokens = 16
        let answer = try await runtime.generate(prompt: prompt, options: options)
        print("answer: \(answer.tokens.count) tokens: \(answer.text.debugDescription)")
        await manager.shutdown()
    }
}
