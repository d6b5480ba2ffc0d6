import DepotTestSupport
import Foundation
import ModelStore
import Testing
@testable import ModelCatalog

func entryJSON(_ id: String, platform: String = "all", memory: Int = 1024, sha: String? = String(repeating: "a", count: 64),
               url: String = "https://cdn.example.com/m.gguf", extra: String = "") -> String {
    """
    {"modelId": "\(id)", "displayName": "\(id)", "paramSize": 1.5, "quantization": "Q4_K_M", "fileSizeBytes": 1000,
     "downloadUrl": "\(url)", \(sha.map { "\"checksumSha256\": \"\($0)\"," } ?? "") "platform": "\(platform)",
     "languages": ["swift"], "minMemoryMB": \(memory) \(extra)}
    """
}

func catalogJSON(version: Int = 1, _ entries: [String]) -> Data {
    Data("{\"version\": \(version), \"models\": [\(entries.joined(separator: ","))]}".utf8)
}

@Suite struct CatalogFormatTests {
    @Test func aGoodCatalogDecodes() throws {
        let catalog = try Catalog.decode(catalogJSON([
            entryJSON("qwen2.5-coder:1.5b"),
            entryJSON("llava:7b", extra: #", "projector": {"url": "https://cdn/p.gguf", "sizeBytes": 10}, "pieces": {"pieceSize": 500, "sha256": ["\#(String(repeating: "b", count: 64))", "\#(String(repeating: "c", count: 64))"]}"#),
        ]), source: "test")
        #expect(catalog.models.map(\.modelId) == ["qwen2.5-coder:1.5b", "llava:7b"])
        #expect(catalog.entry("llava:7b")?.projector?.url == "https://cdn/p.gguf")
        #expect(catalog.entry("llava:7b")?.pieces?.sha256.count == 2)
    }

    @Test(arguments: [
        (catalogJSON(version: 2, []), CatalogError.Code.unsupportedVersion, "version 2"),
        (Data("{\"version\": 1}".utf8), .invalid, "models"),
        (Data("not json".utf8), .invalid, "not valid JSON"),
        (catalogJSON([entryJSON("a:b", platform: "windows")]), .invalid, "platform 'windows'"),
        (catalogJSON([entryJSON("a:b", sha: "xyz")]), .invalid, "not a SHA-256"),
        (catalogJSON([entryJSON("../evil")]), .invalid, "modelId"),
        (catalogJSON([entryJSON("a:b"), entryJSON("a:b")]), .invalid, "twice"),
        (catalogJSON([entryJSON("a:b", url: "file:///etc/passwd")]), .invalid, "downloadUrl"),
        (catalogJSON([entryJSON("a:b", extra: #", "pieces": {"pieceSize": 100, "sha256": []}"#)]), .invalid, "piece manifest"),
        (catalogJSON(["{\"modelId\": \"a:b\"}"]), .invalid, "models[0]"),
    ] as [(Data, CatalogError.Code, String)])
    func badCatalogsSayWhatIsWrong(data: Data, code: CatalogError.Code, fragment: String) {
        do {
            _ = try Catalog.decode(data, source: "test")
            Issue.record("decoded")
        } catch {
            #expect(error.code == code)
            #expect(error.message.contains(fragment), "\(error.message)")
        }
    }

    @Test func entriesAreFilteredByPlatformAndMemory() throws {
        let catalog = try Catalog.decode(catalogJSON([
            entryJSON("all:x", platform: "all", memory: 2000), entryJSON("ios:x", platform: "ios"),
            entryJSON("node:x", platform: "node"), entryJSON("big:x", platform: "linux", memory: 64000),
        ]), source: "test")
        let laptop = DeviceProfile(platform: "linux", memoryMB: 16000)
        #expect(catalog.models.filter { $0.fits(laptop) }.map(\.modelId) == ["all:x", "node:x"])
        #expect(catalog.models.filter { $0.fits(DeviceProfile(platform: "ios", memoryMB: 1500)) }.map(\.modelId) == ["ios:x"])
    }

    @Test func entriesWithoutAChecksumNeedConsent() throws {
        let catalog = try Catalog.decode(catalogJSON([entryJSON("a:x", sha: nil), entryJSON("b:x")]), source: "test")
        #expect(throws: CatalogError.self) {
            try catalog.entry("a:x")!.pullRequest(app: nil, token: nil, allowUnverified: false, replace: false)
        }
        let allowed = try catalog.entry("a:x")!.pullRequest(app: nil, token: nil, allowUnverified: true, replace: false)
        #expect(allowed.sha256 == nil)
        let verified = try catalog.entry("b:x")!.pullRequest(app: "com.a", token: nil, allowUnverified: false, replace: false)
        #expect(verified.sha256?.source == .catalog)
        #expect(verified.name == "b:x")
    }
}

@Suite(.serialized) struct CatalogCacheTests {
    @Test func aFetchedCatalogServesOfflineMarkedStale() async throws {
        let root = "/tmp/depot-catalog-\(getpid())-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: root + "/www", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        try catalogJSON([entryJSON("a:x")]).write(to: URL(fileURLWithPath: root + "/www/catalog.json"))
        let nginx = try Nginx(root: root + "/www")
        let cache = CatalogCache(storeRoot: root + "/store")
        await #expect(throws: CatalogError.self) { _ = try await cache.load(nil) }

        let fresh = try await cache.load(nginx.url("catalog.json"))
        #expect(!fresh.isStale)
        #expect(fresh.catalog.models.map(\.modelId) == ["a:x"])
        nginx.stop()

        let offline = try await cache.load(nginx.url("catalog.json"))
        #expect(offline.isStale)
        #expect(offline.staleReason?.isEmpty == false)
        #expect(offline.catalog == fresh.catalog)
        let remembered = try await cache.load(nil)
        #expect(remembered.isStale, "without --catalog the last address is tried, and it is down")
        await #expect(throws: CatalogError.self) { _ = try await cache.load("http://127.0.0.1:\(freePort())/other.json") }
    }
}
