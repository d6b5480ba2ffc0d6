import Crypto
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// An Ed25519 identity in the mesh: an agent's or a coordinator's. The id is derived from the
/// public key, so nobody can claim an id without holding its key.
public struct MeshIdentity: Sendable {
    public let key: Curve25519.Signing.PrivateKey

    public init(key: Curve25519.Signing.PrivateKey = .init()) { self.key = key }

    /// The public key, base64 (what peers configure and registrations carry).
    public var publicKey: String { key.publicKey.rawRepresentation.base64EncodedString() }
    public var id: String { Self.id(ofKey: key.publicKey.rawRepresentation) }

    /// The id a public key speaks for: the first 16 hex digits of its SHA-256.
    public static func id(ofKey raw: Data) -> String {
        String(SHA256.hash(data: raw).map { String(format: "%02x", $0) }.joined().prefix(16))
    }

    /// The id of a base64 public key, or nil when it is not an Ed25519 key.
    public static func id(ofPublicKey base64: String) -> String? {
        publicKey(base64).map { id(ofKey: $0.rawRepresentation) }
    }

    public static func publicKey(_ base64: String) -> Curve25519.Signing.PublicKey? {
        guard base64.utf8.count <= 64, let raw = Data(base64Encoded: base64) else { return nil }
        return try? Curve25519.Signing.PublicKey(rawRepresentation: raw)
    }

    /// A base64 signature over `data`.
    public func signature(for data: Data) throws -> String { try key.signature(for: data).base64EncodedString() }

    /// Whether `signature` (base64) is `publicKey`'s over `data`.
    public static func isValid(signature: String, for data: Data, by publicKey: Curve25519.Signing.PublicKey) -> Bool {
        guard signature.utf8.count <= 128, let raw = Data(base64Encoded: signature) else { return false }
        return publicKey.isValidSignature(raw, for: data)
    }

    /// The identity kept at `path` (base64 private key), made there with mode 0600 on first use.
    /// Two processes starting together agree on one key: the file is created exclusively.
    public static func load(path: String) throws -> MeshIdentity {
        for _ in 0..<50 {
            if let text = try? String(contentsOfFile: path, encoding: .utf8), !text.isEmpty {
                guard let raw = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)),
                      let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: raw) else {
                    throw MeshProtocolError("\(path) does not hold an Ed25519 private key; move it away to make a new identity")
                }
                return MeshIdentity(key: key)
            }
            let key = Curve25519.Signing.PrivateKey()
            let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            if descriptor < 0 {
                guard errno == EEXIST else { throw MeshProtocolError("cannot create \(path): \(String(cString: strerror(errno)))") }
                usleep(10_000)  // another process is writing it
                continue
            }
            let handle = FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
            try handle.write(contentsOf: Data((key.rawRepresentation.base64EncodedString() + "\n").utf8))
            try handle.synchronize()
            return MeshIdentity(key: key)
        }
        throw MeshProtocolError("\(path) stays empty; remove it to make a new identity")
    }
}

/// A mesh message or identity that cannot be used, with what to do about it.
public struct MeshProtocolError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
