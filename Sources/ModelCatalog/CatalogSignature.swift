import Crypto
import Foundation

/// Ed25519 signatures over a catalog's exact bytes, kept beside it as `<catalog>.sig` (the
/// signature in base64). A device configured with the publisher's public key accepts only a
/// catalog that key signed, so a compromised CDN cannot hand out other models or hashes.
public enum CatalogSignature {
    /// Parses a base64 Ed25519 public key (32 bytes).
    public static func publicKey(_ base64: String) throws(CatalogError) -> Curve25519.Signing.PublicKey {
        guard let raw = Data(base64Encoded: base64.trimmingCharacters(in: .whitespacesAndNewlines)),
              let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw) else {
            throw CatalogError(.invalid, "'\(base64)' is not a base64 Ed25519 public key (32 bytes)")
        }
        return key
    }

    /// Parses a base64 Ed25519 private key (32 bytes), as `keygen` writes it.
    public static func privateKey(_ base64: String) throws(CatalogError) -> Curve25519.Signing.PrivateKey {
        guard let raw = Data(base64Encoded: base64.trimmingCharacters(in: .whitespacesAndNewlines)),
              let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: raw) else {
            throw CatalogError(.invalid, "the private key is not a base64 Ed25519 key (32 bytes)")
        }
        return key
    }

    /// The `.sig` file's contents for `catalog`.
    public static func sign(_ catalog: Data, with key: Curve25519.Signing.PrivateKey) throws(CatalogError) -> String {
        do { return try key.signature(for: catalog).base64EncodedString() + "\n" } catch {
            throw CatalogError(.invalid, "cannot sign the catalog: \(error)")
        }
    }

    /// Refuses `catalog` unless `signature` (a `.sig` file's contents) is `key`'s over its bytes.
    static func verify(_ catalog: Data, signature: Data?, key: Curve25519.Signing.PublicKey, source: String) throws(CatalogError) {
        guard let signature else {
            throw CatalogError(.badSignature, "the catalog \(source) has no signature (\(source).sig), but a catalog key is configured; refusing it")
        }
        guard let raw = Data(base64Encoded: String(decoding: signature, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)),
              key.isValidSignature(raw, for: catalog) else {
            throw CatalogError(.badSignature, "the catalog \(source) is not signed by the configured catalog key; refusing it (the copy in use, if any, is kept)")
        }
    }

    /// Where the signature of a catalog at `source` (URL or file) is.
    static func location(of source: String) -> String {
        guard source.contains("://"), var components = URLComponents(string: source) else { return source + ".sig" }
        components.path += ".sig"
        return components.string ?? source + ".sig"
    }
}
