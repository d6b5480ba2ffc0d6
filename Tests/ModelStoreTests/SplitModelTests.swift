import Foundation
import GGUF
import Testing
@testable import ModelStore

@Suite struct SplitModelTests {
    /// Writes `count` shards named as llama.cpp names them; shard i holds a tensor of 32×(i+1) floats.
    func writeShards(_ scratch: Scratch, count: Int, prefix: String = "Big-Model-Q8_0") throws -> [String] {
        try (1...count).map { index in
            var writer = GGUFWriter()
            writer.set("general.architecture", .string("llama"))
            writer.set("general.file_type", .uint32(7))
            writer.set("split.no", .uint16(UInt16(index - 1)))
            writer.set("split.count", .uint16(UInt16(count)))
            writer.set("split.tensors.count", .int32(Int32(count)))
            try writer.addTensor(name: "t\(index)", dimensions: [32, UInt64(index)],
                                 floats: Array(repeating: Float(index), count: 32 * index))
            let path = SplitModel.path(prefix: scratch.path + "/" + prefix, index: index, count: count)
            try writer.write(to: path)
            return path
        }
    }

    @Test func allShardsBecomeOneEntry() throws {
        let scratch = Scratch()
        defer { scratch.remove() }
        let shards = try writeShards(scratch, count: 3)
        let store = try scratch.store()
        let result = try store.importModel(ImportRequest(weights: shards[1]))
        #expect(result.entry.name == "big-model:q8_0")
        #expect(result.entry.files.map(\.role) == [.shard, .shard, .shard])
        #expect(result.entry.files.map(\.shardIndex) == [0, 1, 2])
        #expect(result.entry.files.map(\.originalFilename) == shards.map { URL(fileURLWithPath: $0).lastPathComponent })
        #expect(result.entry.weights?.shardIndex == 0)
        #expect(result.entry.facts?.parameterCount == 32 * (1 + 2 + 3))
        #expect(result.entry.facts?.tensorCount == 3)
        #expect(scratch.files(in: "blobs/sha256").count == 3)

        let again = try store.importModel(ImportRequest(weights: shards[0]))
        #expect(!again.created)
        _ = try store.deleteModel(named: "big-model:q8_0")
        #expect(scratch.files(in: "blobs/sha256").isEmpty)
    }

    @Test func aMissingOrForeignShardIsRefused() throws {
        let scratch = Scratch()
        defer { scratch.remove() }
        let shards = try writeShards(scratch, count: 3)
        let store = try scratch.store()
        try FileManager.default.removeItem(atPath: shards[2])
        let missing = storeError { _ = try store.importModel(ImportRequest(weights: shards[0])) }
        #expect(missing?.code == .invalidInput)
        #expect(missing?.message.contains(shards[2]) == true)

        try FileManager.default.copyItem(atPath: shards[1], toPath: shards[2])
        let foreign = storeError { _ = try store.importModel(ImportRequest(weights: shards[0])) }
        #expect(foreign?.message.contains("do not belong together") == true)

        let renamed = scratch.path + "/renamed.gguf"
        try FileManager.default.copyItem(atPath: shards[0], toPath: renamed)
        #expect(storeError { _ = try store.importModel(ImportRequest(weights: renamed)) }?.code == .invalidInput)
        #expect(try store.listModels().isEmpty)
        #expect(scratch.files(in: "blobs/sha256").isEmpty)
    }

    @Test func shardNames() {
        #expect(SplitModel.parts(of: "/m/a-b-00002-of-00010.gguf")! == ("/m/a-b", 2, 10))
        #expect(SplitModel.parts(of: "/m/model.gguf") == nil)
        #expect(SplitModel.parts(of: "/m/x-2-of-3.gguf") == nil)
        #expect(SplitModel.path(prefix: "/m/a", index: 3, count: 12) == "/m/a-00003-of-00012.gguf")
    }
}
