import Foundation
import ModelStore
import ModelTransfer

extension Catalog {
    static let supportedVersion = 1

    /// Parses and checks a catalog document; an error names the entry and field at fault.
    public static func decode(_ data: Data, source: String) throws(CatalogError) -> Catalog {
        let catalog: Catalog
        do {
            catalog = try JSONDecoder().decode(Catalog.self, from: data)
        } catch let DecodingError.keyNotFound(key, context) {
            throw CatalogError(.invalid, "the catalog at \(source) lacks '\(key.stringValue)' in \(Self.path(context.codingPath))")
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
            throw CatalogError(.invalid, "the catalog at \(source) has a wrong type at \(Self.path(context.codingPath))")
        } catch {
            throw CatalogError(.invalid, "the catalog at \(source) is not valid JSON: \(error.localizedDescription)")
        }
        guard catalog.version == supportedVersion else {
            throw CatalogError(.unsupportedVersion, "the catalog at \(source) is version \(catalog.version); this depot reads version \(supportedVersion). Update depot")
        }
        var seen = Set<String>()
        for (index, entry) in catalog.models.enumerated() {
            let at = "models[\(index)] (\(entry.modelId))"
            do { try ModelName.validate(entry.modelId) } catch {
                throw CatalogError(.invalid, "the catalog's \(at) has an unusable modelId: \(error.message)")
            }
            guard seen.insert(entry.modelId).inserted else {
                throw CatalogError(.invalid, "the catalog lists \(entry.modelId) twice")
            }
            guard Platform.known.contains(entry.platform) else {
                throw CatalogError(.invalid, "the catalog's \(at) has platform '\(entry.platform)'; expected one of \(Platform.known.sorted().joined(separator: ", "))")
            }
            for (field, hash) in [("checksumSha256", entry.checksumSha256), ("projector.checksumSha256", entry.projector?.checksumSha256)] {
                if let hash, !(hash.count == 64 && hash.allSatisfy(\.isHexDigit)) {
                    throw CatalogError(.invalid, "the catalog's \(at) has a \(field) that is not a SHA-256")
                }
            }
            for (field, url) in [("downloadUrl", entry.downloadUrl), ("projector.url", entry.projector?.url ?? "https://x")] {
                guard url.hasPrefix("https://") || url.hasPrefix("http://") || url.hasPrefix("hf://") else {
                    throw CatalogError(.invalid, "the catalog's \(at) has a \(field) that is not an http(s):// or hf:// address")
                }
            }
            if let root = entry.piecesRoot, root.count != 64 || !root.allSatisfy({ $0.isHexDigit && !$0.isUppercase }) {
                throw CatalogError(.invalid, "the catalog's \(at) has a piecesRoot that is not 64 lowercase hex digits")
            }
            if let size = entry.pieceSize {
                do { try MerklePieces.checkPieceSize(size) } catch {
                    throw CatalogError(.invalid, "the catalog's \(at) pieceSize: \(error.message)")
                }
            }
            if let pieces = entry.pieces {
                let expected = pieces.pieceSize == 0 ? 0 : (entry.fileSizeBytes + pieces.pieceSize - 1) / pieces.pieceSize
                guard pieces.pieceSize > 0, UInt64(pieces.sha256.count) == expected else {
                    throw CatalogError(.invalid, "the catalog's \(at) piece manifest does not cover the file (\(pieces.sha256.count) pieces of \(pieces.pieceSize) bytes for \(entry.fileSizeBytes))")
                }
            }
        }
        return catalog
    }

    private static func path(_ keys: [CodingKey]) -> String {
        keys.isEmpty ? "the top level" : keys.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
    }
}
