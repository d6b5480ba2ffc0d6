import Crypto
import Foundation
import MeshProtocol

/// A federation peer: where it answers and the key its gossip must be signed with.
public struct CoordinatorPeer: Sendable, Equatable {
    public var url: String
    public var publicKey: String
    public var id: String
    let key: Curve25519.Signing.PublicKey

    public init(url: String, publicKey: String) throws {
        guard let parsed = URL(string: url), ["http", "https"].contains(parsed.scheme ?? ""), parsed.host != nil else {
            throw MeshProtocolError("peer URL '\(url)' is not an http(s) URL")
        }
        guard let key = MeshIdentity.publicKey(publicKey) else {
            throw MeshProtocolError("peer key '\(publicKey)' is not a base64 Ed25519 public key")
        }
        self.url = url.hasSuffix("/") ? String(url.dropLast()) : url
        self.publicKey = publicKey
        self.key = key
        id = MeshIdentity.id(ofKey: key.rawRepresentation)
    }

    /// `URL#KEY`, as `depot coordinator --peer` takes it (a fragment is never sent, and
    /// base64 has no '#').
    public init(parsing text: String) throws {
        guard let mark = text.lastIndex(of: "#") else {
            throw MeshProtocolError("peer '\(text)' needs its public key: URL#KEY (the peer prints its key when it starts, and `depot coordinator --print-identity` shows it)")
        }
        try self.init(url: String(text[..<mark]), publicKey: String(text[text.index(after: mark)...]))
    }

    public static func == (a: Self, b: Self) -> Bool { a.url == b.url && a.publicKey == b.publicKey }
}
