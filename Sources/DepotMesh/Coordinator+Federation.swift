import DepotHTTP
import Foundation
import GRDB
import MeshProtocol

extension Coordinator {
    /// This coordinator's summary, signed, for its peers, with the next number of its sequence.
    func outgoing(url: String, at now: Date = Date()) throws -> GossipMessage {
        try GossipMessage(signing: .init(origin: identity, originURL: url, sequence: sequence.next(), sentAt: now, summary: summary(at: now)),
                          by: identity)
    }

    /// How old a summary may be before it expires: three gossip rounds.
    var expiry: Double { 3 * configuration.gossipInterval.seconds }

    /// Takes a peer's message: true when it is new, or came by a shorter path (and should be
    /// relayed), else the reason it was refused. Messages from outside the configured peers,
    /// and unsigned, forged, replayed, stale, future-dated, oversized ones and those at the hop
    /// limit are refused and counted.
    public func receive(_ message: GossipMessage, at now: Date = Date()) -> Result<Bool, GossipRejection> {
        let verdict = check(message, at: now)
        lock.withLock {
            switch verdict {
            case .success: counters.gossipAccepted += 1
            case .failure(let reason): counters.gossipRejected[reason, default: 0] += 1
            }
        }
        if case .success(true) = verdict, let text = try? GossipMessage.encoder.encode(message) {
            try? database.write { db in
                try db.execute(sql: "INSERT OR REPLACE INTO remoteSummary (origin, message, receivedAt) VALUES (?, ?, ?)",
                               arguments: [message.signed.origin, String(decoding: text, as: UTF8.self), now.timeIntervalSince1970])
            }
        }
        return verdict
    }

    /// Counts a message refused before it could be read (over the body limit).
    func countRejection(_ reason: GossipRejection) { lock.withLock { counters.gossipRejected[reason, default: 0] += 1 } }

    private func check(_ message: GossipMessage, at now: Date) -> Result<Bool, GossipRejection> {
        // Before any arithmetic on it: the hop count comes from the wire.
        guard (0..<configuration.hopLimit).contains(message.hops) else { return .failure(.tooManyHops) }
        guard message.signed.protocolVersion == GossipMessage.protocolVersion, message.signed.type == "capability_summary" else {
            return .failure(.unsupported)
        }
        guard let peer = configuration.peers.first(where: { $0.id == message.sender }) else { return .failure(.notAPeer) }
        guard message.senderForgery(by: peer.key) == nil, message.forgery() == nil,
              message.signed.summary.coordinatorId == message.signed.origin else { return .failure(.forged) }
        guard message.signed.summary.modelAvailability.count <= configuration.maximumSummaryModels else { return .failure(.oversized) }
        let age = now.timeIntervalSince(message.signed.sentAt)
        guard age >= -configuration.maximumClockSkew.seconds else { return .failure(.futureDated) }
        guard age <= expiry else { return .failure(.stale) }
        if message.signed.origin == id { return .success(false) }  // our own, come back around
        return lock.withLock {
            if let known = remote[message.signed.origin], known.message.signed.sequence >= message.signed.sequence {
                guard known.message.signature == message.signature else { return .failure(.replayed) }
                // The same summary by a shorter path: passed on, it reaches coordinators the
                // first copy's hop count stopped short of.
                guard message.hops < known.message.hops else { return .failure(.duplicate) }
            }
            if remote[message.signed.origin] == nil, remote.count >= configuration.maximumOrigins {
                remote = remote.filter { now.timeIntervalSince($0.value.message.signed.sentAt) <= expiry }
                guard remote.count < configuration.maximumOrigins else { return .failure(.oversized) }
            }
            remote[message.signed.origin] = (message, now)
            return .success(true)
        }
    }

    /// Federated summaries that have not expired.
    func liveRemoteSummaries(at now: Date = Date()) -> [GossipMessage] {
        lock.withLock { remote.values.map(\.message) }.filter { now.timeIntervalSince($0.signed.sentAt) <= expiry }
    }

    public struct GossipStats: Codable, Sendable {
        public var accepted: Int
        public var rejected: [String: Int]
        public var knownOrigins: [String]
        public var traffic: GossipOutbox.Traffic
    }

    public var gossipStats: GossipStats {
        lock.withLock {
            GossipStats(accepted: counters.gossipAccepted,
                        rejected: Dictionary(uniqueKeysWithValues: counters.gossipRejected.map { ($0.key.rawValue, $0.value) }),
                        knownOrigins: remote.keys.sorted(), traffic: outbox.traffic)
        }
    }

    /// Passes a peer's news on, one hop further, signed by this coordinator as its sender.
    func forward(_ message: GossipMessage) {
        guard message.hops + 1 < configuration.hopLimit else { return }
        var relayed = message
        relayed.hops += 1
        guard (try? relayed.stamp(by: identity)) != nil else { return }
        outbox.send(relayed, skipping: [message.sender, message.signed.origin])
    }
}
