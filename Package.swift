// swift-tools-version:6.0
import PackageDescription

// llama.cpp's headers and libraries, built by scripts/setup-llama into a cache it links here.
let llama = Context.packageDirectory + "/.llama"

let package = Package(
    name: "Depot",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "GGUF", targets: ["GGUF"]),
        .library(name: "ModelStore", targets: ["ModelStore"]),
        .library(name: "ModelTransfer", targets: ["ModelTransfer"]),
        .library(name: "ModelCatalog", targets: ["ModelCatalog"]),
        .library(name: "ModelRuntime", targets: ["ModelRuntime"]),
        .library(name: "MeshProtocol", targets: ["MeshProtocol"]),
        .library(name: "DepotHTTP", targets: ["DepotHTTP"]),
        .library(name: "DepotAgent", targets: ["DepotAgent"]),
        .library(name: "DepotMesh", targets: ["DepotMesh"]),
        .executable(name: "depot", targets: ["depot"]),
        .executable(name: "depot-chat-example", targets: ["depot-chat-example"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        // NIOHTTPTypes: the request parts a per-connection guard sees in Hummingbird's pipeline.
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        .target(name: "GGUF"),
        .target(
            name: "ModelStore",
            dependencies: [
                "GGUF",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        .target(
            name: "ModelTransfer",
            dependencies: [
                "GGUF",
                "ModelStore",
                "MeshProtocol",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        .target(
            name: "ModelCatalog",
            dependencies: [
                "ModelStore",
                "ModelTransfer",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .systemLibrary(name: "CLlama", path: "Sources/CLlama"),
        // The mesh's wire format and identities: what agents and coordinators both speak.
        .target(name: "MeshProtocol", dependencies: [.product(name: "Crypto", package: "swift-crypto")]),
        // What every Depot server shares: limits, browser boundary, tokens, JSON errors.
        .target(
            name: "DepotHTTP",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .target(
            name: "ModelRuntime",
            dependencies: ["CLlama", "GGUF", "ModelStore"],
            linkerSettings: [.unsafeFlags(["-L", llama + "/lib", "-Xlinker", "-rpath", "-Xlinker", llama + "/lib"])]
        ),
        .target(
            name: "DepotAgent",
            dependencies: [
                "GGUF",
                "ModelStore",
                "ModelTransfer",
                "ModelCatalog",
                "ModelRuntime",
                "MeshProtocol",
                "DepotHTTP",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            // The web UI is compiled into the binary: no files to install beside it.
            resources: [
                .embedInCode("Resources/ui/index.html"),
                .embedInCode("Resources/ui/app.js"),
                .embedInCode("Resources/ui/common.js"),
                .embedInCode("Resources/ui/panels.js"),
                .embedInCode("Resources/ui/storage.js"),
                .embedInCode("Resources/ui/style.css"),
            ]
        ),
        .target(
            name: "DepotMesh",
            dependencies: [
                "MeshProtocol",
                "DepotHTTP",
                "ModelStore",  // the store's name rules for model names in heartbeats
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "depot",
            dependencies: [
                "GGUF",
                "ModelStore",
                "ModelTransfer",
                "ModelCatalog",
                "ModelRuntime",
                "DepotAgent",
                "DepotMesh",
                "MeshProtocol",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // The example app of the README: a chat app that gets its model from Depot.
        .executableTarget(
            name: "depot-chat-example",
            dependencies: ["ModelTransfer", "ModelStore", "ModelRuntime",
                           .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Examples/chat"
        ),
        // Benchmark helper (bench/agent.sh): writes larger random llama models.
        .executableTarget(name: "make-model", dependencies: ["GGUF"], path: "bench/make-model"),
        // Benchmark helper (bench/mesh.sh, bench/federation.sh): registers made-up agents with their own keys.
        .executableTarget(
            name: "mesh-agents",
            dependencies: ["MeshProtocol", .product(name: "AsyncHTTPClient", package: "async-http-client"),
                           .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio")],
            path: "bench/mesh-agents"
        ),
        .testTarget(name: "GGUFTests", dependencies: ["GGUF"]),
        .testTarget(name: "ModelStoreTests", dependencies: ["ModelStore", "GGUF", "DepotTestSupport"]),
        .target(name: "DepotTestSupport", dependencies: ["MeshProtocol"], path: "Tests/Support"),
        .testTarget(name: "ModelTransferTests", dependencies: ["ModelTransfer", "ModelStore", "GGUF", "DepotTestSupport"]),
        .testTarget(name: "DepotMeshTests", dependencies: ["DepotMesh", "MeshProtocol", "DepotHTTP"]),
        .testTarget(name: "ModelRuntimeTests", dependencies: ["ModelRuntime", "GGUF", "DepotTestSupport"]),
        .testTarget(name: "ModelCatalogTests", dependencies: ["ModelCatalog", "ModelTransfer", "ModelStore", "DepotTestSupport"]),
        .testTarget(name: "DepotCLITests", dependencies: ["depot", "depot-chat-example", "ModelStore", "ModelTransfer", "GGUF", "MeshProtocol", "DepotTestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)

// The fuzz target (bench/fuzz.sh): libFuzzer supplies `main`, so it links only when built with
// -sanitize=fuzzer, and exists only when asked for.
if Context.environment["DEPOT_FUZZ"] == "1" {
    package.products.append(.executable(name: "depot-fuzz", targets: ["depot-fuzz"]))
    package.targets.append(.executableTarget(name: "depot-fuzz", dependencies: ["GGUF", "MeshProtocol"], path: "Fuzz/depot-fuzz",
                                             swiftSettings: [.unsafeFlags(["-parse-as-library"])]))
}
