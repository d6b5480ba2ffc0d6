import DepotHTTP
import Foundation
import Hummingbird
import ModelRuntime

/// Embeddings, as Ollama (`/api/embed`, the older `/api/embeddings`) and OpenAI (`/v1/embeddings`)
/// clients ask for them, from models whose GGUF names a pooling type.
extension Agent {
    /// `input`: one text or several.
    struct Texts: Decodable {
        var texts: [String]

        init(from decoder: Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let text = try? container.decode(String.self) { texts = [text] } else { texts = try container.decode([String].self) }
        }
    }

    struct EmbedRequest: Decodable {
        var model: String
        var input: Texts?
        var truncate: Bool?
        var dimensions: Int?
        var keepAlive: KeepAlive?

        enum CodingKeys: String, CodingKey { case model, input, truncate, dimensions, keepAlive = "keep_alive" }
    }

    struct EmbedResponse: Encodable {
        var model: String
        var embeddings: [[Float]]
        var total_duration: Int64
        var load_duration: Int64
    }

    struct LegacyEmbeddingsRequest: Decodable {
        var model: String
        var prompt: String?
        var keepAlive: KeepAlive?

        enum CodingKeys: String, CodingKey { case model, prompt, keepAlive = "keep_alive" }
    }

    struct OpenAIEmbeddingsRequest: Decodable {
        var model: String
        var input: Texts
        var dimensions: Int?
        var encoding_format: String?
    }

    struct OpenAIEmbeddings: Encodable {
        struct Item: Encodable {
            var object = "embedding"
            var embedding: Vector
            var index: Int
        }
        /// Floats, or their little-endian float32 bytes in base64 (what the OpenAI SDKs ask for).
        enum Vector: Encodable {
            case floats([Float]), base64(String)
            func encode(to encoder: Encoder) throws {
                var container = encoder.singleValueContainer()
                switch self {
                case .floats(let values): try container.encode(values)
                case .base64(let text): try container.encode(text)
                }
            }
        }
        struct Usage: Encodable { var prompt_tokens = 0; var total_tokens = 0 }
        var object = "list"
        var data: [Item]
        var model: String
        var usage = Usage()
    }

    func addEmbeddingRoutes(to router: Router<AgentRequestContext>) {
        router.post("/api/embed") { request, context in
            let body = try await JSON.decode(EmbedRequest.self, from: request, context: context)
            let started = ContinuousClock.now
            let (name, loadDuration) = try await self.loaded(body.model)
            let vectors = try await self.runtime.embed(model: name, texts: body.input?.texts ?? [], truncate: body.truncate ?? true,
                                                       normalize: true, keepAlive: body.keepAlive.map(\.duration))
            return JSON.response(EmbedResponse(model: name, embeddings: try Self.shortened(vectors, to: body.dimensions),
                                               total_duration: (ContinuousClock.now - started).nanoseconds, load_duration: loadDuration.nanoseconds))
        }
        router.post("/api/embeddings") { request, context in
            let body = try await JSON.decode(LegacyEmbeddingsRequest.self, from: request, context: context)
            let (name, _) = try await self.loaded(body.model)
            guard let prompt = body.prompt, !prompt.isEmpty else { return JSON.response(["embedding": [Float]()]) }
            // The older call sends the pooled vector as the model makes it, not normalised (as Ollama does).
            let vectors = try await self.runtime.embed(model: name, texts: [prompt], normalize: false, keepAlive: body.keepAlive.map(\.duration))
            return JSON.response(["embedding": vectors.first ?? []])
        }
    }

    /// `POST /v1/embeddings` (registered with the other /v1 routes).
    func openAIEmbeddings(_ body: OpenAIEmbeddingsRequest) async throws -> Response {
        let format = body.encoding_format ?? "float"
        guard format == "float" || format == "base64" else { throw AgentError.badRequest("'encoding_format' must be float or base64") }
        let (name, _) = try await loaded(body.model)
        let vectors = try Self.shortened(try await runtime.embed(model: name, texts: body.input.texts, normalize: true), to: body.dimensions)
        return JSON.response(OpenAIEmbeddings(data: vectors.enumerated().map { index, vector in
            .init(embedding: format == "float" ? .floats(vector) : .base64(Self.littleEndianBase64(vector)), index: index)
        }, model: name))
    }

    /// The first `dimensions` of each vector, at unit length again (as Ollama and OpenAI do).
    static func shortened(_ vectors: [[Float]], to dimensions: Int?) throws -> [[Float]] {
        guard let dimensions else { return vectors }
        guard let size = vectors.first?.count, (1...size).contains(dimensions) else {
            throw AgentError.badRequest("'dimensions' must be 1 to the model's \(vectors.first?.count ?? 0)")
        }
        return vectors.map { ModelRuntime.unitLength(Array($0.prefix(dimensions))) }
    }

    static func littleEndianBase64(_ vector: [Float]) -> String {
        var bytes = Data(capacity: vector.count * 4)
        for value in vector { withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) } }
        return bytes.base64EncodedString()
    }
}
