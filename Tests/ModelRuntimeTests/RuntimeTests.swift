import Foundation
import GGUF
import Testing
@testable import ModelRuntime

/// The runtime with real llama.cpp, loading tiny models our GGUF writer makes.
@Suite(.serialized) struct RuntimeTests {
    let directory = "/tmp/depot-runtime-\(getpid())-\(UUID().uuidString.prefix(8))"

    init() throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    func model(_ name: String, seed: UInt64) throws -> ModelFiles {
        let path = directory + "/\(name).gguf"
        try TinyModels.llama(name: name, seed: seed).write(to: path)
        return ModelFiles(name: name + ":tiny", weights: path, paramSize: 0.00004)
    }

    static var greedy: GenerationOptions {
        var options = GenerationOptions()
        options.temperature = 0
        options.maximumTokens = 8
        return options
    }

    @Test func swapsBetweenTwoModelsAndEachGeneratesItsOwnTokens() async throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let first = try model("first", seed: 1), second = try model("second", seed: 2)
        let runtime = ModelRuntime(engine: LlamaEngine(contextLength: 256), keepAlive: nil)
        let events = await runtime.events()
        let recorder = Task { () -> [RuntimeEvent] in
            var seen: [RuntimeEvent] = []
            for await event in events {
                seen.append(event)
                if case .modelChanged(second.name) = event { break }
            }
            return seen
        }
        let loaded = try await runtime.activate(first)
        #expect(loaded.previous == nil && loaded.active == first.name)
        let one = try await runtime.generate(prompt: "hello", options: Self.greedy)
        #expect(one.tokens.count == 8)
        #expect(try await runtime.generate(prompt: "hello", options: Self.greedy).tokens == one.tokens, "greedy is deterministic")

        let swapped = try await runtime.activate(second)
        #expect(swapped.previous == first.name && swapped.active == second.name)
        let two = try await runtime.generate(model: second.name, prompt: "hello", options: Self.greedy)
        #expect(two.tokens != one.tokens, "another model, other weights, other tokens")
        let wrong = await runtimeError { _ = try await runtime.generate(model: first.name, prompt: "hello") }
        #expect(wrong?.code == .notLoaded)

        let seen = await recorder.value
        let states = seen.compactMap { event -> RuntimeState? in if case .stateChanged(let status) = event { status.state } else { nil } }
        #expect(states.contains(.loading) && states.last == .ready)
        let loadingLoads = seen.compactMap { event -> Int? in
            if case .stateChanged(let status) = event, status.state == .loading { status.currentLoad } else { nil }
        }
        #expect(!loadingLoads.isEmpty && loadingLoads.allSatisfy { $0 == -1 }, "routers skip a loading device")
        #expect(await runtime.currentStatus.lastInferenceAt != nil)
    }

    /// The tiny model's vocabulary is one token a byte, so sampling makes multi-byte
    /// characters out of several tokens: each streamed piece holds whole characters, and the
    /// pieces joined are the answer, for the same seed.
    @Test func streamedPiecesAreTheAnswerAndNeverSplitACharacter() async throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let files = try model("stream", seed: 5)
        let runtime = ModelRuntime(engine: LlamaEngine(contextLength: 512), keepAlive: nil)
        _ = try await runtime.activate(files)
        var multiByte = 0
        for seed in UInt32(1)...6 {
            var options = GenerationOptions()
            options.seed = seed
            options.temperature = 1.5
            options.maximumTokens = 300
            let streamed = Pieces()
            let result = try await runtime.generate(prompt: "é", options: options) { piece in streamed.append(piece); return true }
            #expect(streamed.joined == result.text, "seed \(seed)")
            let whole = streamed.all.filter { piece in piece.unicodeScalars.contains { $0.value >= 0x80 && $0 != "\u{FFFD}" } }
            multiByte += whole.count
            // A character the answer has whole was never sent as replacement characters.
            #expect(streamed.all.joined().filter { $0 == "\u{FFFD}" }.count == result.text.filter { $0 == "\u{FFFD}" }.count)
        }
        #expect(multiByte > 0, "sampling made some multi-byte characters to stream")
    }

    final class Pieces: @unchecked Sendable {
        private var pieces: [String] = []
        private let lock = NSLock()
        func append(_ piece: String) { lock.withLock { pieces.append(piece) } }
        var all: [String] { lock.withLock { pieces } }
        var joined: String { all.joined() }
    }

    /// Chat by the model's own template (llama.cpp's known ones): ChatML renders as such a model
    /// expects; a template llama.cpp does not know is a clear error naming the model.
    @Test func chatMessagesGoThroughTheModelsTemplate() async throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var shape = TinyModels.LlamaShape()
        shape.chatTemplate = TinyModels.chatML
        let path = directory + "/chatml.gguf"
        try TinyModels.llama(seed: 4, shape: shape).write(to: path)
        let loaded = try LlamaEngine(contextLength: 256).load(ModelFiles(name: "chat:ml", weights: path))
        let prompt = try loaded.chatPrompt([ChatMessage(role: "system", content: "Be brief."), ChatMessage(role: "user", content: "Grüß dich")])
        #expect(prompt == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nGrüß dich<|im_end|>\n<|im_start|>assistant\n")

        let runtime = ModelRuntime(engine: LlamaEngine(contextLength: 256), keepAlive: nil)
        _ = try await runtime.activate(ModelFiles(name: "chat:ml", weights: path))
        let answer = try await runtime.chat(messages: [ChatMessage(role: "user", content: "hi")], options: Self.greedy)
        #expect(answer.promptTokens > 10 && answer.tokens.count > 0)
        let plain = try model("plain", seed: 1)
        _ = try await runtime.activate(plain)
        let refused = await runtimeError { _ = try await runtime.chat(messages: [ChatMessage(role: "user", content: "hi")]) }
        #expect(refused?.code == .noChatTemplate && refused?.message.hasPrefix(plain.name) == true, "\(String(describing: refused))")
    }

    /// A model whose GGUF names a pooling type makes one vector a text (unit length when
    /// asked, the same for the same text); a chat model makes none, and says so.
    @Test func embeddingsComeFromModelsThatPool() async throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var shape = TinyModels.LlamaShape()
        shape.poolingType = 1
        let path = directory + "/embed.gguf"
        try TinyModels.llama(seed: 8, shape: shape).write(to: path)
        let runtime = ModelRuntime(engine: LlamaEngine(contextLength: 64), keepAlive: nil)
        _ = try await runtime.activate(ModelFiles(name: "embed:tiny", weights: path))
        let vectors = try await runtime.embed(texts: ["hello", "hello", "a different text"], normalize: true)
        #expect(vectors.count == 3 && vectors.allSatisfy { $0.count == Int(shape.embedding) })
        #expect(vectors.allSatisfy { abs($0.reduce(0) { $0 + $1 * $1 } - 1) < 1e-4 }, "unit length")
        #expect(vectors[0] == vectors[1] && vectors[0] != vectors[2])
        let raw = try await runtime.embed(texts: ["hello"], normalize: false)
        #expect(ModelRuntime.unitLength(raw[0]).enumerated().allSatisfy { abs($0.element - vectors[0][$0.offset]) < 1e-5 })
        let long = String(repeating: "x", count: 200)
        #expect(await runtimeError { _ = try await runtime.embed(texts: [long], truncate: false, normalize: true) }?.code == .promptTooLong)
        #expect(try await runtime.embed(texts: [long], truncate: true, normalize: true).first?.count == Int(shape.embedding))

        let chat = try model("chatty", seed: 1)
        _ = try await runtime.activate(chat)
        let refused = await runtimeError { _ = try await runtime.embed(texts: ["hello"], normalize: true) }
        #expect(refused?.code == .noEmbeddings && refused?.message.contains(chat.name) == true, "\(String(describing: refused))")
    }

    @Test func aModelThatFailsToLoadLeavesThePreviousOneInPlace() async throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let good = try model("good", seed: 1)
        let broken = ModelFiles(name: "broken:x", weights: directory + "/broken.gguf")
        try Data("GGUF not really".utf8).write(to: URL(fileURLWithPath: broken.weights))
        let runtime = ModelRuntime(engine: LlamaEngine(contextLength: 256), keepAlive: nil)

        let nothingBefore = await runtimeError { _ = try await runtime.activate(broken) }
        #expect(nothingBefore?.code == .loadFailed)
        #expect(nothingBefore?.message.contains("broken:x") == true)
        #expect(await runtime.currentStatus.state == .failed)

        _ = try await runtime.activate(good)
        let failed = await runtimeError { _ = try await runtime.activate(broken) }
        #expect(failed?.code == .loadFailed)
        let status = await runtime.currentStatus
        #expect(status.state == .ready && status.activeModel == good.name, "the previous model is loaded again")
        #expect(status.error?.contains("broken:x") == true)
        #expect(try await runtime.generate(prompt: "hello", options: Self.greedy).tokens.count == 8)
    }

    @Test func aModelWithItsProjectorLoadsAndABrokenProjectorIsRefusedCleanly() async throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var files = try model("vision", seed: 1)
        files.projector = directory + "/mmproj.gguf"
        try TinyModels.projector().write(to: files.projector!)
        let runtime = ModelRuntime(engine: LlamaEngine(contextLength: 256), keepAlive: nil)
        #expect(try await runtime.activate(files).active == files.name)

        // Without these tensors llama.cpp would crash the process instead of failing.
        var broken = GGUFWriter()
        broken.set("general.architecture", .string("clip"))
        broken.set("clip.projector_type", .string("mlp"))
        try broken.addTensor(name: "mm.0.weight", dimensions: [4, 4], floats: Array(repeating: 0, count: 16))
        var withBroken = try model("other", seed: 2)
        withBroken.projector = directory + "/broken-mmproj.gguf"
        try broken.write(to: withBroken.projector!)
        let error = await runtimeError { _ = try await runtime.activate(withBroken) }
        #expect(error?.code == .loadFailed)
        #expect(error?.message.contains("lacks the tensors") == true)
        #expect(await runtime.activeModel == files.name)
    }

    @Test func refusesAModelLargerThanTheFreeMemory() async throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let files = try model("big", seed: 1)
        let runtime = ModelRuntime(engine: LlamaEngine(contextLength: 256), keepAlive: nil, availableMemory: { 1 << 20 })
        let error = await runtimeError { _ = try await runtime.activate(files) }
        #expect(error?.code == .insufficientMemory)
        #expect(error?.message.contains("MB") == true)
        #expect(await runtime.currentStatus.state == .idle, "nothing was unloaded or tried")
    }

    @Test func keepAliveUnloadsAnIdleModel() async throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let files = try model("idle", seed: 1)
        let runtime = ModelRuntime(engine: LlamaEngine(contextLength: 256), keepAlive: .milliseconds(300))
        _ = try await runtime.activate(files)
        _ = try await runtime.generate(prompt: "hi", options: Self.greedy)
        #expect(await runtime.activeModel == files.name)
        try await waitFor { await runtime.activeModel == nil }
        #expect(await runtime.currentStatus.state == .idle)

        await runtime.setKeepAlive(.zero)
        _ = try await runtime.activate(files)
        #expect(await runtime.activeModel == files.name, "zero keep-alive unloads after the first request, not before it")
        _ = try await runtime.generate(prompt: "hello", options: Self.greedy)
        try await waitFor { await runtime.activeModel == nil }
        await runtime.setKeepAlive(nil)
        _ = try await runtime.activate(files)
        try await Task.sleep(for: .milliseconds(500))
        #expect(await runtime.activeModel == files.name, "a negative keep-alive (nil) keeps it")
    }

    @Test func aSwapWaitsForTheRunningGenerationAndTheLatestQueuedSwapWins() async throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let first = try model("first", seed: 1), second = try model("second", seed: 2)
        let third = try model("third", seed: 3), fourth = try model("fourth", seed: 4)
        let runtime = ModelRuntime(engine: LlamaEngine(contextLength: 256), keepAlive: nil)
        _ = try await runtime.activate(first)
        var slow = GenerationOptions()
        slow.temperature = 0
        slow.maximumTokens = 100
        let reference = try await runtime.generate(prompt: "hello", options: slow)
        let generation = Task {
            try await runtime.generate(prompt: "hello", options: slow) { _ in
                usleep(30_000)
                return true
            }
        }
        try await waitFor { await runtime.currentStatus.activeGenerations == 1 }
        // The second swap starts and waits for the generation; the third and fourth queue behind it.
        let tickets = await runtime.latestTicket
        let toSecond = Task { try await runtime.activate(second) }
        try await waitFor { await runtime.currentStatus.state == .loading }
        let toThird = Task { try await runtime.activate(third) }
        try await waitFor { await runtime.latestTicket == tickets + 2 }
        let toFourth = Task { try await runtime.activate(fourth) }
        try await waitFor { await runtime.latestTicket == tickets + 3 }
        #expect(await runtime.currentStatus.activeGenerations == 1, "all three asked while the generation ran")
        let generated = try await generation.value
        #expect(generated.tokens == reference.tokens, "the generation ran to its end on its model before the swap")
        #expect(generated.tokens.count > 20)
        #expect(try await toSecond.value.active == second.name)
        let skipped = await runtimeError { _ = try await toThird.value }
        #expect(skipped?.code == .superseded, "a queued swap that a later one replaced never loads")
        #expect(try await toFourth.value.active == fourth.name)
        #expect(await runtime.activeModel == fourth.name)
    }

    func waitFor(_ condition: () async -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(20)
        while !(await condition()) {
            guard ContinuousClock.now < deadline else { throw RuntimeError(.notLoaded, "condition not met in 20 s") }
            try await Task.sleep(for: .milliseconds(10))
        }
    }
}

func runtimeError(_ body: () async throws -> Void) async -> RuntimeError? {
    do { try await body() } catch let error as RuntimeError { return error } catch { return nil }
    return nil
}
