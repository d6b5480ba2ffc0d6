/// Tiny but complete GGUF models with random weights, for tests that need real files.
///
/// The llama model has a byte-level SentencePiece vocabulary (three specials plus the 256
/// `<0xXX>` byte tokens), so llama.cpp can tokenize any text with it and generate.
public enum TinyModels {
    /// Shape of a tiny llama model.
    public struct LlamaShape: Sendable {
        public var embedding: UInt64 = 32
        public var feedForward: UInt64 = 64
        public var blocks: Int = 2
        public var heads: UInt64 = 4
        public var kvHeads: UInt64 = 2
        public var contextLength: UInt32 = 256
        /// `llama.pooling_type` (1 mean, 2 CLS, 3 last token): set, the model makes embeddings.
        public var poolingType: UInt32?
        /// `tokenizer.chat_template`: by default one llama.cpp does not know (so chat refuses
        /// it); `chatML` is one it applies.
        public var chatTemplate = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}assistant: "
        public init() {}
    }

    /// The ChatML template (Qwen's and many others'), as such models carry it.
    public static let chatML = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"

    /// ChatML with tool calls in the `<tool_call>` form (Qwen's and Hermes' way), our own
    /// short version of what such models carry.
    public static let chatMLWithTools = "{%- if tools %}{{ '<|im_start|>system\\n# Tools\\n<tools>' }}{% for tool in tools %}{{ tool | tojson }}{% endfor %}{{ '</tools>\\nCall one as <tool_call>{\"name\": …, \"arguments\": {…}}</tool_call><|im_end|>\\n' }}{%- endif %}" + chatML

    /// Number of tokens in the byte-level vocabulary.
    public static let vocabularySize: UInt64 = 259

    /// A llama model whose weights are drawn from `seed`; different seeds give different files.
    public static func llama(name: String = "tiny-llama", seed: UInt64 = 1, shape: LlamaShape = LlamaShape()) -> GGUFWriter {
        var writer = GGUFWriter()
        var random = SplitMix64(seed: seed)
        let (n, ff, vocab) = (shape.embedding, shape.feedForward, vocabularySize)
        let kv = n / shape.heads * shape.kvHeads
        writer.set("general.architecture", .string("llama"))
        writer.set("general.name", .string(name))
        writer.set("general.file_type", .uint32(0))
        writer.set("general.license", .string("mit"))
        writer.set("llama.context_length", .uint32(shape.contextLength))
        writer.set("llama.embedding_length", .uint32(UInt32(n)))
        writer.set("llama.block_count", .uint32(UInt32(shape.blocks)))
        writer.set("llama.feed_forward_length", .uint32(UInt32(ff)))
        writer.set("llama.attention.head_count", .uint32(UInt32(shape.heads)))
        writer.set("llama.attention.head_count_kv", .uint32(UInt32(shape.kvHeads)))
        if let pooling = shape.poolingType { writer.set("llama.pooling_type", .uint32(pooling)) }
        writer.set("llama.rope.dimension_count", .uint32(UInt32(n / shape.heads)))
        writer.set("llama.attention.layer_norm_rms_epsilon", .float32(1e-5))
        addByteVocabulary(to: &writer, chatTemplate: shape.chatTemplate)

        func matrix(_ name: String, _ columns: UInt64, _ rows: UInt64) {
            let values = (0..<columns * rows).map { _ in random.nextWeight() }
            try! writer.addTensor(name: name, dimensions: [columns, rows], floats: values)
        }
        func norm(_ name: String) {
            try! writer.addTensor(name: name, dimensions: [n], floats: Array(repeating: 1, count: Int(n)))
        }
        matrix("token_embd.weight", n, vocab)
        for block in 0..<shape.blocks {
            let prefix = "blk.\(block)."
            norm(prefix + "attn_norm.weight")
            matrix(prefix + "attn_q.weight", n, n)
            matrix(prefix + "attn_k.weight", n, kv)
            matrix(prefix + "attn_v.weight", n, kv)
            matrix(prefix + "attn_output.weight", n, n)
            norm(prefix + "ffn_norm.weight")
            matrix(prefix + "ffn_gate.weight", n, ff)
            matrix(prefix + "ffn_up.weight", n, ff)
            matrix(prefix + "ffn_down.weight", ff, n)
        }
        norm("output_norm.weight")
        matrix("output.weight", n, vocab)
        return writer
    }

    /// A llama model that answers `reply` (one token of its own) to any prompt ending in a line
    /// break, as ChatML's does, and then stops: a bigram model, each token's embedding one-hot
    /// and every block's weights zero, so the last token alone picks the next. For tests that
    /// need a known answer from real inference (a reply a web page must not run as HTML).
    public static func scripted(reply: String, chatTemplate: String = chatML) -> GGUFWriter {
        var writer = GGUFWriter()
        let tokenCount = vocabularySize + 1, replyToken = Int(vocabularySize), lineBreak = 3 + 0x0A, endOfText = 2
        // One-hot embeddings need a dimension per token; four heads of an even width.
        let n: UInt64 = (tokenCount + 7) / 8 * 8, ff: UInt64 = 8
        writer.set("general.architecture", .string("llama"))
        writer.set("general.name", .string("scripted"))
        writer.set("general.file_type", .uint32(0))
        writer.set("llama.context_length", .uint32(2048))
        writer.set("llama.embedding_length", .uint32(UInt32(n)))
        writer.set("llama.block_count", .uint32(1))
        writer.set("llama.feed_forward_length", .uint32(UInt32(ff)))
        writer.set("llama.attention.head_count", .uint32(4))
        writer.set("llama.attention.head_count_kv", .uint32(4))
        writer.set("llama.rope.dimension_count", .uint32(UInt32(n / 4)))
        writer.set("llama.attention.layer_norm_rms_epsilon", .float32(1e-5))
        addByteVocabulary(to: &writer, chatTemplate: chatTemplate, extra: [reply])
        func tensor(_ name: String, _ columns: UInt64, _ rows: UInt64, _ value: (Int, Int) -> Float = { _, _ in 0 }) {
            let values = (0..<Int(rows)).flatMap { row in (0..<Int(columns)).map { value(row, $0) } }
            try! writer.addTensor(name: name, dimensions: rows == 1 ? [columns] : [columns, rows], floats: values)
        }
        tensor("token_embd.weight", n, tokenCount) { token, dimension in token == dimension ? 1 : 0 }
        tensor("blk.0.attn_norm.weight", n, 1) { _, _ in 1 }
        for name in ["attn_q", "attn_k", "attn_v", "attn_output"] { tensor("blk.0.\(name).weight", n, n) }
        tensor("blk.0.ffn_norm.weight", n, 1) { _, _ in 1 }
        tensor("blk.0.ffn_gate.weight", n, ff)
        tensor("blk.0.ffn_up.weight", n, ff)
        tensor("blk.0.ffn_down.weight", ff, n)
        tensor("output_norm.weight", n, 1) { _, _ in 1 }
        // Row v scores token v as the next one: the reply after a line break, then the end.
        tensor("output.weight", n, tokenCount) { next, dimension in
            (next == replyToken && dimension == lineBreak) || (next == endOfText && dimension == replyToken) ? 20 : 0
        }
        return writer
    }

    /// A small multimodal projector (clip architecture, LLaVA-style "mlp" projector) with random
    /// weights, which llama.cpp's mtmd loads against a `llama` model whose embedding length is
    /// `textEmbedding`. The one encoder block is required to load but never run.
    public static func projector(seed: UInt64 = 7, imageSize: UInt32 = 32, patchSize: UInt32 = 8, width: UInt64 = 32,
                                 feedForward: UInt64 = 64, textEmbedding: UInt64 = LlamaShape().embedding) -> GGUFWriter {
        var writer = GGUFWriter()
        var random = SplitMix64(seed: seed)
        func weights(_ dimensions: [UInt64]) -> [Float] { (0..<dimensions.reduce(1, *)).map { _ in random.nextWeight() } }
        func tensor(_ name: String, _ dimensions: [UInt64]) { try! writer.addTensor(name: name, dimensions: dimensions, floats: weights(dimensions)) }
        writer.set("general.architecture", .string("clip"))
        writer.set("general.type", .string("mmproj"))
        writer.set("general.name", .string("tiny-projector"))
        writer.set("clip.has_vision_encoder", .bool(true))
        writer.set("clip.projector_type", .string("mlp"))
        writer.set("clip.vision.image_size", .uint32(imageSize))
        writer.set("clip.vision.patch_size", .uint32(patchSize))
        writer.set("clip.vision.embedding_length", .uint32(UInt32(width)))
        writer.set("clip.vision.feed_forward_length", .uint32(UInt32(feedForward)))
        writer.set("clip.vision.projection_dim", .uint32(UInt32(textEmbedding)))
        writer.set("clip.vision.block_count", .uint32(1))
        writer.set("clip.vision.attention.head_count", .uint32(4))
        writer.set("clip.vision.attention.layer_norm_epsilon", .float32(1e-6))
        writer.set("clip.vision.image_mean", .float32s([0.5, 0.5, 0.5]))
        writer.set("clip.vision.image_std", .float32s([0.5, 0.5, 0.5]))
        let patch = UInt64(patchSize)
        let patches = UInt64(imageSize / patchSize) * UInt64(imageSize / patchSize)
        tensor("v.patch_embd.weight", [patch, patch, 3, width])
        tensor("v.position_embd.weight", [width, patches])
        tensor("v.blk.0.attn_out.weight", [width, width])
        tensor("v.blk.0.ffn_up.weight", [width, feedForward])
        tensor("v.blk.0.ffn_down.weight", [feedForward, width])
        tensor("mm.0.weight", [width, width])
        tensor("mm.0.bias", [width])
        tensor("mm.2.weight", [width, textEmbedding])
        tensor("mm.2.bias", [textEmbedding])
        return writer
    }

    /// `extra`: whole-text tokens after the bytes.
    private static func addByteVocabulary(to writer: inout GGUFWriter, chatTemplate: String, extra: [String] = []) {
        let specials = ["<unk>", "<s>", "</s>"]
        let bytes = (0..<256).map { "<0x" + String($0, radix: 16, uppercase: true).leftPadded(to: 2) + ">" }
        writer.set("tokenizer.ggml.model", .string("llama"))
        writer.set("tokenizer.ggml.tokens", .strings(specials + bytes + extra))
        writer.set("tokenizer.ggml.scores", .float32s(Array(repeating: 0, count: specials.count + bytes.count + extra.count)))
        // Token types: 1 normal, 2 unknown, 3 control, 6 byte.
        writer.set("tokenizer.ggml.token_type", .int32s([2, 3, 3] + Array(repeating: 6, count: bytes.count) + Array(repeating: 1, count: extra.count)))
        writer.set("tokenizer.ggml.unknown_token_id", .uint32(0))
        writer.set("tokenizer.ggml.bos_token_id", .uint32(1))
        writer.set("tokenizer.ggml.eos_token_id", .uint32(2))
        writer.set("tokenizer.chat_template", .string(chatTemplate))
    }
}

/// A small deterministic generator, so fixtures are reproducible from their seed.
struct SplitMix64 {
    private var state: UInt64
    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A weight in [-0.1, 0.1): small enough that activations stay finite.
    mutating func nextWeight() -> Float {
        Float(next() >> 40) / Float(1 << 24) * 0.2 - 0.1
    }
}

extension String {
    func leftPadded(to width: Int) -> String {
        String(repeating: "0", count: max(0, width - count)) + self
    }
}
