import ModelStore
import ModelTransfer

extension CatalogEntry {
    /// A pull of this entry: weights and projector with the catalog's hashes, named by its id.
    /// Refused without a SHA-256 unless `allowUnverified`.
    public func pullRequest(app: String?, token: String?, allowUnverified: Bool,
                            replace: Bool) throws(CatalogError) -> PullRequest {
        guard checksumSha256 != nil || allowUnverified else {
            throw CatalogError(.unverified, "the catalog gives no SHA-256 for \(modelId), so its download cannot be verified; pass --allow-unverified to download it anyway")
        }
        if projector != nil && projector?.checksumSha256 == nil && !allowUnverified {
            throw CatalogError(.unverified, "the catalog gives no SHA-256 for the projector of \(modelId); pass --allow-unverified to download it anyway")
        }
        do throws(TransferError) {
            let weights: ExpectedHash? = if let checksumSha256 { try ExpectedHash(sha256: checksumSha256, source: .catalog) } else { nil }
            let projectorHash: ExpectedHash? = if let hash = projector?.checksumSha256 {
                try ExpectedHash(sha256: hash, source: .catalog)
            } else { nil }
            return PullRequest(source: downloadUrl, mirrors: mirrors ?? [], projector: projector?.url, name: modelId, app: app,
                               sha256: weights, pieces: pieces, projectorSHA256: projectorHash, token: token, replace: replace)
        } catch {
            throw CatalogError(.invalid, error.message)
        }
    }
}
