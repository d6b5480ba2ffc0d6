import DepotTestSupport
import Foundation
import GGUF
import ModelStore
#if canImport(Glibc)
import Glibc
#endif

/// A fresh directory under /tmp for one test, removed by `remove()`.
struct Scratch {
    let path: String

    init() {
        path = "/tmp/depot-test-\(getpid())-\(UUID().uuidString.prefix(8))"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func remove() {
        _ = try? FileManager.default.removeItem(atPath: path)
    }

    var storeRoot: String { path + "/store" }

    func store(now: @escaping @Sendable () -> Date = { Date() }) throws -> ModelStore {
        try ModelStore(configuration: .init(root: storeRoot, now: now))
    }

    /// Writes a tiny llama model with weights from `seed`.
    @discardableResult
    func model(_ name: String, seed: UInt64 = 1) throws -> String {
        let file = path + "/" + name
        try TinyModels.llama(seed: seed).write(to: file)
        return file
    }

    @discardableResult
    func projector(_ name: String = "mmproj.gguf", seed: UInt64 = 7) throws -> String {
        let file = path + "/" + name
        try TinyModels.projector(seed: seed).write(to: file)
        return file
    }

    func write(_ name: String, _ bytes: [UInt8]) -> String {
        let file = path + "/" + name
        _ = FileManager.default.createFile(atPath: file, contents: Data(bytes))
        return file
    }

    func files(in relative: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: storeRoot + "/" + relative)) ?? []).sorted()
    }
}

/// A clock the test moves by hand.
final class TestClock: @unchecked Sendable {
    // Guarded by `lock`; tests read and advance it from several threads.
    private var current = Date(timeIntervalSince1970: 1_800_000_000)
    private let lock = NSLock()

    var now: @Sendable () -> Date { { self.lock.withLock { self.current } } }
    func advance(_ seconds: TimeInterval) { lock.withLock { current += seconds } }
}


func linkCount(_ path: String) -> Int {
    var info = stat()
    return stat(path, &info) == 0 ? Int(info.st_nlink) : 0
}

func inode(_ path: String) -> UInt64 {
    var info = stat()
    return stat(path, &info) == 0 ? UInt64(info.st_ino) : 0
}

func storeError(_ body: () throws -> Void) -> StoreError? {
    do { try body() } catch let error as StoreError { return error } catch { return nil }
    return nil
}
