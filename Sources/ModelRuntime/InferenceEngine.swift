import Foundation

/// The files of one model to load, as the store holds them.
public struct ModelFiles: Sendable, Equatable {
    public var name: String
    public var weights: String
    public var projector: String?
    /// Parameters in billions, when known (for status reports).
    public var paramSize: Double?
    /// Memory the model needs; estimated from the file sizes when nil.
    public var requiredMemoryBytes: UInt64?

    public init(name: String, weights: String, projector: String? = nil, paramSize: Double? = nil,
                requiredMemoryBytes: UInt64? = nil) {
        self.name = name
        self.weights = weights
        self.projector = projector
        self.paramSize = paramSize
        self.requiredMemoryBytes = requiredMemoryBytes
    }
}

/// How to generate.
public struct GenerationOptions: Sendable, Equatable {
    /// Most tokens to generate (Ollama's num_predict).
    public var maximumTokens = 128
    /// 0 picks the most likely token every time (deterministic).
    public var temperature: Float = 0.8
    public var topK: Int32 = 40
    public var topP: Float = 0.9
    public var seed: UInt32 = 0xFFFF_FFFF
    /// Whether the prompt gets the model's begin-of-sequence token.
    public var addSpecialTokens = true
    /// Text that ends the answer where it appears (it is not part of the answer).
    public var stop: [String] = []
    /// Penalties for tokens among the last `penaltyWindow` generated (1 and 0: none).
    public var repeatPenalty: Float = 1
    public var frequencyPenalty: Float = 0
    public var presencePenalty: Float = 0
    public var penaltyWindow: Int32 = 64
    /// A GBNF grammar the output must follow (`JSONGrammar`), from its `root` rule.
    public var grammar: String?
    /// Fill in the middle: the answer goes between the prompt and this text, by the model's
    /// FIM tokens (prefix, suffix, middle), with no chat template.
    public var suffix: String?
    /// Tokens the prompt and the answer may take together (Ollama's num_ctx), within the
    /// loaded context; nil: the whole context.
    public var contextLimit: Int?
    /// Keeps tokens whose probability is at least this share of the likeliest's (0: off).
    public var minP: Float = 0
    /// Locally typical sampling (1: off).
    public var typicalP: Float = 1
    /// Mirostat 1 or 2 with its target surprise (tau) and learning rate (eta); 0: off.
    public var mirostat: Int = 0
    public var mirostatTau: Float = 5
    public var mirostatEta: Float = 0.1

    public init() {}
}

/// What a generation produced and how long it took.
public struct GenerationResult: Sendable, Equatable {
    public var text: String
    public var tokens: [Int32]
    public var promptTokens: Int
    /// "stop" (end of sequence) or "length" (maximumTokens reached).
    public var doneReason: String
    public var promptDuration: Duration
    public var generationDuration: Duration
}

/// One message of a chat: its role ("system", "user", "assistant", ...) and text.
public struct ChatMessage: Sendable, Equatable {
    public var role: String
    public var content: String

    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

/// A loaded model that can generate; used from one thread at a time.
public protocol LoadedModel: AnyObject, Sendable {
    /// Generates after `prompt`, passing each new piece of text to `onPiece` (false stops).
    func generate(prompt: String, options: GenerationOptions,
                  onPiece: (String) -> Bool) throws(RuntimeError) -> GenerationResult
    /// The prompt for `messages` by the model's own chat template, ending where the
    /// assistant's answer starts.
    func chatPrompt(_ messages: [ChatMessage]) throws(RuntimeError) -> String
    /// One embedding a text, as the model pools it (not normalised).
    func embed(_ texts: [String], truncate: Bool) throws(RuntimeError) -> [[Float]]
}

/// Loads models; the llama.cpp backend is `LlamaEngine`.
public protocol InferenceEngine: Sendable {
    func load(_ files: ModelFiles) throws(RuntimeError) -> any LoadedModel
}

/// Memory this machine can give a model now (MemAvailable on Linux).
public enum SystemMemory {
    public static func availableBytes() -> UInt64 {
        guard let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("MemAvailable:") }),
              let kilobytes = UInt64(line.split(separator: " ").dropFirst().first ?? "") else {
            return ProcessInfo.processInfo.physicalMemory
        }
        return kilobytes * 1024
    }
}
