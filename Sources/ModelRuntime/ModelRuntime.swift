import Foundation

/// Where the runtime is. `loading` is EdgeCoder's `currentLoad = -1`: routers skip the device.
public enum RuntimeState: String, Sendable, Codable {
    case idle, loading, ready, failed
}

/// What the runtime reports.
public struct RuntimeStatus: Sendable, Codable, Equatable {
    public var state: RuntimeState
    /// The model in memory (while loading: the one being replaced, if it is still there).
    public var activeModel: String?
    public var paramSize: Double?
    /// The model being loaded.
    public var loadingModel: String?
    /// Why the last activation failed.
    public var error: String?
    public var lastInferenceAt: Date?
    public var loadedAt: Date?
    /// Requests generating right now.
    public var activeGenerations: Int

    /// EdgeCoder's load figure: -1 while loading, else the running generations.
    public var currentLoad: Int { state == .loading ? -1 : activeGenerations }
}

/// What changed, for the agent's heartbeats, LAN announcements and event streams.
public enum RuntimeEvent: Sendable, Equatable {
    case stateChanged(RuntimeStatus)
    /// The model in memory changed (nil: none is loaded).
    case modelChanged(String?)
}

/// The outcome of an activation.
public struct SwapResult: Sendable, Equatable {
    public var previous: String?
    public var active: String
    public var loadDuration: Duration
}

/// Keeps one model in memory and swaps it on request. A swap waits for running generations,
/// frees the old model before loading the new one, and falls back to the previous model if
/// the new one fails. Swaps queue; when several wait, only the latest runs (the others fail
/// with `superseded`).
public actor ModelRuntime {
    /// How long a model stays loaded after its last use: nil keeps it forever, zero unloads
    /// after each request (Ollama's keep_alive).
    public var keepAlive: Duration?
    private let engine: any InferenceEngine
    private let memory: @Sendable () -> UInt64
    private var loaded: (files: ModelFiles, model: any LoadedModel)?
    private var status = RuntimeStatus(state: .idle, activeGenerations: 0)
    /// Counts swap requests; a queued swap runs only if it is still the latest.
    private(set) var latestTicket = 0
    private var swapChain: Task<Void, Never>?
    private var generationsDone: [CheckedContinuation<Void, Never>] = []
    private var unloadTimer: Task<Void, Never>?
    private var observers: [UUID: AsyncStream<RuntimeEvent>.Continuation] = [:]
    /// llama.cpp blocks; its calls run here, one at a time, off Swift's cooperative threads.
    private let queue = DispatchQueue(label: "depot.runtime")

    public init(engine: any InferenceEngine, keepAlive: Duration? = .seconds(300),
                availableMemory: @escaping @Sendable () -> UInt64 = SystemMemory.availableBytes) {
        self.engine = engine
        self.keepAlive = keepAlive
        memory = availableMemory
    }

    public var currentStatus: RuntimeStatus { status }
    public var activeModel: String? { loaded?.files.name }

    /// Events from now on.
    public func events() -> AsyncStream<RuntimeEvent> {
        let (stream, continuation) = AsyncStream<RuntimeEvent>.makeStream()
        let id = UUID()
        observers[id] = continuation
        continuation.onTermination = { [weak self] _ in Task { await self?.removeObserver(id) } }
        return stream
    }

    private func removeObserver(_ id: UUID) { observers[id] = nil }

    public func setKeepAlive(_ duration: Duration?) {
        keepAlive = duration
        scheduleUnload()
    }

    /// Loads `files`, replacing the model in memory. Returns once it is ready.
    public func activate(_ files: ModelFiles) async throws(RuntimeError) -> SwapResult {
        latestTicket += 1
        let ticket = latestTicket
        let previousSwap = swapChain
        let swap = Task { () -> Result<SwapResult, RuntimeError> in
            await previousSwap?.value
            return await self.swap(to: files, ticket: ticket)
        }
        swapChain = Task { _ = await swap.value }
        return try await swap.value.get()
    }

    private func swap(to files: ModelFiles, ticket: Int) async -> Result<SwapResult, RuntimeError> {
        guard ticket == latestTicket else {
            return .failure(RuntimeError(.superseded, "a later request to load another model replaced the request for \(files.name)"))
        }
        if let loaded, loaded.files == files, status.state == .ready {
            scheduleUnload()
            return .success(SwapResult(previous: files.name, active: files.name, loadDuration: .zero))
        }
        let previous = loaded?.files
        let needed = files.requiredMemoryBytes ?? Self.estimatedMemory(files)
        let available = memory() + (loaded.map { Self.estimatedMemory($0.files) } ?? 0)
        guard needed <= available else {
            let message = "\(files.name) needs about \(needed >> 20) MB of memory and only \(available >> 20) MB is free; free memory or choose a smaller model"
            return .failure(RuntimeError(.insufficientMemory, message))
        }
        update { $0.state = .loading; $0.loadingModel = files.name; $0.error = nil }
        while status.activeGenerations > 0 { await withCheckedContinuation { generationsDone.append($0) } }
        unloadTimer?.cancel()
        // One model in memory: the old one goes before the new one loads.
        loaded = nil
        let started = ContinuousClock.now
        switch await load(files) {
        case .success(let model):
            loaded = (files, model)
            let duration = ContinuousClock.now - started
            update { $0 = RuntimeStatus(state: .ready, activeModel: files.name, paramSize: files.paramSize, lastInferenceAt: $0.lastInferenceAt,
                                        loadedAt: Date(), activeGenerations: 0) }
            broadcast(.modelChanged(files.name))
            // With a zero keep-alive the model goes after its first request, not before it.
            if keepAlive != .zero { scheduleUnload() }
            return .success(SwapResult(previous: previous?.name, active: files.name, loadDuration: duration))
        case .failure(let error):
            // Stay usable: put the previous model back if there was one.
            if let previous, case .success(let model) = await load(previous) {
                loaded = (previous, model)
                update { $0 = RuntimeStatus(state: .ready, activeModel: previous.name, paramSize: previous.paramSize,
                                            error: "\(files.name) failed to load, \(previous.name) is back: \(error.message)",
                                            lastInferenceAt: $0.lastInferenceAt, loadedAt: Date(), activeGenerations: 0) }
            } else {
                update { $0 = RuntimeStatus(state: .failed, error: error.message, lastInferenceAt: $0.lastInferenceAt, activeGenerations: 0) }
                if previous != nil { broadcast(.modelChanged(nil)) }
            }
            return .failure(error)
        }
    }

    private func load(_ files: ModelFiles) async -> Result<any LoadedModel, RuntimeError> {
        let engine = self.engine
        return await withCheckedContinuation { continuation in
            queue.async {
                do throws(RuntimeError) { continuation.resume(returning: .success(try engine.load(files))) } catch {
                    continuation.resume(returning: .failure(error))
                }
            }
        }
    }

    /// Frees the model in memory.
    public func unload() async {
        while status.activeGenerations > 0 { await withCheckedContinuation { generationsDone.append($0) } }
        guard status.state != .loading, loaded != nil else { return }
        unloadTimer?.cancel()
        loaded = nil
        update { $0 = RuntimeStatus(state: .idle, lastInferenceAt: $0.lastInferenceAt, activeGenerations: 0) }
        broadcast(.modelChanged(nil))
    }

    /// Generates with the model in memory (`model`, when given, must be the one loaded).
    /// `keepAlive`, when given, replaces the default for this model's next idle period (Ollama's
    /// per-request keep_alive): nil keeps the default, `.some(nil)` keeps the model forever.
    public func generate(model name: String? = nil, prompt: String, options: GenerationOptions = GenerationOptions(),
                         keepAlive: Duration?? = nil,
                         onPiece: @escaping @Sendable (String) -> Bool = { _ in true }) async throws(RuntimeError) -> GenerationResult {
        try await run(model: name, keepAlive: keepAlive) { model throws(RuntimeError) in
            try model.generate(prompt: prompt, options: options, onPiece: onPiece)
        }
    }

    /// `generate` after the prompt that `messages` make by the model's chat template.
    public func chat(model name: String? = nil, messages: [ChatMessage], options: GenerationOptions = GenerationOptions(),
                     keepAlive: Duration?? = nil,
                     onPiece: @escaping @Sendable (String) -> Bool = { _ in true }) async throws(RuntimeError) -> GenerationResult {
        let loadedName = loaded?.files.name ?? "the model"
        do {
            return try await run(model: name, keepAlive: keepAlive) { model throws(RuntimeError) in
                try model.generate(prompt: try model.chatPrompt(messages), options: options, onPiece: onPiece)
            }
        } catch where error.code == .noChatTemplate {
            throw RuntimeError(.noChatTemplate, "\(name ?? loadedName): \(error.message)")
        }
    }

    /// `generate` after `prompt` as a user's message (after `system`, when not empty) by the
    /// model's chat template; when llama.cpp does not know the template, after `system` and
    /// `prompt` as they are.
    public func complete(model name: String? = nil, prompt: String, system: String = "", options: GenerationOptions = GenerationOptions(),
                         keepAlive: Duration?? = nil,
                         onPiece: @escaping @Sendable (String) -> Bool = { _ in true }) async throws(RuntimeError) -> GenerationResult {
        let messages = (system.isEmpty ? [] : [ChatMessage(role: "system", content: system)]) + [ChatMessage(role: "user", content: prompt)]
        return try await run(model: name, keepAlive: keepAlive) { model throws(RuntimeError) in
            let templated: String
            do throws(RuntimeError) { templated = try model.chatPrompt(messages) } catch where error.code == .noChatTemplate {
                templated = system.isEmpty ? prompt : system + "\n\n" + prompt
            }
            return try model.generate(prompt: templated, options: options, onPiece: onPiece)
        }
    }

    /// Embeddings of `texts` by the model in memory, normalised to unit length when
    /// `normalize` (as Ollama's /api/embed sends them).
    public func embed(model name: String? = nil, texts: [String], truncate: Bool = true, normalize: Bool,
                      keepAlive: Duration?? = nil) async throws(RuntimeError) -> [[Float]] {
        let vectors = try await run(model: name, keepAlive: keepAlive) { model throws(RuntimeError) in try model.embed(texts, truncate: truncate) }
        return normalize ? vectors.map(Self.unitLength) : vectors
    }

    public static func unitLength(_ vector: [Float]) -> [Float] {
        let norm = vector.reduce(0) { $0 + $1 * $1 }.squareRoot()
        return norm > 0 ? vector.map { $0 / norm } : vector
    }

    /// Runs `work` with the model in memory on the runtime's thread, counted as a generation.
    private func run<Output: Sendable>(model name: String?, keepAlive: Duration??,
                                       _ work: @escaping @Sendable (any LoadedModel) throws(RuntimeError) -> Output) async throws(RuntimeError) -> Output {
        guard status.state == .ready, let (files, model) = loaded, name == nil || name == files.name else {
            let what = name.map { "'\($0)' is not the loaded model" } ?? "no model is loaded"
            throw RuntimeError(.notLoaded, "\(what) (state: \(status.state.rawValue)\(loaded.map { ", loaded: \($0.files.name)" } ?? ""))")
        }
        unloadTimer?.cancel()
        update { $0.activeGenerations += 1 }
        let result: Result<Output, RuntimeError> = await withCheckedContinuation { continuation in
            queue.async {
                do throws(RuntimeError) {
                    continuation.resume(returning: .success(try work(model)))
                } catch {
                    continuation.resume(returning: .failure(error))
                }
            }
        }
        update { $0.activeGenerations -= 1; $0.lastInferenceAt = Date() }
        if status.activeGenerations == 0 {
            let waiting = generationsDone
            generationsDone.removeAll()
            for waiter in waiting { waiter.resume() }
        }
        if let keepAlive { scheduleUnload(after: keepAlive) } else { scheduleUnload() }
        return try result.get()
    }

    /// Keeps the loaded model for `duration` from now (nil: forever), then the default applies again.
    public func keepLoaded(for duration: Duration?) { scheduleUnload(after: duration) }

    /// When the loaded model will be unloaded if nothing uses it (Ollama's `expires_at`); nil:
    /// never, as things stand.
    public private(set) var unloadsAt: Date?

    /// Unloads after `keepAlive` (or `duration`) without use.
    private func scheduleUnload(after duration: Duration?? = nil) {
        unloadTimer?.cancel()
        let keepAlive = duration ?? self.keepAlive
        unloadsAt = keepAlive.map { Date().addingTimeInterval(Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18) }
        guard let keepAlive, loaded != nil else { return }
        unloadTimer = Task { [weak self] in
            if keepAlive > .zero {
                do { try await Task.sleep(for: keepAlive) } catch { return }
            }
            await self?.unloadIfIdle()
        }
    }

    private func unloadIfIdle() async {
        guard !Task.isCancelled, status.state == .ready, status.activeGenerations == 0 else { return }
        await unload()
    }

    private func update(_ change: (inout RuntimeStatus) -> Void) {
        change(&status)
        broadcast(.stateChanged(status))
    }

    private func broadcast(_ event: RuntimeEvent) {
        for observer in observers.values { observer.yield(event) }
    }

    /// The files' size plus a margin for context and buffers.
    static func estimatedMemory(_ files: ModelFiles) -> UInt64 {
        let sizes = [files.weights, files.projector].compactMap { $0 }.map { path -> UInt64 in
            (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? UInt64 ?? 0) ?? 0
        }
        return sizes.reduce(0, +) * 11 / 10 + (64 << 20)
    }
}
