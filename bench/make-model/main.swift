import Foundation
import GGUF

// Writes a llama model with random weights for benchmarks: make-model PATH SEED SIZE
// (SIZE: "tiny", about 150 KB, or "medium", about 490 MB, which takes llama.cpp a
// measurable time to load).
let arguments = CommandLine.arguments
guard arguments.count == 4, let seed = UInt64(arguments[2]), ["tiny", "medium"].contains(arguments[3]) else {
    print("usage: make-model PATH SEED tiny|medium")
    exit(64)
}
var shape = TinyModels.LlamaShape()
if arguments[3] == "medium" {
    shape.embedding = 1024
    shape.feedForward = 4096
    shape.blocks = 8
    shape.heads = 16
    shape.kvHeads = 4
    shape.contextLength = 2048
}
try TinyModels.llama(name: "bench-\(seed)", seed: seed, shape: shape).write(to: arguments[1])
