import CLlama
import Foundation
import GGUF

/// The llama.cpp backend, linked in-process. One context per loaded model, reused across
/// requests (its memory is cleared between them); calls on one model must not overlap.
public struct LlamaEngine: InferenceEngine {
    /// Tokens of context per request (capped by what the model was trained for).
    public var contextLength: UInt32
    public var threads: Int32

    public init(contextLength: UInt32 = 4096, threads: Int32 = Int32(min(ProcessInfo.processInfo.activeProcessorCount, 8))) {
        self.contextLength = contextLength
        self.threads = threads
        LlamaLog.install()
    }

    public func load(_ files: ModelFiles) throws(RuntimeError) -> any LoadedModel {
        try LlamaModel(files, contextLength: contextLength, threads: threads)
    }
}

/// llama.cpp's log goes to a buffer, not stderr: its last error explains a failed load.
enum LlamaLog {
    private static let setUp: Void = {
        let callback: ggml_log_callback = { level, text, _ in
            guard let text, level == GGML_LOG_LEVEL_ERROR || level == GGML_LOG_LEVEL_WARN else { return }
            LlamaLog.record(String(cString: text))
        }
        llama_log_set(callback, nil)
        mtmd_log_set(callback, nil)
        llama_backend_init()
    }()
    nonisolated(unsafe) private static var lines: [String] = []
    private static let lock = NSLock()

    static func install() { _ = setUp }

    static func record(_ line: String) {
        lock.withLock {
            lines.append(line.trimmingCharacters(in: .whitespacesAndNewlines))
            if lines.count > 20 { lines.removeFirst(lines.count - 20) }
        }
    }

    /// What llama.cpp complained about since the last call.
    static func take() -> String {
        lock.withLock {
            defer { lines.removeAll() }
            return lines.filter { !$0.isEmpty }.suffix(3).joined(separator: "; ")
        }
    }
}

final class LlamaModel: LoadedModel, @unchecked Sendable {
    // The pointers are only used by one caller at a time (the runtime serialises requests).
    private let model: OpaquePointer
    private let context: OpaquePointer
    private let vocab: OpaquePointer
    private let projector: OpaquePointer?
    /// For embeddings, made on first use: pooled by the model's own pooling type.
    private var embeddingContext: OpaquePointer?
    private let contextLength: UInt32
    private let threads: Int32
    private let name: String

    init(_ files: ModelFiles, contextLength: UInt32, threads: Int32) throws(RuntimeError) {
        _ = LlamaLog.take()
        var modelParameters = llama_model_default_params()
        modelParameters.n_gpu_layers = 0
        guard let model = llama_model_load_from_file(files.weights, modelParameters) else {
            throw RuntimeError(.loadFailed, "llama.cpp cannot load \(files.name) from \(files.weights): \(LlamaLog.take())")
        }
        var parameters = llama_context_default_params()
        let trained = UInt32(max(1, llama_model_n_ctx_train(model)))
        parameters.n_ctx = min(contextLength, trained)
        parameters.n_batch = parameters.n_ctx
        parameters.n_threads = threads
        parameters.n_threads_batch = threads
        guard let context = llama_init_from_model(model, parameters) else {
            llama_model_free(model)
            throw RuntimeError(.loadFailed, "llama.cpp cannot make a context for \(files.name): \(LlamaLog.take())")
        }
        var projector: OpaquePointer?
        if let path = files.projector {
            do throws(RuntimeError) {
                try Self.checkProjector(path)
            } catch {
                llama_free(context)
                llama_model_free(model)
                throw error
            }
            var projectorParameters = mtmd_context_params_default()
            projectorParameters.use_gpu = false
            projectorParameters.n_threads = threads
            projector = mtmd_init_from_file(path, model, projectorParameters)
            if projector == nil {
                llama_free(context)
                llama_model_free(model)
                throw RuntimeError(.loadFailed, "llama.cpp cannot load the projector of \(files.name): \(LlamaLog.take())")
            }
        }
        self.model = model
        self.context = context
        self.projector = projector
        self.contextLength = parameters.n_ctx
        self.threads = threads
        name = files.name
        vocab = llama_model_get_vocab(model)
    }

    deinit {
        if let embeddingContext { llama_free(embeddingContext) }
        if let projector { mtmd_free(projector) }
        llama_free(context)
        llama_model_free(model)
    }

    /// mtmd crashes the process (rather than failing) on an "mlp" projector that lacks these
    /// tensors, so a bad download is refused here first.
    static func checkProjector(_ path: String) throws(RuntimeError) {
        let file: GGUFFile
        do { file = try GGUFReader.read(path: path) } catch {
            throw RuntimeError(.loadFailed, "the projector \(path) is not a readable GGUF file: \(error)")
        }
        guard case .string(let type)? = file["clip.projector_type"], type == "mlp" else { return }
        let names = Set(file.tensors.map(\.name))
        let required = ["v.patch_embd.weight", "v.position_embd.weight", "mm.0.weight", "mm.0.bias", "mm.2.weight", "mm.2.bias"]
        let missing = required.filter { !names.contains($0) }
        guard missing.isEmpty else {
            throw RuntimeError(.loadFailed, "the projector \(path) lacks the tensors \(missing.joined(separator: ", ")); it cannot be loaded")
        }
    }

    func generate(prompt: String, options: GenerationOptions, onPiece: (String) -> Bool) throws(RuntimeError) -> GenerationResult {
        llama_memory_clear(llama_get_memory(context), true)
        var tokens = try promptTokens(prompt, options)
        let promptCount = tokens.count
        let capacity = min(Int(llama_n_ctx(context)), options.contextLimit ?? .max)
        guard tokens.count < capacity else {
            throw RuntimeError(.promptTooLong, "the prompt has \(tokens.count) tokens; the context holds \(capacity)")
        }
        let sampler = try makeSampler(options)
        defer { llama_sampler_free(sampler) }

        let promptStart = ContinuousClock.now
        let batchSize = Int(llama_n_batch(context))
        for start in stride(from: 0, to: tokens.count, by: batchSize) {
            let end = min(start + batchSize, tokens.count)
            let status = tokens.withUnsafeMutableBufferPointer { buffer in
                llama_decode(context, llama_batch_get_one(buffer.baseAddress! + start, Int32(end - start)))
            }
            guard status == 0 else { throw RuntimeError(.generationFailed, "llama_decode failed (\(status)) on the prompt") }
        }
        let promptDuration = ContinuousClock.now - promptStart

        let generationStart = ContinuousClock.now
        var generated: [Int32] = []
        var doneReason = "length"
        var pieces = UTF8Pieces(), stops = StopStrings(options.stop)
        var answer = ""  // what went out: the answer, stop strings left out
        func send(_ text: String) -> Bool {
            guard !text.isEmpty else { return true }
            answer += text
            return onPiece(text)
        }
        while generated.count < options.maximumTokens && tokens.count + generated.count < capacity {
            var token = llama_sampler_sample(sampler, context, -1)
            if llama_vocab_is_eog(vocab, token) {
                doneReason = "stop"
                break
            }
            generated.append(token)
            let piece = self.piece(token)
            let text = stops.add(pieces.add(piece))
            if !send(text) || stops.stopped {
                doneReason = "stop"
                break
            }
            let status = llama_decode(context, llama_batch_get_one(&token, 1))
            guard status == 0 else { throw RuntimeError(.generationFailed, "llama_decode failed (\(status)) while generating") }
        }
        if !stops.stopped { _ = send(stops.add(pieces.finish()) + stops.finish()) }
        tokens.removeAll()
        return GenerationResult(text: answer, tokens: generated, promptTokens: promptCount,
                                doneReason: doneReason, promptDuration: promptDuration,
                                generationDuration: ContinuousClock.now - generationStart)
    }

    /// By llama.cpp's `llama_chat_apply_template`, which knows a fixed list of templates
    /// (ChatML, Llama 2 and 3, Mistral, Gemma, Phi and others, recognised in the model's own
    /// Jinja text) and runs no Jinja itself.
    func chatPrompt(_ messages: [ChatMessage]) throws(RuntimeError) -> String {
        guard let template = llama_model_chat_template(model, nil) else {
            throw RuntimeError(.noChatTemplate, "the model has no chat template (tokenizer.chat_template); send a prompt to /api/generate instead")
        }
        let strings = messages.flatMap { [strdup($0.role), strdup($0.content)] }
        defer { strings.forEach { free($0) } }
        let chat = stride(from: 0, to: strings.count, by: 2).map { llama_chat_message(role: strings[$0], content: strings[$0 + 1]) }
        var buffer = [CChar](repeating: 0, count: max(256, 2 * messages.reduce(0) { $0 + $1.role.utf8.count + $1.content.utf8.count }))
        var length = llama_chat_apply_template(template, chat, chat.count, true, &buffer, Int32(buffer.count))
        if length > Int32(buffer.count) {
            buffer = [CChar](repeating: 0, count: Int(length))
            length = llama_chat_apply_template(template, chat, chat.count, true, &buffer, Int32(buffer.count))
        }
        guard length >= 0 else {
            throw RuntimeError(.noChatTemplate, "llama.cpp does not know the model's chat template (it applies only known ones, such as ChatML, Llama 3, Mistral or Gemma); send a formatted prompt to /api/generate with raw: true instead")
        }
        return String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// One vector a text, pooled as the model says (its `pooling_type`: mean, CLS or last
    /// token); a model without one (a chat model) has no embeddings. `truncate` cuts a text
    /// longer than the context, else it is an error.
    func embed(_ texts: [String], truncate: Bool) throws(RuntimeError) -> [[Float]] {
        let context = try makeEmbeddingContext()
        // A text is pooled in one micro-batch (llama.cpp may round the context up beyond it).
        let capacity = Int(min(llama_n_ctx(context), llama_n_ubatch(context)))
        let size = Int(llama_model_n_embd(model))
        return try texts.enumerated().map { (index, text) throws(RuntimeError) -> [Float] in
            var tokens = tokenize(text, addSpecial: true)
            if tokens.count > capacity {
                guard truncate else {
                    throw RuntimeError(.promptTooLong, "input \(index) has \(tokens.count) tokens; the context holds \(capacity) (truncate: true cuts it)")
                }
                tokens.removeLast(tokens.count - capacity)
            }
            guard !tokens.isEmpty else { throw RuntimeError(.promptTooLong, "input \(index) is empty") }
            llama_memory_clear(llama_get_memory(context), true)
            let status = tokens.withUnsafeMutableBufferPointer { llama_decode(context, llama_batch_get_one($0.baseAddress!, Int32($0.count))) }
            guard status == 0, let vector = llama_get_embeddings_seq(context, 0) else {
                throw RuntimeError(.generationFailed, "llama.cpp could not embed input \(index) (\(status))")
            }
            return Array(UnsafeBufferPointer(start: vector, count: size))
        }
    }

    private func makeEmbeddingContext() throws(RuntimeError) -> OpaquePointer {
        if let embeddingContext { return embeddingContext }
        var parameters = llama_context_default_params()
        parameters.n_ctx = contextLength
        parameters.n_batch = contextLength
        parameters.n_ubatch = contextLength  // a pooled sequence must fit one micro-batch
        parameters.n_seq_max = 1
        parameters.n_threads = threads
        parameters.n_threads_batch = threads
        parameters.embeddings = true
        parameters.pooling_type = LLAMA_POOLING_TYPE_UNSPECIFIED
        guard let context = llama_init_from_model(model, parameters) else {
            throw RuntimeError(.loadFailed, "llama.cpp cannot make an embedding context for \(name): \(LlamaLog.take())")
        }
        guard llama_pooling_type(context) != LLAMA_POOLING_TYPE_NONE else {
            llama_free(context)
            throw RuntimeError(.noEmbeddings, "\(name) does not make embeddings (its GGUF names no pooling type: it is a chat or completion model)")
        }
        embeddingContext = context
        return context
    }

    /// The prompt's tokens; with a suffix, prefix and suffix between the model's FIM tokens
    /// (prefix-suffix-middle order, as llama.cpp's server lays out an infill).
    private func promptTokens(_ prompt: String, _ options: GenerationOptions) throws(RuntimeError) -> [llama_token] {
        guard let suffix = options.suffix else { return tokenize(prompt, addSpecial: options.addSpecialTokens) }
        let (prefixToken, suffixToken, middleToken) = (llama_vocab_fim_pre(vocab), llama_vocab_fim_suf(vocab), llama_vocab_fim_mid(vocab))
        guard prefixToken >= 0, suffixToken >= 0, middleToken >= 0 else {
            throw RuntimeError(.noInfill, "the model has no fill-in-the-middle tokens (tokenizer.ggml.fim_pre_token_id, …); send the prompt without 'suffix'")
        }
        let start = options.addSpecialTokens && llama_vocab_get_add_bos(vocab) ? [llama_vocab_bos(vocab)] : []
        return start + [prefixToken] + tokenize(prompt, addSpecial: false) + [suffixToken] + tokenize(suffix, addSpecial: false) + [middleToken]
    }

    private func tokenize(_ text: String, addSpecial: Bool) -> [llama_token] {
        let length = Int32(text.utf8.count)
        let needed = -llama_tokenize(vocab, text, length, nil, 0, addSpecial, false)
        guard needed > 0 else { return [] }
        var tokens = [llama_token](repeating: 0, count: Int(needed))
        let count = llama_tokenize(vocab, text, length, &tokens, needed, addSpecial, false)
        return Array(tokens.prefix(Int(max(0, count))))
    }

    private func piece(_ token: llama_token) -> [UInt8] {
        var buffer = [CChar](repeating: 0, count: 64)
        var length = llama_token_to_piece(vocab, token, &buffer, Int32(buffer.count), 0, true)
        if length < 0 {  // a longer piece: llama.cpp says how long
            buffer = [CChar](repeating: 0, count: Int(-length))
            length = llama_token_to_piece(vocab, token, &buffer, Int32(buffer.count), 0, true)
        }
        return buffer.prefix(Int(max(0, length))).map { UInt8(bitPattern: $0) }
    }

    private func makeSampler(_ options: GenerationOptions) throws(RuntimeError) -> UnsafeMutablePointer<llama_sampler> {
        let chain = llama_sampler_chain_init(llama_sampler_chain_default_params())!
        if let grammar = options.grammar {
            // First, so every later sampler sees only the tokens the grammar allows.
            guard let constrained = llama_sampler_init_grammar(vocab, grammar, "root") else {
                llama_sampler_free(chain)
                throw RuntimeError(.generationFailed, "llama.cpp could not parse the output grammar")
            }
            llama_sampler_chain_add(chain, constrained)
        }
        if options.repeatPenalty != 1 || options.frequencyPenalty != 0 || options.presencePenalty != 0 {
            llama_sampler_chain_add(chain, llama_sampler_init_penalties(llama_vocab_n_tokens(vocab), options.penaltyWindow,
                                                                        options.repeatPenalty, options.frequencyPenalty, options.presencePenalty))
        }
        if options.temperature <= 0 {
            llama_sampler_chain_add(chain, llama_sampler_init_greedy())
        } else if options.mirostat != 0 {
            // Mirostat picks the token itself, by the surprise it aims for.
            llama_sampler_chain_add(chain, llama_sampler_init_temp(options.temperature))
            llama_sampler_chain_add(chain, options.mirostat == 1
                ? llama_sampler_init_mirostat(llama_vocab_n_tokens(vocab), options.seed, options.mirostatTau, options.mirostatEta, 100)
                : llama_sampler_init_mirostat_v2(options.seed, options.mirostatTau, options.mirostatEta))
        } else {
            llama_sampler_chain_add(chain, llama_sampler_init_top_k(options.topK))
            if options.typicalP < 1 { llama_sampler_chain_add(chain, llama_sampler_init_typical(options.typicalP, 1)) }
            llama_sampler_chain_add(chain, llama_sampler_init_top_p(options.topP, 1))
            if options.minP > 0 { llama_sampler_chain_add(chain, llama_sampler_init_min_p(options.minP, 1)) }
            llama_sampler_chain_add(chain, llama_sampler_init_temp(options.temperature))
            llama_sampler_chain_add(chain, llama_sampler_init_dist(options.seed))
        }
        return chain
    }
}
