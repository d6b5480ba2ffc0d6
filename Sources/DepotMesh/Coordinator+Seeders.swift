import DepotHTTP
import Foundation
import MeshProtocol

/// Finding seeders: the agents that seed a blob, from their heartbeats' installed models (the
/// index is kept current on every heartbeat and expiry, like the model tallies), each handed
/// out with a ticket signed by this coordinator for the agent that asked.
extension Coordinator {
    public static let ticketLifetime: TimeInterval = 600
    public static let maximumSeedersPerAnswer = 32

    /// Up to `limit` seeders of `sha256` for the agent holding `credential`: those on the
    /// asker's network first (same /24, or the same host), then the least loaded, ties random.
    /// Banned seeders are left out, and not counted for the rarity the tickets carry.
    public func seeders(of sha256: String, credential: String?, limit: Int = 8, at now: Date = Date()) throws(APIError) -> SeedersAnswer {
        guard Heartbeat.isSHA256(sha256) else { throw APIError.badRequest("give ?sha256= with 64 lowercase hex digits") }
        guard let credential, let asker = sessions.agent(of: credential, at: now) else {
            throw APIError(.unauthorized, "asking for seeders needs this coordinator's session credential: register first")
        }
        let banned = lock.withLock { bans.filter { $0.value > now }.keys }
        let (holders, askerNetwork): ([AgentTable.Entry], String?) = withCurrentTable(at: now) { table in
            ((table.holders[sha256] ?? []).compactMap { table.entries[$0] }.filter { !banned.contains($0.heartbeat.agentId) },
             table.entries[asker].flatMap { Self.network(of: $0.heartbeat.address) })
        }
        let candidates = holders.filter { $0.heartbeat.agentId != asker }
        let chosen = candidates.shuffled().sorted { left, right in
            let near = (Self.network(of: left.heartbeat.address) == askerNetwork, Self.network(of: right.heartbeat.address) == askerNetwork)
            if near.0 != near.1 { return near.0 }
            return left.heartbeat.currentLoad < right.heartbeat.currentLoad
        }.prefix(max(1, min(limit, Self.maximumSeedersPerAnswer)))
        let expires = now.addingTimeInterval(Self.ticketLifetime)
        var seeders: [SeedersAnswer.Seeder] = []
        for entry in chosen {
            guard let size = entry.heartbeat.installedModels.first(where: { $0.sha256 == sha256 })?.sizeBytes else { continue }
            let ticket = SeederTicket(coordinatorId: id, downloader: asker, seeder: entry.heartbeat.agentId, sha256: sha256,
                                      sizeBytes: size, seeders: holders.count, expires: expires)
            guard let token = try? ticket.encoded(signedBy: identity) else { continue }
            seeders.append(.init(agentId: entry.heartbeat.agentId, address: entry.heartbeat.address, complete: true, ticket: token))
        }
        lock.withLock { counters.ticketsIssued += seeders.count }
        return SeedersAnswer(sha256: sha256, coordinatorId: id, seeders: seeders)
    }

    /// The host's /24 for an IPv4 address, else the host itself.
    static func network(of address: String) -> String? {
        guard let host = URLComponents(string: address)?.host else { return nil }
        let octets = host.split(separator: ".")
        return octets.count == 4 && octets.allSatisfy({ UInt8($0) != nil }) ? octets.prefix(3).joined(separator: ".") : host
    }
}
