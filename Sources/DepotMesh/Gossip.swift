import Crypto
import DepotAgent
import Foundation

/// A coordinator's signed capability summary, sent to federation peers and relayed by them.
/// The origin's id is derived from its public key, so nobody can speak for another
/// coordinator: a relay may add hops but cannot change a signed byte. Each copy also carries
/// its sender's signature over the origin's signature and the hop count, so a coordinator
/// takes gossip only from the peers it was configured with, and nobody resets the hops.
public struct GossipMessage: Codable, Sendable {
    public static let protocolVersion = 1

    /// What the origin signs (everything but `hops`, which relays increment).
    public struct Signed: Codable, Sendable {
        public var protocolVersion: Int
        public var type: String
        public var origin: String
        public var originKey: String
        /// Where the origin coordinator answers (for routing to it).
        public var originURL: String
        /// Increases with every summary the origin sends (milliseconds since 1970).
        public var sequence: UInt64
        public var sentAt: Date
        public var summary: CapabilitySummary
    }

    public var signed: Signed
    public var hops: Int
    /// Base64 Ed25519 signature over `signed`'s canonical JSON.
    public var signature: String
    /// The id of the coordinator that sent this copy: the origin, or the peer relaying it.
    public var sender: String
    /// Base64 Ed25519 signature by the sender over `senderBytes`.
    public var senderSignature: String

    /// What the sender signs: which summary it passes on, and at which hop.
    var senderBytes: Data { Data("depot-gossip-v\(Self.protocolVersion)|\(signature)|\(hops)|\(sender)".utf8) }

    static func canonical(_ signed: Signed) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.dateEncodingStrategy = .millisecondsSince1970
        return try encoder.encode(signed)
    }

    static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .millisecondsSince1970
        return decoder
    }()

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .millisecondsSince1970
        return encoder
    }()
}

/// Why a gossip message was refused.
public enum GossipRejection: String, Error, Sendable, Codable, CaseIterable {
    /// The sender is not one of this coordinator's configured peers.
    case notAPeer
    /// The summary held already: flooding brings copies along several paths.
    case duplicate
    /// Older than the summary held from its origin.
    case replayed
    case unsupported, forged, stale
}

/// The coordinator's Ed25519 identity, made on first start and kept in its state directory.
struct CoordinatorIdentity: Sendable {
    let key: Curve25519.Signing.PrivateKey
    var publicKey: String { key.publicKey.rawRepresentation.base64EncodedString() }
    var id: String { Self.id(ofKey: key.publicKey.rawRepresentation) }

    /// The id a public key speaks for: the first 16 hex digits of its SHA-256.
    static func id(ofKey raw: Data) -> String {
        String(SHA256.hash(data: raw).map { String(format: "%02x", $0) }.joined().prefix(16))
    }

    static func load(directory: String) throws -> CoordinatorIdentity {
        let path = directory + "/coordinator.key"
        if let text = try? String(contentsOfFile: path, encoding: .utf8),
           let raw = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)) {
            return CoordinatorIdentity(key: try Curve25519.Signing.PrivateKey(rawRepresentation: raw))
        }
        let key = Curve25519.Signing.PrivateKey()
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw CoordinatorFailure("cannot create \(path): \(String(cString: strerror(errno)))") }
        let handle = FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
        try handle.write(contentsOf: Data((key.rawRepresentation.base64EncodedString() + "\n").utf8))
        return CoordinatorIdentity(key: key)
    }

    /// The origin's message, sent by itself (hop 0).
    func sign(_ signed: GossipMessage.Signed) throws -> GossipMessage {
        let message = GossipMessage(signed: signed, hops: 0, signature: try key.signature(for: GossipMessage.canonical(signed)).base64EncodedString(),
                                    sender: id, senderSignature: "")
        return try stamp(message)
    }

    /// The copy this coordinator sends on: its own id and signature as the sender.
    func stamp(_ message: GossipMessage) throws -> GossipMessage {
        var copy = message
        copy.sender = id
        copy.senderSignature = try key.signature(for: copy.senderBytes).base64EncodedString()
        return copy
    }
}

struct CoordinatorFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A federation peer: where it answers and the key its gossip must be signed with.
public struct CoordinatorPeer: Sendable, Equatable {
    public var url: String
    public var publicKey: String
    public var id: String
    let key: Curve25519.Signing.PublicKey

    public init(url: String, publicKey: String) throws {
        guard let parsed = URL(string: url), ["http", "https"].contains(parsed.scheme ?? ""), parsed.host != nil else {
            throw CoordinatorFailure("peer URL '\(url)' is not an http(s) URL")
        }
        guard let raw = Data(base64Encoded: publicKey), let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw) else {
            throw CoordinatorFailure("peer key '\(publicKey)' is not a base64 Ed25519 public key")
        }
        self.url = url.hasSuffix("/") ? String(url.dropLast()) : url
        self.publicKey = publicKey
        self.key = key
        id = CoordinatorIdentity.id(ofKey: raw)
    }

    /// `URL#KEY`, as `depot coordinator --peer` takes it (a fragment is never sent, and
    /// base64 has no '#').
    public init(parsing text: String) throws {
        guard let mark = text.lastIndex(of: "#") else {
            throw CoordinatorFailure("peer '\(text)' needs its public key: URL#KEY (the peer prints its key when it starts, and `depot coordinator --print-identity` shows it)")
        }
        try self.init(url: String(text[..<mark]), publicKey: String(text[text.index(after: mark)...]))
    }

    public static func == (a: Self, b: Self) -> Bool { a.url == b.url && a.publicKey == b.publicKey }
}

extension GossipMessage {
    /// Checks the sender's signature with the peer's key; nil when good.
    func senderForgery(by peer: CoordinatorPeer) -> String? {
        guard let signature = Data(base64Encoded: senderSignature), peer.key.isValidSignature(signature, for: senderBytes) else {
            return "the sender's signature does not match its key"
        }
        return nil
    }

    /// Checks the signature and that the origin id is the key's; nil when good.
    func forgery() -> String? {
        guard let raw = Data(base64Encoded: signed.originKey),
              let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw) else { return "the origin key is not an Ed25519 key" }
        guard CoordinatorIdentity.id(ofKey: raw) == signed.origin else { return "the origin id is not its key's" }
        guard let signature = Data(base64Encoded: signature), let bytes = try? Self.canonical(signed),
              key.isValidSignature(signature, for: bytes) else { return "the signature does not match" }
        return nil
    }
}
