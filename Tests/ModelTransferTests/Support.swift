import DepotTestSupport
import Foundation
import GGUF
import ModelStore
@testable import ModelTransfer
#if canImport(Glibc)
import Glibc
#endif

/// A scratch directory with a store, a folder the servers serve, and downloader settings
/// that keep tests fast (short stall timeout and back-off).
struct TransferScratch {
    let path = "/tmp/depot-transfer-\(getpid())-\(UUID().uuidString.prefix(8))"
    var served: String { path + "/www" }
    var storeRoot: String { path + "/store" }

    init() {
        try! FileManager.default.createDirectory(atPath: path + "/www", withIntermediateDirectories: true)
    }

    func remove() { _ = try? FileManager.default.removeItem(atPath: path) }

    func store() throws -> ModelStore { try ModelStore(root: storeRoot) }

    static var fastConfiguration: ModelDownloader.Configuration {
        var configuration = ModelDownloader.Configuration()
        configuration.connections = 4
        configuration.stallTimeout = .seconds(1)
        configuration.retryBaseDelay = .milliseconds(10)
        configuration.retryMaximumDelay = .milliseconds(100)
        configuration.maximumAttempts = 6
        configuration.minimumSplitBytes = 64 << 10
        configuration.checkpointBytes = 1 << 20
        return configuration
    }

    func downloader(_ configuration: ModelDownloader.Configuration = fastConfiguration) throws -> ModelDownloader {
        try ModelDownloader(store: store(), configuration: configuration)
    }

    /// A GGUF file of about `megabytes` MB whose bytes depend on `seed`; returns its SHA-256.
    @discardableResult
    func model(_ name: String, megabytes: Double = 2, seed: UInt64 = 1, in directory: String? = nil) throws -> String {
        var writer = GGUFWriter()
        writer.set("general.architecture", .string("llama"))
        writer.set("general.file_type", .uint32(7))
        let rows = max(1, UInt64(megabytes * 1024))
        var state = seed &* 0x9E37_79B9_7F4A_7C15
        let data = (0..<Int(rows) * 1024).map { _ -> UInt8 in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return UInt8(truncatingIfNeeded: state >> 56)
        }
        try writer.addTensor(name: "w", dimensions: [1024, rows], type: .i8, data: data)
        let file = (directory ?? served) + "/" + name
        try writer.write(to: file)
        return try sha256sum(file)
    }

    /// Every file under the store, recursively.
    func storeFiles() -> [String] {
        let enumerator = FileManager.default.enumerator(atPath: storeRoot)
        var files: [String] = []
        while let next = enumerator?.nextObject() as? String { files.append(storeRoot + "/" + next) }
        return files
    }
}


/// Waits until the downloader's journal shows part of a download on disk, then cancels `task`.
func interrupt<T>(_ task: Task<T, Error>, whenJournalOf downloader: ModelDownloader) async throws {
    let deadline = ContinuousClock.now + .seconds(30)
    while (try downloader.jobs().first?.completedBytes ?? 0) == 0 {
        guard ContinuousClock.now < deadline else { throw ServerFailure(message: "no progress was journaled in 30 s") }
        try await Task.sleep(for: .milliseconds(2))
    }
    task.cancel()
    _ = try? await task.value
}

func transferError(_ body: () async throws -> Void) async -> TransferError? {
    do { try await body() } catch let error as TransferError { return error } catch { return nil }
    return nil
}
