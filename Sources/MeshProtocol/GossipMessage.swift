import Crypto
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
        /// Increases with every summary the origin sends: a counter kept on its disk, not the
        /// clock, so a clock stepping back does not make its news look like replays.
        public var sequence: UInt64
        public var sentAt: Date
        public var summary: CapabilitySummary

        public init(origin: MeshIdentity, originURL: String, sequence: UInt64, sentAt: Date, summary: CapabilitySummary) {
            protocolVersion = GossipMessage.protocolVersion
            type = "capability_summary"
            self.origin = origin.id
            originKey = origin.publicKey
            self.originURL = originURL
            self.sequence = sequence
            self.sentAt = sentAt
            self.summary = summary
        }
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

    public static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .millisecondsSince1970
        return decoder
    }()

    public static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .millisecondsSince1970
        return encoder
    }()

    /// The origin's message, sent by itself (hop 0).
    public init(signing signed: Signed, by origin: MeshIdentity) throws {
        self.signed = signed
        hops = 0
        signature = try origin.signature(for: Self.canonical(signed))
        sender = origin.id
        senderSignature = ""
        try stamp(by: origin)
    }

    /// Makes this the copy `sender` sends on: its id and signature as the sender.
    public mutating func stamp(by sender: MeshIdentity) throws {
        self.sender = sender.id
        senderSignature = try sender.signature(for: senderBytes)
    }

    /// Checks the sender's signature with the key configured for it; nil when good.
    public func senderForgery(by key: Curve25519.Signing.PublicKey) -> String? {
        MeshIdentity.isValid(signature: senderSignature, for: senderBytes, by: key) ? nil : "the sender's signature does not match its key"
    }

    /// Checks the origin's signature and that the origin id is the key's; nil when good.
    public func forgery() -> String? {
        guard let key = MeshIdentity.publicKey(signed.originKey) else { return "the origin key is not an Ed25519 key" }
        guard MeshIdentity.id(ofKey: key.rawRepresentation) == signed.origin else { return "the origin id is not its key's" }
        guard let bytes = try? Self.canonical(signed), MeshIdentity.isValid(signature: signature, for: bytes, by: key) else {
            return "the signature does not match"
        }
        return nil
    }
}

/// Why a gossip message was refused.
public enum GossipRejection: String, Error, Sendable, Codable, CaseIterable {
    /// The sender is not one of this coordinator's configured peers.
    case notAPeer
    /// The summary held already: flooding brings copies along several paths.
    case duplicate
    /// Not newer than the summary held from its origin.
    case replayed
    /// A hop count at or beyond the limit (or negative).
    case tooManyHops
    /// Sent further in the future than the allowed clock skew.
    case futureDated
    /// Larger than the limit, in bytes or models.
    case oversized
    case unsupported, forged, stale
}

/// What a coordinator knows, per model (EdgeCoder's `capability_summary`).
public struct CapabilitySummary: Codable, Sendable, Equatable {
    public struct ModelAvailability: Codable, Sendable, Equatable {
        public var agentCount: Int
        public var totalParamCapacity: Double
        public var avgLoad: Double

        public init(agentCount: Int, totalParamCapacity: Double, avgLoad: Double) {
            self.agentCount = agentCount
            self.totalParamCapacity = totalParamCapacity
            self.avgLoad = avgLoad
        }
    }

    public var coordinatorId: String
    public var agentCount: Int
    public var modelAvailability: [String: ModelAvailability]
    public var timestamp: Date

    public init(coordinatorId: String, agentCount: Int, modelAvailability: [String: ModelAvailability], timestamp: Date) {
        self.coordinatorId = coordinatorId
        self.agentCount = agentCount
        self.modelAvailability = modelAvailability
        self.timestamp = timestamp
    }
}
