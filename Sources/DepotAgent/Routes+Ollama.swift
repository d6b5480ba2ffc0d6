import DepotHTTP
import Foundation
import GGUF
import Hummingbird
import ModelRuntime
import ModelStore
import ModelTransfer

/// The subset of Ollama's API that its clients use to list, pull, inspect, run and delete
/// models, so existing Ollama tools work against the agent unchanged.
extension Agent {
    /// Ollama calls the model `model` (older clients: `name`).
    struct NamedRequest: Decodable {
        var model: String
        var stream: Bool?

        enum CodingKeys: String, CodingKey { case model, name, stream }

        init(from decoder: Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            guard let model = try container.decodeIfPresent(String.self, forKey: .model)
                ?? container.decodeIfPresent(String.self, forKey: .name) else {
                throw DecodingError.keyNotFound(CodingKeys.model, .init(codingPath: [], debugDescription: "the model name"))
            }
            self.model = model
            stream = try container.decodeIfPresent(Bool.self, forKey: .stream)
        }
    }

    struct CopyRequest: Decodable { var source: String; var destination: String }

    struct GenerateRequest: Decodable {
        /// Ollama's `options`. Each is honoured, or accepted as a hint with no effect on the
        /// answer (the hardware ones: depot runs on the CPU with its own threads and batches),
        /// or refused by name; none is dropped without a word.
        struct Options: Decodable {
            var num_predict: Int?
            var temperature: Float?
            var seed: Int?
            var top_k: Int32?
            var top_p: Float?
            var stop: Texts?
            var repeat_penalty: Float?
            var repeat_last_n: Int32?
            var frequency_penalty: Float?
            var presence_penalty: Float?
            var num_ctx: Int?
            var min_p: Float?
            var typical_p: Float?
            var mirostat: Int?
            var mirostat_tau: Float?
            var mirostat_eta: Float?

            /// Options that tune how a model runs, not what it answers.
            static let hints: Set<String> = ["num_gpu", "main_gpu", "num_thread", "num_batch", "use_mmap", "use_mlock", "low_vram",
                                             "numa", "vocab_only", "f16_kv", "num_keep", "penalize_newline", "logits_all",
                                             "embedding_only"]

            enum CodingKeys: String, CodingKey, CaseIterable {
                case num_predict, temperature, seed, top_k, top_p, stop, repeat_penalty, repeat_last_n, frequency_penalty,
                     presence_penalty, num_ctx, min_p, typical_p, mirostat, mirostat_tau, mirostat_eta
            }

            struct AnyKey: CodingKey {
                var stringValue: String
                var intValue: Int? { nil }
                init?(stringValue: String) { self.stringValue = stringValue }
                init?(intValue: Int) { nil }
            }

            init(from decoder: Decoder) throws {
                let container = try decoder.container(keyedBy: CodingKeys.self)
                num_predict = try container.decodeIfPresent(Int.self, forKey: .num_predict)
                temperature = try container.decodeIfPresent(Float.self, forKey: .temperature)
                seed = try container.decodeIfPresent(Int.self, forKey: .seed)
                top_k = try container.decodeIfPresent(Int32.self, forKey: .top_k)
                top_p = try container.decodeIfPresent(Float.self, forKey: .top_p)
                stop = try container.decodeIfPresent(Texts.self, forKey: .stop)
                repeat_penalty = try container.decodeIfPresent(Float.self, forKey: .repeat_penalty)
                repeat_last_n = try container.decodeIfPresent(Int32.self, forKey: .repeat_last_n)
                frequency_penalty = try container.decodeIfPresent(Float.self, forKey: .frequency_penalty)
                presence_penalty = try container.decodeIfPresent(Float.self, forKey: .presence_penalty)
                num_ctx = try container.decodeIfPresent(Int.self, forKey: .num_ctx)
                min_p = try container.decodeIfPresent(Float.self, forKey: .min_p)
                typical_p = try container.decodeIfPresent(Float.self, forKey: .typical_p)
                mirostat = try container.decodeIfPresent(Int.self, forKey: .mirostat)
                mirostat_tau = try container.decodeIfPresent(Float.self, forKey: .mirostat_tau)
                mirostat_eta = try container.decodeIfPresent(Float.self, forKey: .mirostat_eta)
                let all = try decoder.container(keyedBy: AnyKey.self)
                for key in all.allKeys where CodingKeys(rawValue: key.stringValue) == nil && !Self.hints.contains(key.stringValue) {
                    // Tail-free sampling left llama.cpp; its "off" value still means off.
                    if key.stringValue == "tfs_z", (try? all.decode(Float.self, forKey: key)) == 1 { continue }
                    let what = key.stringValue == "tfs_z" ? "tail-free sampling is not in llama.cpp any more (only 1, off, is taken)"
                                                          : "not an option depot knows"
                    throw DecodingError.dataCorrupted(.init(codingPath: all.codingPath + [key], debugDescription: what))
                }
            }
        }
        var model: String
        var prompt: String?
        var system: String?
        var stream: Bool?
        var raw: Bool?
        var options: Options?
        var keepAlive: KeepAlive?
        /// Fill in the middle (by the model's FIM tokens); empty: none.
        var suffix: String?
        // Not supported yet: refused rather than ignored.
        var template: GivenField?
        var format: OutputFormat?
        var images: GivenField?
        var context: GivenField?

        enum CodingKeys: String, CodingKey {
            case model, prompt, system, stream, raw, options, suffix, template, format, images, context, keepAlive = "keep_alive"
        }

        /// The first field given that is not supported yet.
        var unsupported: String? {
            [("template", template), ("images", images), ("context", context)]
                .first { $0.1?.isSet == true }?.0
        }
    }

    /// `keep_alive`: seconds as a number, or a duration string as Go writes it ("5m", "10m0s",
    /// "1h30m", "300ms", "-1"; clients format theirs with Go's `time.Duration`), or seconds as text.
    struct KeepAlive: Decodable {
        /// nil: forever.
        var duration: Duration?

        init(from decoder: Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let seconds = try? container.decode(Double.self) {
                duration = try Self.duration(seconds: seconds, in: container)
                return
            }
            let text = try container.decode(String.self).trimmingCharacters(in: .whitespaces)
            guard let seconds = Double(text) ?? Self.goDuration(text) else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "'\(text.prefix(100))' is not a duration such as 5m, 10m0s, 30s or -1")
            }
            duration = try Self.duration(seconds: seconds, in: container)
        }

        /// Seconds in Go's duration syntax: an optional sign, then one or more numbers (with an
        /// optional fraction) each followed by a unit (ns, us, µs, ms, s, m, h); nil otherwise.
        static func goDuration(_ text: String) -> Double? {
            var rest = Substring(text)
            let negative = rest.hasPrefix("-")
            if rest.hasPrefix("-") || rest.hasPrefix("+") { rest = rest.dropFirst() }
            guard !rest.isEmpty else { return nil }
            let units: [(String, Double)] = [("ns", 1e-9), ("us", 1e-6), ("µs", 1e-6), ("μs", 1e-6), ("ms", 1e-3), ("s", 1), ("m", 60), ("h", 3600)]
            var total = 0.0
            while !rest.isEmpty {
                let number = rest.prefix { $0.isASCII && ($0.isNumber || $0 == ".") }
                guard !number.isEmpty, number != ".", number.filter({ $0 == "." }).count <= 1, let value = Double(number) else { return nil }
                rest = rest.dropFirst(number.count)
                guard let (unit, scale) = units.first(where: { rest.hasPrefix($0.0) }) else { return nil }  // "ms" before "m"
                rest = rest.dropFirst(unit.count)
                total += value * scale
            }
            return negative ? -total : total
        }

        /// Negative: forever. Refuses what is not a finite number of seconds a Duration can hold.
        static func duration(seconds: Double, in container: SingleValueDecodingContainer) throws -> Duration? {
            guard seconds.isFinite, abs(seconds) < 1e12 else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "keep_alive \(seconds) is out of range")
            }
            return seconds < 0 ? nil : .milliseconds(Int64(seconds * 1000))
        }
    }

    struct Details: Codable {
        var parent_model = ""
        var format = "gguf"
        var family: String
        var families: [String]
        var parameter_size: String
        var quantization_level: String
    }

    struct TagModel: Codable {
        var name: String
        var model: String
        var modified_at: Date
        var size: UInt64
        var digest: String
        var details: Details
        var expires_at: Date?
        var size_vram: UInt64?
    }

    func details(_ entry: ModelEntry) -> Details {
        let family = entry.facts?.architecture ?? "unknown"
        return Details(family: family, families: [family], parameter_size: entry.facts?.parameterLabel ?? "unknown",
                       quantization_level: entry.facts?.quantization ?? "unknown")
    }

    func tag(_ entry: ModelEntry, expiresAt: Date? = nil) -> TagModel {
        TagModel(name: entry.name, model: entry.name, modified_at: entry.lastUsedAt ?? entry.createdAt, size: entry.sizeBytes,
                 digest: entry.weights?.sha256 ?? "", details: details(entry), expires_at: expiresAt,
                 size_vram: expiresAt == nil ? nil : 0)
    }

    func addOllamaRoutes(to router: Router<AgentRequestContext>) {
        router.get("/api/version") { _, _ in JSON.response(["version": "0.12.0"]) }
        // The ollama CLI checks that a server is up with HEAD /, as some clients do with these.
        router.head("/api/version") { _, _ in Response(status: .ok, headers: [.contentType: "application/json; charset=utf-8"]) }
        router.head("/api/tags") { _, _ in Response(status: .ok, headers: [.contentType: "application/json; charset=utf-8"]) }

        router.get("/api/tags") { _, _ in JSON.response(["models": try self.manager.list().map { self.tag($0) }]) }

        router.get("/api/ps") { _, _ in
            let status = await self.runtime.currentStatus
            guard let active = status.activeModel, let entry = try self.manager.get(active) else {
                return JSON.response(["models": [TagModel]()])
            }
            // The keep_alive of the model's last request, or the server's default.
            let expires = await self.runtime.unloadsAt ?? Date.distantFuture
            return JSON.response(["models": [self.tag(entry, expiresAt: expires)]])
        }

        router.post("/api/show") { request, context in
            let body = try await JSON.decode(NamedRequest.self, from: request, context: context)
            let entry = try self.installed(body.model)
            return JSON.response(try self.show(entry))
        }

        router.delete("/api/delete") { request, context in
            let body = try await JSON.decode(NamedRequest.self, from: request, context: context)
            let entry = try self.installed(body.model)
            if await self.runtime.activeModel == entry.name { await self.runtime.unload() }
            _ = try self.manager.remove(entry.name, app: self.configuration.appID, force: false)
            return JSON.response([String: String]())
        }

        router.post("/api/copy") { request, context in
            let body = try await JSON.decode(CopyRequest.self, from: request, context: context)
            let entry = try self.installed(body.source)
            try ModelName.validate(body.destination)
            guard let weights = entry.weights else { throw AgentError.badRequest("'\(entry.name)' has no weights file") }
            // Never replaces an existing entry: that could remove a model another app uses (409).
            _ = try self.store.importModel(ImportRequest(weights: weights.path, projector: entry.projector?.path,
                                                         name: body.destination, replace: false))
            return JSON.response([String: String]())
        }

        router.post("/api/pull") { request, context in
            let body = try await JSON.decode(NamedRequest.self, from: request, context: context)
            let pull = try await self.pullRequest(for: JobRequest(model: body.model))
            let controller = try self.jobs.start(pull, model: body.model)
            let updates = controller.updates
            guard body.stream ?? true else {
                _ = try await controller.result()
                return JSON.response(["status": "success"])
            }
            return Response(status: .ok, headers: [.contentType: "application/x-ndjson"], body: ResponseBody { writer in
                try await writer.write(JSON.line(["status": "pulling manifest"]))
                var last: TransferProgress?
                var reported = false
                for await progress in updates {
                    last = progress
                    if progress.stage == .downloading, let line = Self.pullLine(progress, digest: pull.sha256?.sha256) {
                        try await writer.write(line)
                        reported = true
                    }
                }
                if let last, last.stage == .ready, !reported, let line = Self.pullLine(last, digest: pull.sha256?.sha256) {
                    // The bytes were already stored: one line saying all of them are there, as Ollama does.
                    try await writer.write(line)
                }
                if last?.stage == .ready {
                    for status in ["verifying sha256 digest", "writing manifest", "success"] {
                        try await writer.write(JSON.line(["status": status]))
                    }
                } else {
                    try await writer.write(JSON.line(["error": last?.message ?? "the download stopped"]))
                }
                try await writer.finish(nil)
            })
        }

        router.post("/api/generate") { request, context in
            let body = try await JSON.decode(GenerateRequest.self, from: request, context: context)
            return try await self.generate(body)
        }
        router.post("/api/chat") { request, context in
            let body = try await JSON.decode(ChatRequest.self, from: request, context: context)
            return try await self.chat(body)
        }
    }

    struct PullProgressLine: Encodable {
        var status: String
        var digest: String
        var total: UInt64
        var completed: UInt64
    }

    static func pullLine(_ progress: TransferProgress, digest: String?) -> ByteBuffer? {
        let digest = "sha256:" + (digest ?? "unknown")
        return JSON.line(PullProgressLine(status: "pulling \(digest.dropFirst(7).prefix(12))", digest: digest,
                                          total: progress.totalBytes, completed: progress.completedBytes))
    }

    struct ShowResponse: Encodable {
        var license: String
        var modelfile: String
        var parameters: String
        var template: String
        var details: Details
        var model_info: [String: JSONValue]
        var capabilities: [String]
        var modified_at: Date
    }

    func show(_ entry: ModelEntry) throws -> ShowResponse {
        guard let weights = entry.weights else { throw AgentError.badRequest("'\(entry.name)' has no weights file") }
        let file: GGUFFile
        do { file = try GGUFReader.read(path: weights.path) } catch {
            throw AgentError(.internalServerError, "cannot read the GGUF header of \(entry.name): \(error)")
        }
        var info: [String: JSONValue] = [:]
        for (key, value) in file.metadata {
            // Like Ollama, leave out the tokenizer's long tables.
            if case .array(let array) = value, array.elements.count > 64 { continue }
            info[key] = JSONValue(value)
        }
        info["general.parameter_count"] = .number(Double(entry.facts?.parameterCount ?? 0))
        let template: String = if case .string(let text)? = file["tokenizer.chat_template"] { text } else { "" }
        return ShowResponse(license: entry.license ?? "", modelfile: "# Modelfile generated by depot\nFROM \(weights.path)\n",
                            parameters: parameters(file), template: template, details: details(entry), model_info: info,
                            capabilities: (file.metadata.contains { $0.key.hasSuffix(".pooling_type") } ? ["embedding"] : ["completion"])
                                + (entry.projector != nil ? ["vision"] : [])
                                + (file["tokenizer.ggml.fim_pre_token_id"] != nil && file["tokenizer.ggml.fim_suf_token_id"] != nil
                                   && file["tokenizer.ggml.fim_mid_token_id"] != nil ? ["insert"] : [])
                                + (ToolCalling.definesCalls(template) ? ["tools"] : []),
                            modified_at: entry.lastUsedAt ?? entry.createdAt)
    }

    /// `parameters` as Ollama writes them: the context a request gets here (the agent's,
    /// within what the model was trained for) and the model's end-of-turn text, which ends an
    /// answer.
    func parameters(_ file: GGUFFile) -> String {
        let trained = file.facts.contextLength.map(Int.init) ?? .max
        var lines = ["num_ctx \(min(Int(configuration.contextLength), trained))"]
        let tokens = file["tokenizer.ggml.tokens"]?.arrayElements ?? []
        for key in ["tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id"] {
            guard let id = file[key]?.unsignedInteger, id < tokens.count, case .string(let text) = tokens[Int(id)] else { continue }
            let line = "stop \(Self.quoted(text))"
            if !lines.contains(line) { lines.append(line) }
        }
        return lines.joined(separator: "\n")
    }

    /// A Go-style quoted string, as Ollama prints parameter values.
    static func quoted(_ text: String) -> String {
        let data = (try? JSONEncoder().encode(text)) ?? Data("\"\"".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    /// One line of an answer: `response` for /api/generate, `message` for /api/chat.
    struct GenerateChunk: Encodable {
        struct Message: Encodable {
            var role = "assistant"
            var content: String
            var tool_calls: [ToolCall]?
        }
        /// `{"function": {"name", "arguments": {…}}}`, as Ollama answers a call.
        struct ToolCall: Encodable {
            struct Function: Encodable {
                var name: String
                var arguments: JSONValue
            }
            var function: Function

            init(_ call: ToolCalling.Call) {
                let arguments = (try? JSONSerialization.jsonObject(with: Data(call.arguments.utf8))).map(JSONValue.init(decoded:))
                function = Function(name: call.name, arguments: arguments ?? .object([:]))
            }
        }
        var model: String
        var created_at = Date()
        var response: String?
        var message: Message?
        var done: Bool
        var done_reason: String?
        var total_duration: Int64?
        var load_duration: Int64?
        var prompt_eval_count: Int?
        var prompt_eval_duration: Int64?
        var eval_count: Int?
        var eval_duration: Int64?

        init(model: String, text: String, chat: Bool, done: Bool, done_reason: String? = nil) {
            self.model = model
            if chat { message = Message(content: text) } else { response = text }
            self.done = done
            self.done_reason = done_reason
        }
    }

    struct ChatRequest: Decodable {
        struct Message: Decodable {
            var role: String
            var content: String?
            var images: [String]?
            var tool_calls: [ToolCallIn]?
        }
        /// A call an earlier answer made, as the client sends it back.
        struct ToolCallIn: Decodable {
            struct Function: Decodable {
                var name: String
                var arguments: FreeJSON?
            }
            var function: Function
        }
        var model: String
        var messages: [Message]?
        var stream: Bool?
        var options: GenerateRequest.Options?
        var keepAlive: KeepAlive?
        var format: OutputFormat?
        var tools: [FreeJSON]?

        enum CodingKeys: String, CodingKey { case model, messages, stream, options, format, tools, keepAlive = "keep_alive" }
    }

    /// `POST /api/generate`: the prompt (and `system`) through the model's chat template, as
    /// Ollama does, unless `raw`; a model whose template llama.cpp does not know gets the
    /// prompt as it is.
    func generate(_ body: GenerateRequest) async throws -> Response {
        if let field = body.unsupported { throw AgentError.badRequest("'\(field)' is not supported yet") }
        let prompt = body.prompt ?? "", system = body.system ?? "", raw = body.raw ?? false
        let suffix = body.suffix.flatMap { $0.isEmpty ? nil : $0 }
        return try await answer(model: body.model, chat: false, empty: prompt.isEmpty && suffix == nil, keepAlive: body.keepAlive,
                                given: body.options, grammar: body.format?.grammar, stream: body.stream ?? true) { runtime, name, options, keepAlive, onPiece in
            var options = options
            options.suffix = suffix
            if raw || suffix != nil {
                return try await runtime.generate(model: name, prompt: prompt, options: options, keepAlive: keepAlive, onPiece: onPiece)
            }
            return try await runtime.complete(model: name, prompt: prompt, system: system, options: options, keepAlive: keepAlive, onPiece: onPiece)
        }
    }

    /// `POST /api/chat`: the messages through the model's chat template, then as /api/generate.
    /// With `tools`, for a model whose template defines tool calls: the tools go into the
    /// prompt and calls in the answer come back as `tool_calls`.
    func chat(_ body: ChatRequest) async throws -> Response {
        let given = try (body.messages ?? []).enumerated().map { index, message in
            guard message.images?.isEmpty ?? true else { throw AgentError.badRequest("messages.\(index).images: images in chat are not supported yet") }
            let calls = (message.tool_calls ?? []).map { call in
                ToolCalling.Call(name: call.function.name, arguments: ToolCalling.compact(call.function.arguments?.value ?? [String: Any]()))
            }
            return ToolCalling.Message(role: message.role, content: message.content ?? "", calls: calls)
        }
        let tools = try toolCalling(body.tools, for: installed(body.model))
        let messages = tools?.render(given) ?? given.map { ChatMessage(role: $0.role, content: $0.content) }
        return try await answer(model: body.model, chat: true, empty: given.isEmpty, keepAlive: body.keepAlive, given: body.options,
                                grammar: body.format?.grammar, stream: body.stream ?? true, toolCalls: tools != nil) { runtime, name, options, keepAlive, onPiece in
            try await runtime.chat(model: name, messages: messages, options: options, keepAlive: keepAlive, onPiece: onPiece)
        }
    }

    /// The tools a chat request gives, checked against the model's chat template.
    func toolCalling(_ definitions: [FreeJSON]?, for entry: ModelEntry) throws -> ToolCalling? {
        guard let definitions, !definitions.isEmpty else { return nil }
        let tools = try definitions.enumerated().map { index, definition in try ToolCalling.tool(definition, index: index) }
        let template = try entry.weights.flatMap { weights in
            do { return try GGUFReader.read(path: weights.path)["tokenizer.chat_template"]?.string } catch {
                throw AgentError(.internalServerError, "cannot read the GGUF header of \(entry.name): \(error)")
            }
        }
        return try ToolCalling(tools, model: entry.name, template: template)
    }

    typealias Run = @Sendable (ModelRuntime, String, GenerationOptions, Duration??, @escaping @Sendable (String) -> Bool) async throws -> GenerationResult

    /// What /api/generate and /api/chat share: nothing to say loads the model (or, with
    /// keep_alive 0, unloads it); otherwise `run` generates, streamed as NDJSON or in one answer.
    func answer(model: String, chat: Bool, empty: Bool, keepAlive given: KeepAlive?, given options: GenerateRequest.Options?,
                grammar: String? = nil, stream: Bool, toolCalls: Bool = false, run: @escaping Run) async throws -> Response {
        let started = ContinuousClock.now
        let entry = try installed(model)
        let name = entry.name
        if empty && given.map({ $0.duration == .zero }) == true {
            if await runtime.activeModel == name { await runtime.unload() }
            return JSON.response(GenerateChunk(model: name, text: "", chat: chat, done: true, done_reason: "unload"))
        }
        let (_, loadDuration) = try await loaded(entry)
        // keep_alive applies to this request's model from now on (as in Ollama), not to the server's default.
        let keepAlive = given.map(\.duration)
        guard !empty else {
            if let keepAlive { await runtime.keepLoaded(for: keepAlive) }
            return JSON.response(GenerateChunk(model: name, text: "", chat: chat, done: true, done_reason: "load"))
        }
        var generation = try Self.generationOptions(options, contextLength: Int(configuration.contextLength))
        generation.grammar = grammar
        let finish: @Sendable (GenerationResult, String) -> GenerateChunk = { result, text in
            var chunk = GenerateChunk(model: name, text: text, chat: chat, done: true, done_reason: result.doneReason)
            chunk.total_duration = (ContinuousClock.now - started).nanoseconds
            chunk.load_duration = loadDuration.nanoseconds
            chunk.prompt_eval_count = result.promptTokens
            chunk.prompt_eval_duration = result.promptDuration.nanoseconds
            chunk.eval_count = result.tokens.count
            chunk.eval_duration = result.generationDuration.nanoseconds
            return chunk
        }
        let calls = toolCalls ? ToolCallStream() : nil
        guard stream else {
            let result = try await run(runtime, name, generation, keepAlive) { _ in true }
            metrics.recordGeneration(tokens: result.tokens.count)
            guard let calls else { return JSON.response(finish(result, result.text)) }
            let (text, made) = calls.all(result.text)
            var chunk = finish(result, text)
            chunk.message?.tool_calls = made.isEmpty ? nil : made.map(GenerateChunk.ToolCall.init)
            return JSON.response(chunk)
        }
        let (lines, output) = AsyncStream<ByteBuffer>.makeStream()
        // A client that went away stops the generation.
        let send = { @Sendable (piece: (text: String, calls: [ToolCalling.Call])) -> Bool in
            let (text, made) = piece
            guard !text.isEmpty || !made.isEmpty else { return true }
            var chunk = GenerateChunk(model: name, text: text, chat: chat, done: false)
            chunk.message?.tool_calls = made.isEmpty ? nil : made.map(GenerateChunk.ToolCall.init)
            if case .terminated = output.yield(JSON.line(chunk)) { return false }
            return true
        }
        Task { [runtime, metrics] in
            do {
                let result = try await run(runtime, name, generation, keepAlive) { piece in
                    send(calls?.feed(piece) ?? (piece, []))
                }
                metrics.recordGeneration(tokens: result.tokens.count)
                if let calls { _ = send(calls.finish()) }
                output.yield(JSON.line(finish(result, "")))
            } catch {
                output.yield(JSON.line(["error": "\(error)"]))
            }
            output.finish()
        }
        return Response(status: .ok, headers: [.contentType: "application/x-ndjson"], body: ResponseBody(asyncSequence: lines))
    }

    /// The model in memory, loaded if it is not: its name and how long loading took.
    func loaded(_ model: String) async throws -> (name: String, loadDuration: Duration) {
        try await loaded(try installed(model))
    }

    func loaded(_ entry: ModelEntry) async throws -> (name: String, loadDuration: Duration) {
        let status = await runtime.currentStatus
        if status.activeModel == entry.name && status.state == .ready { return (entry.name, .zero) }
        return (entry.name, try await activate(entry).loadDuration)
    }

    /// Ollama's options; no num_predict means no limit (until the model stops or the context is full).
    static func generationOptions(_ given: GenerateRequest.Options?, contextLength: Int) throws -> GenerationOptions {
        var options = GenerationOptions()
        options.maximumTokens = Int.max
        if let given {
            if let value = given.num_ctx {
                guard value >= 1 else { throw AgentError.badRequest("'num_ctx' must be at least 1") }
                guard value <= contextLength else {
                    throw AgentError.badRequest("'num_ctx' \(value) is more than this agent's context of \(contextLength) tokens (depot serve --context-length)")
                }
                options.contextLimit = value
            }
            if let value = given.min_p {
                guard (0...1).contains(value) else { throw AgentError.badRequest("'min_p' must be 0 to 1") }
                options.minP = value
            }
            if let value = given.typical_p {
                guard value > 0 && value <= 1 else { throw AgentError.badRequest("'typical_p' must be more than 0 and at most 1") }
                options.typicalP = value
            }
            if let value = given.mirostat {
                guard (0...2).contains(value) else { throw AgentError.badRequest("'mirostat' must be 0 (off), 1 or 2") }
                options.mirostat = value
            }
            if let value = given.mirostat_tau { options.mirostatTau = value }
            if let value = given.mirostat_eta { options.mirostatEta = value }
            if let value = given.num_predict { options.maximumTokens = value < 0 ? Int.max : value }
            if let value = given.top_k { options.topK = value }
            options.sample(temperature: given.temperature, topP: given.top_p, seed: given.seed, stop: given.stop)
            try options.penalize(repeat: given.repeat_penalty, frequency: given.frequency_penalty, presence: given.presence_penalty)
            if let value = given.repeat_last_n {
                guard value >= -1 else { throw AgentError.badRequest("'repeat_last_n' must be -1 (the context), 0 (off) or more") }
                options.penaltyWindow = value == -1 ? Int32.max : value
            }
        }
        return options
    }
}

extension GenerationOptions {
    /// The sampling fields Ollama's and OpenAI's requests share, where given.
    mutating func sample(temperature: Float?, topP: Float?, seed: Int?, stop: Agent.Texts?) {
        if let temperature { self.temperature = temperature }
        if let topP { self.topP = topP }
        if let seed { self.seed = UInt32(truncatingIfNeeded: seed) }
        if let stop { self.stop = stop.texts }
    }

    /// Repetition penalties as clients give them, checked: llama.cpp asserts on a repeat
    /// penalty of zero or less.
    mutating func penalize(repeat: Float?, frequency: Float?, presence: Float?) throws {
        if let repeated = `repeat` {
            guard repeated > 0, repeated.isFinite else { throw AgentError.badRequest("'repeat_penalty' must be more than 0 (1 is none)") }
            repeatPenalty = repeated
        }
        for (name, value) in [("frequency_penalty", frequency), ("presence_penalty", presence)] {
            guard let value else { continue }
            guard (-2...2).contains(value) else { throw AgentError.badRequest("'\(name)' must be from -2 to 2") }
            if name == "frequency_penalty" { frequencyPenalty = value } else { presencePenalty = value }
        }
    }
}

extension Duration {
    var nanoseconds: Int64 { components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000 }
}

/// Whether a request field of any JSON type was given (not null, "", [] or {}): for fields a
/// client may send empty that are not supported yet.
struct GivenField: Decodable {
    var isSet: Bool

    init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            isSet = false
        } else if let text = try? container.decode(String.self) {
            isSet = !text.isEmpty
        } else if let array = try? container.decode([GivenField].self) {
            isSet = !array.isEmpty
        } else if let object = try? container.decode([String: GivenField].self) {
            isSet = !object.isEmpty
        } else {
            isSet = true
        }
    }
}

/// `format` in /api/generate and /api/chat: "json" (any JSON value), a JSON schema, or nothing
/// (null, ""), as the grammar the output must follow. A schema the grammar cannot express is a
/// 400 naming what it uses.
struct OutputFormat: Decodable {
    var grammar: String?

    init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            grammar = nil
        } else if let text = try? container.decode(String.self) {
            guard text.isEmpty || text == "json" else {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                        debugDescription: "\"json\" or a JSON schema, not \"\(text.prefix(40))\""))
            }
            grammar = text.isEmpty ? nil : JSONGrammar.anyJSON
        } else {
            do {
                grammar = try JSONGrammar.gbnf(schema: try container.decode(FreeJSON.self).value)
            } catch let error as JSONGrammar.Unsupported {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.description))
            }
        }
    }

    /// The grammar for a JSON schema; a 400 naming what the schema uses that it cannot express.
    static func grammar(schema: Any) throws -> String {
        do {
            return try JSONGrammar.gbnf(schema: schema)
        } catch {
            throw AgentError.badRequest("'format': \(error)")
        }
    }
}

/// Any JSON value, decoded into Foundation's types (for a JSON schema).
struct FreeJSON: Decodable {
    var value: Any

    init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { value = NSNull() }
        else if let flag = try? container.decode(Bool.self) { value = flag }
        else if let number = try? container.decode(Int.self) { value = number }
        else if let number = try? container.decode(Double.self) { value = number }
        else if let text = try? container.decode(String.self) { value = text }
        else if let array = try? container.decode([FreeJSON].self) { value = array.map(\.value) }
        else { value = try container.decode([String: FreeJSON].self).mapValues(\.value) }
    }
}

/// Any JSON value, for GGUF metadata in `/api/show` and tool calls' arguments.
enum JSONValue: Encodable, Sendable {
    case string(String), number(Double), integer(Int), bool(Bool), array([JSONValue]), object([String: JSONValue]), null

    /// A value JSONSerialization decoded.
    init(decoded value: Any) {
        switch value {
        case let text as String: self = .string(text)
        // JSONSerialization's booleans are NSNumbers of type "c", which also cast to Int.
        case let number as NSNumber where String(cString: number.objCType) == "c": self = .bool(number.boolValue)
        case let number as NSNumber where String(cString: number.objCType) == "d": self = .number(number.doubleValue)
        case let number as NSNumber: self = .integer(number.intValue)
        case let array as [Any]: self = .array(array.map(JSONValue.init(decoded:)))
        case let object as [String: Any]: self = .object(object.mapValues(JSONValue.init(decoded:)))
        default: self = .null
        }
    }

    init(_ value: GGUFValue) {
        switch value {
        case .string(let text): self = .string(text)
        case .bool(let flag): self = .bool(flag)
        case .float32(let number): self = .number(Double(number))
        case .float64(let number): self = .number(number)
        case .int8(let v): self = .number(Double(v))
        case .int16(let v): self = .number(Double(v))
        case .int32(let v): self = .number(Double(v))
        case .int64(let v): self = .number(Double(v))
        case .array(let array): self = .array(array.elements.map(JSONValue.init))
        default: self = .number(Double(value.unsignedInteger ?? 0))
        }
    }

    func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .string(let text): try container.encode(text)
        case .number(let number): try container.encode(number)
        case .bool(let flag): try container.encode(flag)
        case .array(let values): try container.encode(values)
        case .integer(let number): try container.encode(number)
        case .object(let values): try container.encode(values)
        case .null: try container.encodeNil()
        }
    }
}
