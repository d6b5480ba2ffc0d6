/// Why the runtime could not load or run a model, with what to do next.
public struct RuntimeError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable, Codable {
        /// The file is missing, not a model llama.cpp can load, or its projector does not fit it.
        case loadFailed
        /// The machine lacks the free memory the model needs.
        case insufficientMemory
        /// No model is loaded, or another one is.
        case notLoaded
        /// A later swap request replaced this one before it started.
        case superseded
        /// Generation failed inside llama.cpp.
        case generationFailed
        /// The prompt does not fit the context.
        case promptTooLong
        /// The model has no chat template, or one llama.cpp cannot apply.
        case noChatTemplate
        /// The model does not make embeddings (no pooling type).
        case noEmbeddings
        /// The model has no fill-in-the-middle tokens.
        case noInfill
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
