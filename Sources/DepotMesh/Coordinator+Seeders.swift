import DepotHTTP
import Foundation
import MeshProtocol

/// Finding seeders: the agents that seed a blob, from their heartbeats' installed models (the
/// index is kept current on every heartbeat and expiry, like the model tallies), each handed
/// out with a ticket signed by this coordinator for the agent that asked.
extension Coordinator {
    public static let ticketLifetime: TimeInterval = 600
    public static let maximumSeedersPerAnswer = 32

    /// Up to `limit` seeders of `sha256` for the agent holding `credential`: agents that hold
    /// the blob first, then agents still downloading it (they serve the pieces they have
    /// verified); within each, those on the asker's network first (same /24, or the same
    /// host), then the least loaded, ties random. Banned seeders are left out, and not counted
    /// for the rarity the tickets carry. An asker that seeds is remembered as downloading the
    /// blob (of `size` bytes, if no holder says) for the tickets' lifetime.
    public func seeders(of sha256: String, credential: String?, size: UInt64? = nil, limit: Int = 8,
                        at now: Date = Date()) throws(APIError) -> SeedersAnswer {
        let asker = try seedersAsker(sha256: sha256, credential: credential, at: now)
        return issueTickets(for: sha256, to: asker, size: size, limit: limit, at: now)
    }

    /// The agent asking for seeders, by its session credential.
    func seedersAsker(sha256: String, credential: String?, at now: Date) throws(APIError) -> String {
        guard Heartbeat.isSHA256(sha256) else { throw APIError.badRequest("give ?sha256= with 64 lowercase hex digits") }
        guard let credential, let asker = sessions.agent(of: credential, at: now) else {
            throw APIError(.unauthorized, "asking for seeders needs this coordinator's session credential: register first")
        }
        return asker
    }

    /// Seeders of `sha256` with tickets for `asker` (an agent of this coordinator, or of a
    /// federation peer: then it is not in the table, nobody is near it, and it is not noted as
    /// downloading here).
    func issueTickets(for sha256: String, to asker: String, size: UInt64?, limit: Int, at now: Date) -> SeedersAnswer {
        let banned = lock.withLock { bans.filter { $0.value > now }.keys }
        let (holders, downloaders, noted, askerEntry) = withCurrentTable(at: now) { table in
            let holding = table.holders[sha256] ?? []
            let downloading = downloadingLocked(sha256, at: now)
            return (holding.compactMap { table.entries[$0] }.filter { !banned.contains($0.heartbeat.agentId) },
                    downloading.keys.filter { !holding.contains($0) }.compactMap { table.entries[$0] }
                        .filter { $0.online && !banned.contains($0.heartbeat.agentId) },
                    downloading.values.map(\.size).max(), table.entries[asker])
        }
        let askerNetwork = askerEntry.flatMap { Self.network(of: $0.heartbeat.address) }
        let byNearness = { (left: AgentTable.Entry, right: AgentTable.Entry) -> Bool in
            let near = (Self.network(of: left.heartbeat.address) == askerNetwork, Self.network(of: right.heartbeat.address) == askerNetwork)
            if near.0 != near.1 { return near.0 }
            return left.heartbeat.currentLoad < right.heartbeat.currentLoad
        }
        let complete = holders.filter { $0.heartbeat.agentId != asker }.shuffled().sorted(by: byNearness)
        let partial = downloaders.filter { $0.heartbeat.agentId != asker }.shuffled().sorted(by: byNearness)
        let heldSize = holders.lazy.compactMap { $0.heartbeat.installedModels.first(where: { $0.sha256 == sha256 })?.sizeBytes }.first
        let blobSize = heldSize ?? noted ?? size
        if askerEntry?.heartbeat.seeding != nil, !banned.contains(asker), let blobSize {
            lock.withLock { noteDownloadingLocked(sha256, agent: asker, size: blobSize, until: now.addingTimeInterval(Self.ticketLifetime)) }
        }
        let expires = now.addingTimeInterval(Self.ticketLifetime)
        var seeders: [SeedersAnswer.Seeder] = []
        let chosen = (complete.map { ($0, true) } + partial.map { ($0, false) }).prefix(max(1, min(limit, Self.maximumSeedersPerAnswer)))
        for (entry, isComplete) in chosen {
            let size = isComplete ? entry.heartbeat.installedModels.first(where: { $0.sha256 == sha256 })?.sizeBytes : blobSize
            guard let size else { continue }
            let ticket = SeederTicket(coordinatorId: id, downloader: asker, seeder: entry.heartbeat.agentId, sha256: sha256,
                                      sizeBytes: size, seeders: holders.count, expires: expires)
            guard let token = try? ticket.encoded(signedBy: identity) else { continue }
            seeders.append(.init(agentId: entry.heartbeat.agentId, address: entry.heartbeat.address, complete: isComplete, ticket: token))
        }
        lock.withLock { counters.ticketsIssued += seeders.count }
        return SeedersAnswer(sha256: sha256, coordinatorId: id, seeders: seeders)
    }

    /// Agents downloading blobs remembered at most (all blobs together), and per blob.
    static let maximumDownloading = 100_000
    static let maximumDownloadingPerBlob = 1_024

    /// The unexpired agents downloading `sha256`; forgets the expired. With the lock held.
    func downloadingLocked(_ sha256: String, at now: Date) -> [String: (until: Date, size: UInt64)] {
        guard let agents = downloading[sha256] else { return [:] }
        let current = agents.filter { $0.value.until > now }
        if current.count != agents.count {
            downloadingCount -= agents.count - current.count
            downloading[sha256] = current.isEmpty ? nil : current
        }
        return current
    }

    private func noteDownloadingLocked(_ sha256: String, agent: String, size: UInt64, until: Date) {
        let known = downloading[sha256]?[agent] != nil
        guard known || (downloadingCount < Self.maximumDownloading
                        && (downloading[sha256]?.count ?? 0) < Self.maximumDownloadingPerBlob) else { return }
        if !known { downloadingCount += 1 }
        downloading[sha256, default: [:]][agent] = (until, size)
    }

    /// The host's /24 for an IPv4 address, else the host itself.
    static func network(of address: String) -> String? {
        guard let host = URLComponents(string: address)?.host else { return nil }
        let octets = host.split(separator: ".")
        return octets.count == 4 && octets.allSatisfy({ UInt8($0) != nil }) ? octets.prefix(3).joined(separator: ".") : host
    }
}
