import DepotHTTP
import Foundation
import Hummingbird
import MeshProtocol
import ModelStore

/// Admission: an agent proves its key once per session by signing a nonce this coordinator
/// issued; it then heartbeats with the credential it got back. Every refusal is counted by
/// reason and nothing changes.
extension Coordinator {
    /// A nonce for `GET /mesh/challenge`.
    public func challenge(at now: Date = Date()) -> RegistrationChallenge {
        RegistrationChallenge(coordinatorId: id, nonce: sessions.nonce(at: now), expiresInSeconds: sessions.nonceLifetime)
    }

    /// Takes a registration: the agent's first heartbeat, signed with its key. Returns its
    /// session credential.
    public func register(_ registration: AgentRegistration, at now: Date = Date()) throws(APIError) -> RegistrationReceipt {
        try countingRefusals { () throws(Refusal) in
            guard registration.protocolVersion == AgentRegistration.protocolVersion else {
                throw Refusal("unsupported", .badRequest,
                              "registration protocolVersion \(registration.protocolVersion) is not supported; this coordinator speaks \(AgentRegistration.protocolVersion)")
            }
            try check(registration.heartbeat)
            guard let key = MeshIdentity.publicKey(registration.publicKey) else {
                throw Refusal("invalid", .badRequest, "field 'publicKey' must be a base64 Ed25519 public key")
            }
            guard MeshIdentity.id(ofKey: key.rawRepresentation) == registration.heartbeat.agentId else {
                throw Refusal("forged", .forbidden, "agentId \(registration.heartbeat.agentId) is not the id of the key it came with")
            }
            guard registration.coordinatorId == id else {
                throw Refusal("otherCoordinator", .forbidden, "this registration was signed for coordinator \(registration.coordinatorId.prefix(16)), not \(id)")
            }
            guard let nonceExpiry = sessions.nonceExpiry(registration.nonce, at: now) else {
                throw Refusal("badNonce", .unauthorized, "the nonce is not one this coordinator issued, or it expired: GET /mesh/challenge for a new one")
            }
            guard MeshIdentity.isValid(signature: registration.signature, for: registration.signedBytes, by: key) else {
                throw Refusal("forged", .forbidden, "the registration's signature does not match its key")
            }
            if let refusal = configuration.admission.refusal(of: registration) { throw Refusal("notAdmitted", .forbidden, refusal) }
            let nonceRefusal: Refusal? = lock.withLock {
                switch usedNonces.use(registration.nonce, expiring: nonceExpiry, at: now) {
                case .fresh: nil
                case .used: Refusal("replayed", .conflict, "this nonce was used already: GET /mesh/challenge for a new one")
                case .full: Refusal("busy", .serviceUnavailable, "too many registrations at once; try again in a minute")
                }
            }
            if let nonceRefusal { throw nonceRefusal }
            if let refusal = record(registration.heartbeat, publicKey: registration.publicKey, at: now) { throw refusal }
        }
        lock.withLock { counters.registrations += 1 }
        return RegistrationReceipt(coordinatorId: id, coordinatorPublicKey: publicKey, agentId: registration.heartbeat.agentId,
                                   credential: sessions.credential(for: registration.heartbeat.agentId, at: now),
                                   credentialExpiresInSeconds: sessions.credentialLifetime)
    }

    /// Takes a heartbeat carrying the session credential from `Authorization: Bearer`.
    public func heartbeat(_ heartbeat: Heartbeat, credential: String?, at now: Date = Date()) throws(APIError) {
        try countingRefusals { () throws(Refusal) in
            try check(heartbeat)
            guard let credential else {
                throw Refusal("unregistered", .unauthorized, "heartbeats need the credential from registering: GET /mesh/challenge, then POST /register")
            }
            switch sessions.check(credential: credential, agentId: heartbeat.agentId, at: now) {
            case .valid: break
            case .expired: throw Refusal("expired", .unauthorized, "the session credential expired: register again")
            case .forged: throw Refusal("forged", .forbidden, "the session credential was not issued by this coordinator")
            case .otherAgent: throw Refusal("otherAgent", .forbidden, "the session credential belongs to another agent")
            }
            if let refusal = recordFromSession(heartbeat, at: now) { throw refusal }
        }
    }

    /// Every field in range, model names by the store's rules.
    func check(_ heartbeat: Heartbeat) throws(Refusal) {
        if let problem = heartbeat.problem(maximumInstalledModels: configuration.maximumInstalledModels, modelNameProblem: Self.modelNameProblem) {
            throw Refusal("invalid", .badRequest, problem)
        }
    }

    static func modelNameProblem(_ name: String) -> String? {
        do { try ModelName.validate(name) } catch { return error.message }
        return nil
    }

    /// Runs `body`; a refusal is counted by its reason and becomes the agent's error.
    private func countingRefusals(_ body: () throws(Refusal) -> Void) throws(APIError) {
        do throws(Refusal) { try body() } catch {
            lock.withLock { counters.refused[error.reason, default: 0] += 1 }
            throw APIError(error.status, error.message)
        }
    }

    public struct MeshStats: Codable, Sendable {
        public var agents: Int
        public var onlineAgents: Int
        public var maximumAgents: Int
        public var registrations: Int
        public var heartbeats: Int
        /// Registrations and heartbeats refused, by reason.
        public var refused: [String: Int]
        /// Offline agents forgotten to make room, and after the retention period.
        public var evicted: Int
        public var forgottenAfterRetention: Int
        /// Models left out of summaries for the size cap.
        public var summaryModelsDropped: Int
        /// Seeder tickets handed out (`/mesh/seeders`).
        public var ticketsIssued: Int
        /// Of those, tickets for federation peers' agents, and peers' requests refused by reason.
        public var federatedTickets: Int
        public var federationRefused: [String: Int]
        /// Seed receipts credited, and refused by reason (`POST /mesh/receipts`).
        public var receipts: Int
        public var receiptsRefused: [String: Int]
        public var creditsMinted: Double
        /// Liar reports taken, refused by reason, and the seeders they banned; reports on
        /// federation peers' tickets passed on to the peer that issued them.
        public var reports: Int
        public var reportsRefused: [String: Int]
        public var seedersBanned: Int
        public var reportsPassedOn: Int
    }

    public var stats: MeshStats {
        lock.withLock {
            let (total, online) = agentCountsLocked
            return MeshStats(agents: total, onlineAgents: online, maximumAgents: configuration.maximumAgents, registrations: counters.registrations,
                             heartbeats: counters.heartbeats, refused: counters.refused, evicted: counters.evicted,
                             forgottenAfterRetention: counters.forgottenAfterRetention, summaryModelsDropped: counters.summaryModelsDropped,
                             ticketsIssued: counters.ticketsIssued, federatedTickets: counters.federatedTickets,
                             federationRefused: counters.federationRefused, receipts: counters.receipts, receiptsRefused: counters.receiptsRefused,
                             creditsMinted: counters.creditsMinted, reports: counters.reports, reportsRefused: counters.reportsRefused,
                             seedersBanned: counters.seedersBanned, reportsPassedOn: counters.reportsPassedOn)
        }
    }
}

/// A refused registration or heartbeat: the counter it goes to and what the agent is told.
struct Refusal: Error {
    let reason: String
    let status: HTTPResponse.Status
    let message: String

    init(_ reason: String, _ status: HTTPResponse.Status, _ message: String) {
        self.reason = reason
        self.status = status
        self.message = message
    }
}
