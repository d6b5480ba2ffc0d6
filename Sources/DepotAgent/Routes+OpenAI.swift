import DepotHTTP
import Foundation
import Hummingbird
import ModelRuntime
import ModelStore
import NIOCore

/// The OpenAI-compatible API that Ollama and llama.cpp's server also offer, for the OpenAI SDKs
/// and the editors built on them: models, and chat completions streamed as server-sent events.
extension Agent {
    struct OpenAIModel: Encodable {
        var id: String
        var object = "model"
        var created: Int
        var owned_by = "depot"
    }

    struct ChatCompletionRequest: Decodable {
        struct Message: Decodable {
            var role: String
            var content: Content?
            var tool_calls: [ToolCallIn]?
        }

        /// A call an earlier answer made, as the client sends it back (arguments as JSON text).
        struct ToolCallIn: Decodable {
            struct Function: Decodable {
                var name: String
                var arguments: String?
            }
            var function: Function
        }

        /// "none", "auto", "required", or `{"type": "function", "function": {"name": …}}`.
        enum ToolChoice: Decodable {
            case forbidden, automatic, required, named(String)

            init(from decoder: Decoder) throws {
                let container = try decoder.singleValueContainer()
                if let word = try? container.decode(String.self) {
                    switch word {
                    case "none": self = .forbidden
                    case "auto": self = .automatic
                    case "required": self = .required
                    default: throw DecodingError.dataCorruptedError(in: container, debugDescription: "'tool_choice' is none, auto, required or a function")
                    }
                    return
                }
                struct Named: Decodable { struct Function: Decodable { var name: String }; var function: Function }
                self = .named(try container.decode(Named.self).function.name)
            }
        }

        /// A message's content: text, or parts of which only text is taken here.
        struct Content: Decodable {
            var text: String

            init(from decoder: Decoder) throws {
                let container = try decoder.singleValueContainer()
                if let text = try? container.decode(String.self) {
                    self.text = text
                    return
                }
                struct Part: Decodable { var type: String; var text: String? }
                let parts = try container.decode([Part].self)
                guard parts.allSatisfy({ $0.type == "text" }) else {
                    throw DecodingError.dataCorruptedError(in: container, debugDescription: "only text parts are supported yet")
                }
                text = parts.compactMap(\.text).joined()
            }
        }

        struct StreamOptions: Decodable { var include_usage: Bool? }

        var model: String
        var messages: [Message]
        var stream: Bool?
        var stream_options: StreamOptions?
        var max_tokens: Int?
        var max_completion_tokens: Int?
        var temperature: Float?
        var top_p: Float?
        var seed: Int?
        var stop: Texts?
        var frequency_penalty: Float?
        var presence_penalty: Float?
        var tools: [FreeJSON]?
        var tool_choice: ToolChoice?
        var response_format: ResponseFormat?

        /// `{"type": "text" | "json_object"}`, or `{"type": "json_schema", "json_schema": {"schema": …}}`.
        struct ResponseFormat: Decodable {
            var type: String
            var json_schema: Schema?

            struct Schema: Decodable { var schema: FreeJSON? }

            /// The grammar the answer must follow, if any.
            func grammar() throws -> String? {
                switch type {
                case "text": return nil
                case "json_object": return JSONGrammar.anyJSON
                case "json_schema":
                    guard let schema = json_schema?.schema else { throw AgentError.badRequest("'response_format.json_schema.schema' is missing") }
                    return try OutputFormat.grammar(schema: schema.value)
                default: throw AgentError.badRequest("'response_format' type '\(type.prefix(40))' is not text, json_object or json_schema")
                }
            }
        }
    }

    struct Usage: Encodable {
        var prompt_tokens: Int
        var completion_tokens: Int
        var total_tokens: Int

        init(_ result: GenerationResult) {
            prompt_tokens = result.promptTokens
            completion_tokens = result.tokens.count
            total_tokens = result.promptTokens + result.tokens.count
        }
    }

    /// A call in an answer, as OpenAI gives it: arguments as JSON text. In a stream, `index`
    /// tells calls apart.
    struct ToolCallOut: Encodable {
        struct Function: Encodable {
            var name: String
            var arguments: String
        }
        var index: Int?
        var id: String
        var type = "function"
        var function: Function

        init(_ call: ToolCalling.Call, index: Int?) {
            self.index = index
            id = "call_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(24).lowercased()
            function = Function(name: call.name, arguments: call.arguments)
        }
    }

    struct ChatCompletion: Encodable {
        struct Message: Encodable {
            var role = "assistant"
            var content: String?
            var tool_calls: [ToolCallOut]?
        }
        struct Choice: Encodable {
            var index = 0
            var message: Message
            var finish_reason: String
        }
        var id: String
        var object = "chat.completion"
        var created: Int
        var model: String
        var choices: [Choice]
        var usage: Usage
    }

    struct ChatCompletionChunk: Encodable {
        struct Delta: Encodable {
            var role: String?
            var content: String?
            var tool_calls: [ToolCallOut]?
        }
        struct Choice: Encodable {
            var index = 0
            var delta: Delta
            var finish_reason: String?
        }
        var id: String
        var object = "chat.completion.chunk"
        var created: Int
        var model: String
        var choices: [Choice]
        var usage: Usage?
    }

    func addOpenAIRoutes(to router: Router<AgentRequestContext>) {
        let v1 = router.group("/v1").add(middleware: OpenAIErrorMiddleware())
        v1.get("/models") { _, _ in JSON.response(OpenAIModelList(data: try self.manager.list().map(self.openAIModel))) }
        v1.get("/models/**") { request, _ in
            let id = String(request.uri.path.dropFirst("/v1/models/".count)).removingPercentEncoding ?? ""
            return JSON.response(self.openAIModel(try self.installed(id)))
        }
        v1.post("/chat/completions") { request, context in
            let body = try await JSON.decode(ChatCompletionRequest.self, from: request, context: context)
            return try await self.chatCompletion(body)
        }
        v1.post("/completions") { request, context in
            let body = try await JSON.decode(CompletionRequest.self, from: request, context: context)
            return try await self.completion(body)
        }
        v1.post("/embeddings") { request, context in
            try await self.openAIEmbeddings(try await JSON.decode(OpenAIEmbeddingsRequest.self, from: request, context: context))
        }
    }

    /// `POST /v1/completions` (the older text API, which some editors still use): the prompt
    /// as it is, no template.
    struct CompletionRequest: Decodable {
        var model: String
        var prompt: Texts
        var stream: Bool?
        var max_tokens: Int?
        var temperature: Float?
        var top_p: Float?
        var seed: Int?
        var stop: Texts?
        var suffix: GivenField?
        var echo: Bool?
    }

    struct Completion: Encodable {
        struct Choice: Encodable {
            var text: String
            var index = 0
            var logprobs: String?
            var finish_reason: String?
        }
        var id: String
        var object = "text_completion"
        var created: Int
        var model: String
        var choices: [Choice]
        var usage: Usage?
    }

    func completion(_ body: CompletionRequest) async throws -> Response {
        guard body.prompt.texts.count == 1, let prompt = body.prompt.texts.first else {
            throw AgentError.badRequest("'prompt' must be one text (several at once are not supported yet)")
        }
        if body.suffix?.isSet == true { throw AgentError.badRequest("'suffix' is not supported yet") }
        if body.echo == true { throw AgentError.badRequest("'echo' is not supported yet") }
        let name = try await loaded(body.model).name
        var options = GenerationOptions()
        options.maximumTokens = body.max_tokens ?? 16  // OpenAI's default for this API
        options.sample(temperature: body.temperature, topP: body.top_p, seed: body.seed, stop: body.stop)
        let (id, created) = ("cmpl-" + UUID().uuidString.lowercased(), Int(Date().timeIntervalSince1970))
        guard body.stream ?? false else {
            let result = try await runtime.generate(model: name, prompt: prompt, options: options)
            metrics.recordGeneration(tokens: result.tokens.count)
            return JSON.response(Completion(id: id, created: created, model: name,
                                            choices: [.init(text: result.text, finish_reason: result.doneReason)], usage: Usage(result)))
        }
        let generation = options
        return serverSentEvents { output, event in
            let result = try await self.runtime.generate(model: name, prompt: prompt, options: generation) { piece in
                if case .terminated = output.yield(event(Completion(id: id, created: created, model: name, choices: [.init(text: piece)]))) {
                    return false
                }
                return true
            }
            self.metrics.recordGeneration(tokens: result.tokens.count)
            output.yield(event(Completion(id: id, created: created, model: name, choices: [.init(text: "", finish_reason: result.doneReason)])))
        }
    }

    /// A `text/event-stream` of `data:` events that `produce` yields, ending with `[DONE]` (an
    /// error becomes an event in OpenAI's error shape first).
    func serverSentEvents(_ produce: @escaping @Sendable (AsyncStream<ByteBuffer>.Continuation, @escaping @Sendable (any Encodable) -> ByteBuffer) async throws -> Void) -> Response {
        let (events, output) = AsyncStream<ByteBuffer>.makeStream()
        let event: @Sendable (any Encodable) -> ByteBuffer = { value in
            var line = ByteBuffer(string: "data: ")
            var json = JSON.body(value)
            line.writeBuffer(&json)
            line.writeString("\n\n")
            return line
        }
        Task {
            do { try await produce(output, event) } catch {
                output.yield(event(OpenAIError(Agent.apiError(error))))
            }
            output.yield(ByteBuffer(string: "data: [DONE]\n\n"))
            output.finish()
        }
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
                        body: ResponseBody(asyncSequence: events))
    }

    struct OpenAIModelList: Encodable {
        var object = "list"
        var data: [OpenAIModel]
    }

    func openAIModel(_ entry: ModelEntry) -> OpenAIModel {
        OpenAIModel(id: entry.name, created: Int(entry.createdAt.timeIntervalSince1970))
    }

    /// `POST /v1/chat/completions`: as /api/chat, in OpenAI's shapes. `tool_choice` required
    /// or naming a function holds the answer to such a call by grammar.
    func chatCompletion(_ body: ChatCompletionRequest) async throws -> Response {
        let given = body.messages.map { message in
            ToolCalling.Message(role: message.role, content: message.content?.text ?? "", calls: (message.tool_calls ?? []).map {
                ToolCalling.Call(name: $0.function.name, arguments: $0.function.arguments ?? "{}")
            })
        }
        guard !given.isEmpty else { throw AgentError.badRequest("'messages' must hold at least one message") }
        let entry = try installed(body.model)
        let tools = try toolCalling(body.tools, for: entry)
        let messages = tools?.render(given) ?? given.map { ChatMessage(role: $0.role, content: $0.content) }
        var grammar = try body.response_format?.grammar()
        if let tools, let choice = body.tool_choice {
            let forced: String?? = switch choice {
            case .required: .some(nil)
            case .named(let name): .some(name)
            case .forbidden, .automatic: nil
            }
            if let forced {
                guard grammar == nil else { throw AgentError.badRequest("'response_format' and a required tool call cannot both hold the answer") }
                grammar = try tools.grammar(calling: forced)
            }
        }
        // With tool_choice none the tools are described (the conversation may hold calls) but
        // the answer is text.
        var parsesCalls = tools != nil
        if case .forbidden? = body.tool_choice { parsesCalls = false }
        let calls = parsesCalls ? ToolCallStream() : nil
        let name = try await loaded(entry).name
        var options = GenerationOptions()
        options.maximumTokens = body.max_completion_tokens ?? body.max_tokens ?? Int.max
        options.sample(temperature: body.temperature, topP: body.top_p, seed: body.seed, stop: body.stop)
        try options.penalize(repeat: nil, frequency: body.frequency_penalty, presence: body.presence_penalty)
        options.grammar = grammar
        let (id, created) = ("chatcmpl-" + UUID().uuidString.lowercased(), Int(Date().timeIntervalSince1970))
        let finishReason = { @Sendable (result: GenerationResult, called: Bool) in called ? "tool_calls" : result.doneReason }
        guard body.stream ?? false else {
            let result = try await runtime.chat(model: name, messages: messages, options: options)
            metrics.recordGeneration(tokens: result.tokens.count)
            let (text, made) = calls?.all(result.text) ?? (result.text, [])
            let message = ChatCompletion.Message(content: made.isEmpty || !text.isEmpty ? text : nil,
                                                 tool_calls: made.isEmpty ? nil : made.map { ToolCallOut($0, index: nil) })
            return JSON.response(ChatCompletion(id: id, created: created, model: name, choices: [
                .init(message: message, finish_reason: finishReason(result, !made.isEmpty))], usage: Usage(result)))
        }
        let (includeUsage, generation) = (body.stream_options?.include_usage ?? false, options)
        return serverSentEvents { output, event in
            let made = Counter()
            let send = { @Sendable (piece: (text: String, calls: [ToolCalling.Call])) -> Bool in
                let (text, called) = piece
                guard !text.isEmpty || !called.isEmpty else { return true }
                let first = made.add(called.count)
                let delta = ChatCompletionChunk.Delta(content: text.isEmpty ? nil : text, tool_calls: called.isEmpty ? nil
                    : called.enumerated().map { ToolCallOut($1, index: first + $0) })
                if case .terminated = output.yield(event(ChatCompletionChunk(id: id, created: created, model: name, choices: [.init(delta: delta)]))) {
                    return false
                }
                return true
            }
            output.yield(event(ChatCompletionChunk(id: id, created: created, model: name, choices: [.init(delta: .init(role: "assistant", content: ""))])))
            let result = try await self.runtime.chat(model: name, messages: messages, options: generation) { piece in
                send(calls?.feed(piece) ?? (piece, []))
            }
            if let calls { _ = send(calls.finish()) }
            self.metrics.recordGeneration(tokens: result.tokens.count)
            output.yield(event(ChatCompletionChunk(id: id, created: created, model: name,
                                                   choices: [.init(delta: .init(), finish_reason: finishReason(result, made.value > 0))])))
            if includeUsage {
                output.yield(event(ChatCompletionChunk(id: id, created: created, model: name, choices: [], usage: Usage(result))))
            }
        }
    }
}

/// Tool calls sent so far in a stream.
private final class Counter: @unchecked Sendable {
    // Guarded by `lock`.
    private var count = 0
    private let lock = NSLock()

    /// Adds `more`; the count before.
    func add(_ more: Int) -> Int { lock.withLock { defer { count += more }; return count } }
    var value: Int { lock.withLock { count } }
}

/// OpenAI's error body: `{"error": {"message", "type", "param", "code"}}`.
struct OpenAIError: Encodable {
    struct Detail: Encodable {
        var message: String
        var type: String
        var param: String?
        var code: String?
    }
    var error: Detail

    init(_ error: APIError) {
        self.error = Detail(message: error.message, type: error.status.code < 500 ? "invalid_request_error" : "server_error",
                            param: nil, code: error.status == .notFound ? "model_not_found" : nil)
    }
}

/// Gives the /v1 routes' errors OpenAI's shape (the SDKs read `error.message`).
struct OpenAIErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do { return try await next(request, context) } catch {
            let failure = Agent.apiError(error)
            return JSON.response(OpenAIError(failure), status: failure.status)
        }
    }
}
