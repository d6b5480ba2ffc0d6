import Crypto
import Foundation

/// What a seeding agent offers, advertised in its heartbeats: a coordinator lists only agents
/// that seed as seeders of the blobs they hold.
public struct SeedingPolicy: Codable, Sendable, Equatable {
    /// Peers served at once.
    public var maximumUploads: Int
    /// Over all peers; nil: no cap.
    public var bytesPerSecond: UInt64?

    public init(maximumUploads: Int, bytesPerSecond: UInt64?) {
        self.maximumUploads = maximumUploads
        self.bytesPerSecond = bytesPerSecond
    }

    public static let uploads = 1...256
}

/// A coordinator's permission for one downloader to fetch one blob from one seeder, for a
/// short time. Signed by the coordinator's key (which its id is derived from); a seeder that
/// registered with that coordinator serves peers beyond its LAN only with one, and it is what
/// seed credits are paid on: it carries the blob's size (the most a download may be credited)
/// and how many complete seeders the coordinator counted (the rarity bonus).
public struct SeederTicket: Codable, Sendable, Equatable {
    public static let version = 1
    public var version: Int
    public var coordinatorId: String
    public var downloader: String
    public var seeder: String
    public var sha256: String
    public var sizeBytes: UInt64
    /// Complete seeders of the blob the coordinator knew when it issued the ticket.
    public var seeders: Int
    /// Milliseconds since 1970.
    public var expires: Int64

    public init(coordinatorId: String, downloader: String, seeder: String, sha256: String, sizeBytes: UInt64,
                seeders: Int, expires: Date) {
        version = Self.version
        self.coordinatorId = coordinatorId
        self.downloader = downloader
        self.seeder = seeder
        self.sha256 = sha256
        self.sizeBytes = sizeBytes
        self.seeders = seeders
        self.expires = Int64((expires.timeIntervalSince1970 * 1000).rounded(.down))
    }

    /// What the signature covers: every field, in a fixed order, with a domain prefix so no
    /// other signed message of the mesh can pass for a ticket.
    public var signedBytes: Data {
        Data("depot-seeder-ticket|\(version)|\(coordinatorId)|\(downloader)|\(seeder)|\(sha256)|\(sizeBytes)|\(seeders)|\(expires)".utf8)
    }

    /// The ticket as one header-safe token: base64url(JSON) "." base64url(signature).
    public func encoded(signedBy coordinator: MeshIdentity) throws -> String {
        let body = try JSONEncoder().encode(self)
        let signature = try coordinator.key.signature(for: signedBytes)
        return Self.base64URL(body) + "." + Self.base64URL(signature)
    }

    /// Why `token` does not let its holder fetch `sha256` from `seeder` now, or nil when it
    /// does: a ticket of the coordinator whose public key is `coordinatorKey`, unexpired.
    public static func problem(with token: String, coordinatorKey: String, seeder: String, sha256: String,
                               at now: Date = Date()) -> String? {
        switch verified(token, coordinatorKey: coordinatorKey) {
        case .failure(let problem): return problem.description
        case .success(let ticket):
            guard ticket.seeder == seeder, ticket.sha256 == sha256 else { return "the ticket is for another seeder or blob" }
            return ticket.hasExpired(at: now) ? "the ticket has expired: ask the coordinator again" : nil
        }
    }

    /// The ticket `token` holds, if the coordinator whose public key is `coordinatorKey`
    /// signed it (expired or not).
    public static func verified(_ token: String, coordinatorKey: String) -> Result<SeederTicket, MeshProtocolError> {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard token.utf8.count <= 1024, parts.count == 2, let body = data(base64URL: parts[0]),
              let signature = data(base64URL: parts[1]),
              let ticket = try? JSONDecoder().decode(SeederTicket.self, from: body) else {
            return .failure(MeshProtocolError("the ticket is not one a coordinator issued"))
        }
        guard let key = MeshIdentity.publicKey(coordinatorKey), ticket.coordinatorId == MeshIdentity.id(ofKey: key.rawRepresentation),
              ticket.version == version, key.isValidSignature(signature, for: ticket.signedBytes) else {
            return .failure(MeshProtocolError("the ticket is not signed by this agent's coordinator"))
        }
        return .success(ticket)
    }

    public func hasExpired(at now: Date) -> Bool { Double(expires) / 1000 <= now.timeIntervalSince1970 }

    /// What receipts name the ticket by: the SHA-256 (hex) of its token.
    public static func hash(of token: String) -> String {
        SHA256.hash(data: Data(token.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    static func base64URL(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func data(base64URL text: Substring) -> Data? {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        return Data(base64Encoded: base64)
    }
}

/// `GET /mesh/seeders?sha256=` on a coordinator: agents that hold the blob (complete first),
/// each with a ticket for the asking agent.
public struct SeedersAnswer: Codable, Sendable, Equatable {
    public struct Seeder: Codable, Sendable, Equatable {
        public var agentId: String
        public var address: String
        /// False for an agent still downloading the blob (it serves the pieces it has).
        public var complete: Bool
        public var ticket: String

        public init(agentId: String, address: String, complete: Bool, ticket: String) {
            self.agentId = agentId
            self.address = address
            self.complete = complete
            self.ticket = ticket
        }
    }

    public var sha256: String
    public var coordinatorId: String
    public var seeders: [Seeder]

    public init(sha256: String, coordinatorId: String, seeders: [Seeder]) {
        self.sha256 = sha256
        self.coordinatorId = coordinatorId
        self.seeders = seeders
    }
}

/// A request one coordinator sends a federation peer, signed with its own key, so the peer
/// knows which coordinator vouches for the agent it names. Each kind signs its own fields
/// under its own domain prefix.
public protocol FederationRequest: Codable, Sendable {
    static var version: Int { get }
    var version: Int { get }
    /// The asking coordinator.
    var coordinatorId: String { get }
    /// Milliseconds since 1970.
    var sentAt: Int64 { get }
    /// Never used twice within the clock skew the peer allows.
    var nonce: String { get }
    /// Base64 Ed25519 signature over `signedBytes` by the asking coordinator.
    var signature: String { get }
    /// Every field but the signature, with a domain prefix of its own.
    var signedBytes: Data { get }
}

extension FederationRequest {
    /// Whether the coordinator with public key `key` signed this request, and it names that
    /// coordinator.
    public func isSigned(by key: Curve25519.Signing.PublicKey) -> Bool {
        version == Self.version && coordinatorId == MeshIdentity.id(ofKey: key.rawRepresentation)
            && MeshIdentity.isValid(signature: signature, for: signedBytes, by: key)
    }

    static func milliseconds(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1000).rounded(.down)) }
}

/// `POST /mesh/federation/seeders`: a coordinator asks a federation peer for seeders of a blob
/// on behalf of one of its agents. The peer's tickets name that agent; its receipts carry its
/// key (the id is derived from it), so the peer checks them as it checks its own.
public struct FederatedSeedersRequest: FederationRequest, Equatable {
    public static let version = 1
    public var version: Int
    public var coordinatorId: String
    /// Its agent that will download.
    public var downloader: String
    public var sha256: String
    public var size: UInt64?
    public var limit: Int
    public var sentAt: Int64
    public var nonce: String
    public var signature: String

    public init(coordinator: MeshIdentity, downloader: String, sha256: String, size: UInt64?, limit: Int, at now: Date = Date()) throws {
        version = Self.version
        coordinatorId = coordinator.id
        self.downloader = downloader
        self.sha256 = sha256
        self.size = size
        self.limit = limit
        sentAt = Self.milliseconds(now)
        nonce = UUID().uuidString
        signature = ""
        signature = try coordinator.signature(for: signedBytes)
    }

    public var signedBytes: Data {
        Data("depot-federated-seeders|\(version)|\(coordinatorId)|\(downloader)|\(sha256)|\(size.map(String.init) ?? "-")|\(limit)|\(sentAt)|\(nonce)".utf8)
    }
}

/// `POST /mesh/federation/reports`: a coordinator passes on its agent's report of a bad piece
/// from a seeder the peer gave it a ticket for, so the peer counts it toward that seeder's ban.
public struct FederatedReport: FederationRequest, Equatable {
    public static let version = 1
    public var version: Int
    public var coordinatorId: String
    /// The asking coordinator's agent that found the piece bad (the ticket's downloader).
    public var reporter: String
    public var report: SeederReport
    public var sentAt: Int64
    public var nonce: String
    public var signature: String

    public init(coordinator: MeshIdentity, reporter: String, report: SeederReport, at now: Date = Date()) throws {
        version = Self.version
        coordinatorId = coordinator.id
        self.reporter = reporter
        self.report = report
        sentAt = Self.milliseconds(now)
        nonce = UUID().uuidString
        signature = ""
        signature = try coordinator.signature(for: signedBytes)
    }

    public var signedBytes: Data {
        Data("depot-federated-report|\(version)|\(coordinatorId)|\(reporter)|\(report.ticket)|\(report.piece)|\(sentAt)|\(nonce)".utf8)
    }
}
