import AsyncHTTPClient
import Crypto
import Foundation
import ModelTransfer
import NIOCore

/// A catalog as last fetched, and whether it came from the network just now.
public struct CatalogSnapshot: Sendable {
    public var catalog: Catalog
    /// Where it was fetched from (redacted).
    public var source: String
    public var fetchedAt: Date
    /// True when the catalog could not be fetched now and this is the cached copy.
    public var isStale: Bool
    /// Why the fresh fetch failed, when stale.
    public var staleReason: String?
    /// The public key (base64) whose signature was checked; nil for an unsigned catalog.
    public var signedBy: String?
}

/// Fetches catalogs (URL or file) and keeps the last good one in the store, so listing
/// works offline (marked stale).
public struct CatalogCache: Sendable {
    let directory: String
    static let maximumBytes = 32 << 20

    /// A cache in `<store root>/catalog`.
    public init(storeRoot: String) {
        directory = storeRoot + "/catalog"
    }

    private struct Stored: Codable {
        var version = 1
        var source: String
        var fetchedAt: Date
        var catalog: Catalog
        /// The key that had signed it when it was fetched.
        var signedBy: String?
    }

    /// Fetches `source` (when nil, the address the cached copy came from) and caches it; when
    /// the fetch fails, returns the cached copy of the same catalog marked stale. With a
    /// `trustedKey`, only a catalog that key signed is accepted, fresh or cached.
    public func load(_ source: String?, trustedKey: Curve25519.Signing.PublicKey? = nil) async throws(CatalogError) -> CatalogSnapshot {
        let cachedCopy = cached()
        guard let source = source ?? cachedCopy?.source else {
            throw CatalogError(.noCatalog, "no catalog yet: pass --catalog URL (or set DEPOT_CATALOG) once; it is cached for offline use")
        }
        let redacted = source.contains("://") ? Redaction.redact(source) : source
        let keyText = trustedKey?.rawRepresentation.base64EncodedString()
        do throws(CatalogError) {
            let data = try await fetch(source)
            if let trustedKey {
                let signature = try? await fetch(CatalogSignature.location(of: source))
                try CatalogSignature.verify(data, signature: signature, key: trustedKey, source: redacted)
            }
            let catalog = try Catalog.decode(data, source: redacted)
            if trustedKey != nil, let cachedCopy, cachedCopy.source == redacted, cachedCopy.signedBy == keyText,
               catalog.serial ?? 0 < cachedCopy.catalog.serial ?? 0 {
                throw CatalogError(.replayed, "\(redacted) answered a signed catalog with serial \(catalog.serial ?? 0), older than the cached serial \(cachedCopy.catalog.serial ?? 0): an old catalog replayed? The cached one stays in use")
            }
            let now = Date()
            try? save(Stored(source: redacted, fetchedAt: now, catalog: catalog, signedBy: keyText))
            return CatalogSnapshot(catalog: catalog, source: redacted, fetchedAt: now, isStale: false, signedBy: keyText)
        } catch where error.code == .unreachable || error.code == .replayed {
            guard let cachedCopy, cachedCopy.source == redacted else { throw error }
            if let keyText, cachedCopy.signedBy != keyText {
                throw CatalogError(.badSignature, "\(error.message); the cached copy was not signed by the configured catalog key, so it is not used")
            }
            return CatalogSnapshot(catalog: cachedCopy.catalog, source: cachedCopy.source, fetchedAt: cachedCopy.fetchedAt,
                                   isStale: true, staleReason: error.message, signedBy: cachedCopy.signedBy)
        }
    }

    private func fetch(_ source: String) async throws(CatalogError) -> Data {
        guard source.hasPrefix("http://") || source.hasPrefix("https://") else {
            guard let data = FileManager.default.contents(atPath: source) else {
                throw CatalogError(.unreachable, "cannot read the catalog file \(source)")
            }
            return data
        }
        var configuration = HTTPClient.Configuration()
        // Offline should fall back to the cache at once, not after retrying until the deadline.
        configuration.connectionPool.retryConnectionEstablishment = false
        configuration.timeout = .init(connect: .seconds(10))
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        defer { client.shutdown(queue: .global()) { _ in } }
        do {
            var request = HTTPClientRequest(url: source)
            request.headers.add(name: "Accept", value: "application/json")
            let response = try await client.execute(request, timeout: .seconds(30))
            guard response.status.code == 200 else {
                throw CatalogError(.unreachable, "the catalog server answered \(response.status.code) for \(Redaction.redact(source))")
            }
            let body = try await response.body.collect(upTo: Self.maximumBytes)
            return Data(body.readableBytesView)
        } catch let error as CatalogError {
            throw error
        } catch {
            throw CatalogError(.unreachable, "cannot fetch the catalog from \(Redaction.redact(source)): \(Redaction.redact("\(error)"))")
        }
    }

    private var file: String { directory + "/catalog.json" }

    private func cached() -> Stored? {
        guard let data = FileManager.default.contents(atPath: file) else { return nil }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try? decoder.decode(Stored.self, from: data)
    }

    /// Written to a temporary name and renamed, so a reader never sees half a catalog.
    private func save(_ stored: Stored) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        let temporary = directory + "/.catalog-\(UUID().uuidString).json"
        try encoder.encode(stored).write(to: URL(fileURLWithPath: temporary))
        guard rename(temporary, file) == 0 else {
            unlink(temporary)
            throw CatalogError(.unreachable, "cannot save the catalog cache")
        }
    }
}
