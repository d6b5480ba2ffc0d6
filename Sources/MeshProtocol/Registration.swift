import Crypto
import Foundation

/// `GET /mesh/challenge`: a nonce the coordinator made and will take once, within its lifetime.
/// Signing it (not a clock) is what keeps a registration from being replayed.
public struct RegistrationChallenge: Codable, Sendable {
    public var coordinatorId: String
    public var nonce: String
    public var expiresInSeconds: Double

    public init(coordinatorId: String, nonce: String, expiresInSeconds: Double) {
        self.coordinatorId = coordinatorId
        self.nonce = nonce
        self.expiresInSeconds = expiresInSeconds
    }
}

/// `POST /register`: the agent's first heartbeat, its public key, and its signature over the
/// coordinator's id, the nonce and who it is; with a join proof when the coordinator admits by
/// token. The token itself never crosses the wire: the proof is an HMAC keyed by its digest.
public struct AgentRegistration: Codable, Sendable {
    public static let protocolVersion = 2

    public var protocolVersion: Int
    public var publicKey: String
    public var coordinatorId: String
    public var nonce: String
    public var heartbeat: Heartbeat
    /// Base64 HMAC-SHA256 of `signedBytes`, keyed by the SHA-256 of the join token.
    public var joinProof: String?
    /// Base64 Ed25519 signature over `signedBytes`.
    public var signature: String

    /// What the agent signs: the coordinator it is meant for, the nonce, its id, key and address.
    public var signedBytes: Data {
        Data("depot-register-v\(Self.protocolVersion)|\(coordinatorId)|\(nonce)|\(heartbeat.agentId)|\(publicKey)|\(heartbeat.address)".utf8)
    }

    /// A registration signed by `identity` for the coordinator that issued `challenge`.
    public init(identity: MeshIdentity, challenge: RegistrationChallenge, heartbeat: Heartbeat, joinToken: String?) throws {
        protocolVersion = Self.protocolVersion
        publicKey = identity.publicKey
        coordinatorId = challenge.coordinatorId
        nonce = challenge.nonce
        self.heartbeat = heartbeat
        self.heartbeat.agentId = identity.id
        signature = ""
        joinProof = joinToken.map { Self.joinProof(tokenDigest: Self.digest(ofJoinToken: $0), for: signedBytes) }
        signature = try identity.signature(for: signedBytes)
    }

    /// The key a join token stands for; coordinators keep only this.
    public static func digest(ofJoinToken token: String) -> SymmetricKey {
        SymmetricKey(data: SHA256.hash(data: Data(token.utf8)))
    }

    public static func joinProof(tokenDigest: SymmetricKey, for bytes: Data) -> String {
        Data(HMAC<SHA256>.authenticationCode(for: bytes, using: tokenDigest)).base64EncodedString()
    }

    /// Whether `joinProof` was made with the token behind `tokenDigest` (compared in constant time).
    public func hasValidJoinProof(tokenDigest: SymmetricKey) -> Bool {
        guard let joinProof, joinProof.utf8.count <= 64, let code = Data(base64Encoded: joinProof) else { return false }
        return HMAC<SHA256>.isValidAuthenticationCode(code, authenticating: signedBytes, using: tokenDigest)
    }
}

/// The coordinator's answer to a registration: the session credential that heartbeats carry in
/// `Authorization: Bearer`, valid for `credentialExpiresInSeconds`.
public struct RegistrationReceipt: Codable, Sendable {
    public var status: String
    public var coordinatorId: String
    public var agentId: String
    public var credential: String
    public var credentialExpiresInSeconds: Double
    /// The coordinator's Ed25519 key (its id is derived from it): what its seeder tickets are
    /// checked with.
    public var coordinatorPublicKey: String?

    public init(coordinatorId: String, coordinatorPublicKey: String, agentId: String, credential: String, credentialExpiresInSeconds: Double) {
        status = "registered"
        self.coordinatorId = coordinatorId
        self.coordinatorPublicKey = coordinatorPublicKey
        self.agentId = agentId
        self.credential = credential
        self.credentialExpiresInSeconds = credentialExpiresInSeconds
    }
}
