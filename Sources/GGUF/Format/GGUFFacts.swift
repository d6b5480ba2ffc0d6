/// What a model manager shows about a GGUF file, derived from its header.
public struct GGUFFacts: Codable, Sendable, Equatable {
    /// `general.architecture`, e.g. `llama`, `qwen2`, `clip`.
    public var architecture: String?
    /// `general.name`, when the file has one.
    public var name: String?
    /// Total elements over all tensors.
    public var parameterCount: UInt64
    /// Quantization label, e.g. `Q4_K_M`, `Q8_0`, `F16`.
    public var quantization: String?
    /// Context length the model was trained for.
    public var contextLength: UInt64?
    /// Embedding width.
    public var embeddingLength: UInt64?
    /// Number of transformer blocks.
    public var blockCount: UInt64?
    /// Attention heads (the largest, when it varies per layer).
    public var headCount: UInt64?
    /// Key/value heads (the largest, when it varies per layer).
    public var headCountKV: UInt64?
    /// `tokenizer.ggml.model`, e.g. `llama` or `gpt2`.
    public var tokenizerModel: String?
    /// Whether `tokenizer.chat_template` is present.
    public var hasChatTemplate: Bool
    /// Whether this is a multimodal projector (clip / mmproj) rather than a language model.
    public var isProjector: Bool
    /// `general.license`, when given.
    public var license: String?
    /// `general.size_label`, e.g. `1.5B`, when given.
    public var sizeLabel: String?
    /// Number of tensors.
    public var tensorCount: Int
    /// Position of this file among the shards of a split model (0-based), from `split.no`.
    public var splitIndex: Int?
    /// Number of shards of a split model, from `split.count`.
    public var splitCount: Int?

    /// A short human label for the parameter count, e.g. `1.5B` or `170K`.
    public var parameterLabel: String {
        let count = Double(parameterCount)
        for (scale, suffix) in [(1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")] where count >= scale {
            let value = count / scale
            return (value >= 100 ? String(Int(value.rounded())) : String(Double(Int(value * 10)) / 10)) + suffix
        }
        return String(parameterCount)
    }

    init(file: GGUFFile) {
        let architecture = file["general.architecture"]?.string
        func archValue(_ suffix: String) -> GGUFValue? {
            architecture.flatMap { file["\($0).\(suffix)"] }
        }
        self.architecture = architecture
        name = file["general.name"]?.string
        parameterCount = file.tensors.reduce(0) { $0 &+ $1.elementCount }
        quantization = Self.quantization(of: file)
        contextLength = archValue("context_length")?.unsignedInteger
        embeddingLength = archValue("embedding_length")?.unsignedInteger
        blockCount = archValue("block_count")?.unsignedInteger
        headCount = Self.largest(archValue("attention.head_count"))
        headCountKV = Self.largest(archValue("attention.head_count_kv"))
        tokenizerModel = file["tokenizer.ggml.model"]?.string
        hasChatTemplate = file["tokenizer.chat_template"] != nil
        isProjector = architecture == "clip" || file["general.type"]?.string == "mmproj"
            || file["clip.projector_type"] != nil || file["clip.has_vision_encoder"]?.bool == true
        license = file["general.license"]?.string
        sizeLabel = file["general.size_label"]?.string
        tensorCount = file.tensors.count
        splitIndex = file["split.no"]?.unsignedInteger.flatMap { Int(exactly: $0) }
        splitCount = file["split.count"]?.unsignedInteger.flatMap { Int(exactly: $0) }
    }

    /// Facts of a split model: this shard's header facts with counts summed over all shards.
    public func combined(withShards shards: [GGUFFacts]) -> GGUFFacts {
        var total = self
        total.parameterCount = shards.reduce(0) { $0 &+ $1.parameterCount }
        total.tensorCount = shards.reduce(0) { $0 + $1.tensorCount }
        return total
    }

    /// A per-layer value may be an array; the largest element stands for it.
    private static func largest(_ value: GGUFValue?) -> UInt64? {
        if let elements = value?.arrayElements { return elements.compactMap(\.unsignedInteger).max() }
        return value?.unsignedInteger
    }

    /// `general.file_type` when it is known, else the type holding most elements among
    /// matrices (1-D tensors such as norms stay F32 in every quantization).
    private static func quantization(of file: GGUFFile) -> String? {
        if let fileType = file["general.file_type"]?.unsignedInteger, let label = FileType.label(fileType) {
            return label
        }
        let matrices = file.tensors.filter { $0.dimensions.count > 1 }
        var elementsByType: [GGMLType: UInt64] = [:]
        for tensor in matrices.isEmpty ? file.tensors : matrices {
            elementsByType[tensor.type, default: 0] &+= tensor.elementCount
        }
        return elementsByType.max { ($0.value, $1.key.rawValue) < ($1.value, $0.key.rawValue) }?.key.label
    }
}
