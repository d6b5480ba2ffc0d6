import Testing
@testable import GGUF

@Suite struct RoundTripTests {
    static func everyValueType() throws -> [(String, GGUFValue)] {
        let nested = try GGUFArray(elementType: .array, elements: [
            .array(try GGUFArray(elementType: .uint16, elements: [.uint16(1), .uint16(65535)])),
            .array(try GGUFArray(elementType: .uint16, elements: [])),
        ])
        return [
            ("t.u8", .uint8(200)), ("t.i8", .int8(-100)), ("t.u16", .uint16(60000)), ("t.i16", .int16(-30000)),
            ("t.u32", .uint32(4_000_000_000)), ("t.i32", .int32(-2_000_000_000)), ("t.f32", .float32(3.25)),
            ("t.bool", .bool(true)), ("t.false", .bool(false)), ("t.string", .string("héllo ✓")),
            ("t.empty", .string("")), ("t.u64", .uint64(UInt64.max)), ("t.i64", .int64(Int64.min)),
            ("t.f64", .float64(-1.5e300)), ("t.strings", .strings(["a", "", "ü"])), ("t.nested", .array(nested)),
        ]
    }

    @Test(arguments: [UInt32(2), 3])
    func everyMetadataTypeAndTensorReadsBack(version: UInt32) throws {
        var writer = GGUFWriter(version: version, alignment: 64)
        let values = try Self.everyValueType()
        for (key, value) in values { writer.set(key, value) }
        try writer.addTensor(name: "a", dimensions: [4, 3], floats: (0..<12).map(Float.init))
        try writer.addTensor(name: "q", dimensions: [64, 2], type: .q8_0, data: Array(repeating: 7, count: 4 * 34))
        let file = try GGUFReader.read(bytes: writer.encoded())

        #expect(file.version == version)
        #expect(file.alignment == 64)
        #expect(file["general.alignment"] == .uint32(64))
        for (key, value) in values { #expect(file[key] == value, "\(key)") }
        #expect(file.metadata.map(\.key) == ["general.alignment"] + values.map(\.0))
        #expect(file.tensors.map(\.name) == ["a", "q"])
        #expect(file.tensors[0].dimensions == [4, 3])
        #expect(file.tensors[0].type == .f32)
        #expect(file.tensors[1].type == .q8_0)
        #expect(file.tensors[1].dataSize == 4 * 34)
        #expect(file.dataOffset % 64 == 0)
        #expect(file.tensors.allSatisfy { $0.offset % 64 == 0 })
    }

    @Test func tensorDataLandsAtTheAdvertisedOffsets() throws {
        var writer = GGUFWriter()
        try writer.addTensor(name: "x", dimensions: [3], floats: [1, 2, 3])
        try writer.addTensor(name: "y", dimensions: [2], floats: [-4, 5])
        let bytes = writer.encoded()
        let file = try GGUFReader.read(bytes: bytes)
        func floats(_ tensor: GGUFTensorInfo) -> [Float] {
            let start = Int(file.dataOffset + tensor.offset)
            return (0..<Int(tensor.elementCount)).map { i in
                let b = bytes[(start + 4 * i)..<(start + 4 * i + 4)]
                return Float(bitPattern: b.reversed().reduce(0) { $0 << 8 | UInt32($1) })
            }
        }
        #expect(floats(file.tensors[0]) == [1, 2, 3])
        #expect(floats(file.tensors[1]) == [-4, 5])
    }

    @Test func writerRejectsDataThatDoesNotMatchTheShape() {
        var writer = GGUFWriter()
        #expect(throws: GGUFError.self) { try writer.addTensor(name: "x", dimensions: [4], floats: [1, 2, 3]) }
        #expect(throws: GGUFError.self) {
            try writer.addTensor(name: "q", dimensions: [31], type: .q4_0, data: Array(repeating: 0, count: 18))
        }
        #expect(throws: GGUFError.self) { try GGUFArray(elementType: .uint8, elements: [.int8(1)]) }
    }

    @Test func readsFromDiskOnlyTheHeader() throws {
        let path = "/tmp/depot-gguf-\(UInt64.random(in: 0...UInt64.max)).gguf"
        defer { unlinkFile(path) }
        try TinyModels.llama().write(to: path)
        let file = try GGUFReader.read(path: path)
        #expect(file.facts.architecture == "llama")
        #expect(file.dataOffset < file.fileSize)
    }
}

@Suite struct FactsTests {
    @Test func tinyLlamaFacts() throws {
        let facts = try GGUFReader.read(bytes: TinyModels.llama(name: "tiny").encoded()).facts
        #expect(facts.architecture == "llama")
        #expect(facts.name == "tiny")
        #expect(facts.quantization == "F32")
        #expect(facts.contextLength == 256)
        #expect(facts.embeddingLength == 32)
        #expect(facts.blockCount == 2)
        #expect(facts.headCount == 4)
        #expect(facts.headCountKV == 2)
        #expect(facts.tokenizerModel == "llama")
        #expect(facts.hasChatTemplate)
        #expect(!facts.isProjector)
        #expect(facts.license == "mit")
        // 2×(32×259) embeddings and output, 2 norms + 1 output norm of 32, per block q,o 32×32, k,v 32×16, ffn 3×32×64.
        let perBlock: UInt64 = 2 * 32 + 2 * 1024 + 2 * 512 + 3 * 2048
        #expect(facts.parameterCount == 2 * 32 * 259 + 32 + 2 * perBlock)
        #expect(facts.tensorCount == 3 + 2 * 9)
    }

    @Test func projectorIsRecognised() throws {
        let facts = try GGUFReader.read(bytes: TinyModels.projector().encoded()).facts
        #expect(facts.isProjector)
        #expect(facts.architecture == "clip")
    }

    @Test(arguments: [(UInt32(15), "Q4_K_M"), (7, "Q8_0"), (1, "F16"), (30, "IQ4_XS"), (32, "BF16")])
    func quantizationFromFileType(fileType: UInt32, label: String) throws {
        var writer = GGUFWriter()
        writer.set("general.file_type", .uint32(fileType))
        #expect(try GGUFReader.read(bytes: writer.encoded()).facts.quantization == label)
    }

    @Test func quantizationFromDominantMatrixType() throws {
        var writer = GGUFWriter()
        try writer.addTensor(name: "norm", dimensions: [4096], floats: Array(repeating: 1, count: 4096))
        try writer.addTensor(name: "w", dimensions: [256, 2], type: .q4_K, data: Array(repeating: 0, count: 2 * 144))
        try writer.addTensor(name: "v", dimensions: [32, 1], type: .q8_0, data: Array(repeating: 0, count: 34))
        #expect(try GGUFReader.read(bytes: writer.encoded()).facts.quantization == "Q4_K")
    }

    @Test func perLayerHeadCountsTakeTheLargest() throws {
        var writer = GGUFWriter()
        writer.set("general.architecture", .string("openelm"))
        writer.set("openelm.attention.head_count", .int32s([4, 8, 12]))
        #expect(try GGUFReader.read(bytes: writer.encoded()).facts.headCount == 12)
    }

    @Test func parameterLabel() throws {
        var facts = try GGUFReader.read(bytes: GGUFWriter().encoded()).facts
        facts.parameterCount = 1_543_714_304
        #expect(facts.parameterLabel == "1.5B")
        facts.parameterCount = 7_241_732_096
        #expect(facts.parameterLabel == "7.2B")
        facts.parameterCount = 170_000
        #expect(facts.parameterLabel == "170K")
    }

    @Test func differentSeedsGiveDifferentModels() {
        #expect(TinyModels.llama(seed: 1).encoded() != TinyModels.llama(seed: 2).encoded())
        #expect(TinyModels.llama(seed: 3).encoded() == TinyModels.llama(seed: 3).encoded())
    }
}
