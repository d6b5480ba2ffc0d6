/// Description of one tensor: where its data lies and what shape and type it has.
public struct GGUFTensorInfo: Sendable, Equatable {
    /// Tensor name, e.g. `blk.0.attn_q.weight`.
    public let name: String
    /// Dimensions, innermost first (ggml's `ne` order).
    public let dimensions: [UInt64]
    /// Element type.
    public let type: GGMLType
    /// Offset of the data, relative to the start of the data section.
    public let offset: UInt64

    /// Number of elements (product of the dimensions).
    public var elementCount: UInt64 { dimensions.reduce(1, *) }
    /// Bytes of tensor data; the reader has checked this does not overflow.
    public var dataSize: UInt64 { type.dataSize(elements: elementCount) ?? 0 }
}

/// A parsed GGUF header: metadata, tensor infos and the layout of the data section.
public struct GGUFFile: Sendable {
    /// Format version (2 or 3).
    public let version: UInt32
    /// Metadata in file order.
    public let metadata: [(key: String, value: GGUFValue)]
    /// Tensor infos in file order.
    public let tensors: [GGUFTensorInfo]
    /// Alignment of tensor data (`general.alignment`, default 32).
    public let alignment: UInt64
    /// Absolute offset where tensor data starts; everything before it is header.
    public let dataOffset: UInt64
    /// Size of the whole file in bytes.
    public let fileSize: UInt64

    private let index: [String: Int]

    init(version: UInt32, metadata: [(key: String, value: GGUFValue)], tensors: [GGUFTensorInfo],
         alignment: UInt64, dataOffset: UInt64, fileSize: UInt64) {
        self.version = version
        self.metadata = metadata
        self.tensors = tensors
        self.alignment = alignment
        self.dataOffset = dataOffset
        self.fileSize = fileSize
        var index: [String: Int] = [:]
        for (position, entry) in metadata.enumerated() { index[entry.key] = position }
        self.index = index
    }

    /// The metadata value for `key`, if present.
    public subscript(key: String) -> GGUFValue? {
        index[key].map { metadata[$0].value }
    }

    /// Facts a model manager shows: architecture, size, quantization and so on.
    public var facts: GGUFFacts { GGUFFacts(file: self) }
}
