import Foundation
import GGUF
import MeshProtocol

// libFuzzer's entry points (built only with DEPOT_FUZZ=1 and -sanitize=fuzzer; see bench/fuzz.sh).
// The first byte picks the decoder, the rest is its input: every input must decode or fail
// with a typed error, never crash, hang or take unbounded memory (and the heartbeat reader
// must agree with Foundation's decoder; the radio's chunk messages must re-encode to the same
// bytes).

/// Writes the seed corpus when $DEPOT_FUZZ_SEEDS names a directory: real files from our writer
/// and encoders, each behind its decoder's byte.
@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> CInt {
    guard let directory = ProcessInfo.processInfo.environment["DEPOT_FUZZ_SEEDS"] else { return 0 }
    var seeds: [[UInt8]] = []
    for seed in 1...3 {
        var shape = TinyModels.LlamaShape()
        shape.blocks = seed
        seeds.append([0] + TinyModels.llama(seed: UInt64(seed), shape: shape).encoded())
    }
    seeds.append([0] + TinyModels.projector().encoded())
    let identity = MeshIdentity()
    let record = NearbyRecord(publicKey: identity.key.publicKey.rawRepresentation, sequence: 7, activeModel: "qwen2.5:7b", paramSize: 7,
                              currentLoad: 1, freeMemoryMB: 4096, host: "10.0.0.5", port: 4302)
    if let bytes = try? record.encoded(signedBy: identity) { seeds.append([1] + bytes) }
    let summary = CapabilitySummary(coordinatorId: identity.id, agentCount: 2,
                                    modelAvailability: ["qwen2.5:7b": .init(agentCount: 2, totalParamCapacity: 14, avgLoad: 0.5)], timestamp: Date())
    if let message = try? GossipMessage(signing: .init(origin: identity, originURL: "http://10.0.0.2:4310", sequence: 1, sentAt: Date(), summary: summary), by: identity),
       let json = try? JSONEncoder().encode(message) {
        seeds.append([2] + Array(json))
    }
    let heartbeat = Heartbeat(agentId: identity.id, platform: "linux", freeMemoryMB: 4096, address: "http://10.0.0.5:4302",
                              activeModel: "qwen2.5:7b", activeModelParamSize: 7.5, modelSwapInProgress: false, currentLoad: 1,
                              installedModels: [.init(name: "qwen2.5:7b", sha256: String(repeating: "ab", count: 32), sizeBytes: 1 << 32)],
                              seeding: SeedingPolicy(maximumUploads: 4, bytesPerSecond: nil))
    if let json = try? JSONEncoder().encode(heartbeat) { seeds.append([4] + Array(json)) }
    let digest = Data(repeating: 0xAB, count: 32)
    for message in [ChunkMessage.pieceRequest(stream: 1, sha256: digest, piece: 3, offset: 0, length: 1 << 20),
                    .pieceData(stream: 1, piece: 3, offset: 499, bytes: Array(repeating: 9, count: 499)),
                    .haveMapSlice(stream: 2, .init(sha256: digest, size: 1 << 30, pieceSize: 1 << 20, complete: false, firstByte: 0,
                                                   bytes: Array(repeating: 0xF0, count: 128)))] {
        if let bytes = try? message.encoded() { seeds.append([3] + bytes) }
    }
    for (index, seed) in seeds.enumerated() {
        FileManager.default.createFile(atPath: "\(directory)/seed-\(index)", contents: Data(seed))
    }
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ start: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    guard count > 0 else { return 0 }
    let input = Array(UnsafeBufferPointer(start: start + 1, count: count - 1))
    switch start[0] % 5 {
    case 0: _ = try? GGUFReader.read(bytes: input)
    case 1: _ = try? NearbyRecord(decoding: input)
    case 2: _ = try? GossipMessage.decoder.decode(GossipMessage.self, from: Data(input))
    case 3:
        // The radio's chunk messages are canonical: what decodes encodes to the same bytes.
        if let message = try? ChunkMessage(decoding: input), (try? message.encoded()) != input {
            fatalError("a chunk message re-encodes differently: \(input)")
        }
    default:
        // The coordinator's direct heartbeat reader must never take a body differently from
        // Foundation's decoder.
        if let read = HeartbeatReader.read(input), read != (try? JSONDecoder().decode(Heartbeat.self, from: Data(input))) {
            fatalError("HeartbeatReader took a body the decoder reads otherwise: \(String(decoding: input, as: UTF8.self))")
        }
    }
    return 0
}
