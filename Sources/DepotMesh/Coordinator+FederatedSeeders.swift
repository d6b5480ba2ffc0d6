import AsyncHTTPClient
import DepotHTTP
import Foundation
import GRDB
import HTTPTypes
import MeshProtocol
import NIOCore

/// Seeders across federation peers: when an agent asks for more seeders than this
/// coordinator's agents provide, it asks its peers, signing the request; each peer issues its
/// own tickets for this coordinator's agent. The peer's seeders check those tickets against
/// their coordinator's key as always, and submit the agent's receipts there; the peer holds
/// the credits until this coordinator says the agent lists the blob. An agent's report of a
/// bad piece on a peer's ticket is passed on to that peer, which counts it toward the ban.
extension Coordinator {
    /// How long a federated answer may take before the agent is answered without it.
    static let federationTimeout: TimeAmount = .seconds(2)

    /// `GET /mesh/seeders`: this coordinator's seeders, then its federation peers' (tickets
    /// from them), up to `limit`.
    public func seedersAcrossFederation(of sha256: String, credential: String?, size: UInt64? = nil, limit: Int = 8,
                                        at now: Date = Date()) async throws(APIError) -> SeedersAnswer {
        let asker = try seedersAsker(sha256: sha256, credential: credential, at: now)
        var answer = issueTickets(for: sha256, to: asker, size: size, limit: limit, at: now)
        let wanted = min(limit, Self.maximumSeedersPerAnswer) - answer.seeders.count
        guard wanted > 0, !configuration.peers.isEmpty else { return answer }
        let found = await withTaskGroup(of: [SeedersAnswer.Seeder].self) { group in
            for peer in configuration.peers {
                group.addTask { await self.askPeer(peer, for: sha256, downloader: asker, size: size, limit: wanted) }
            }
            return await group.reduce(into: []) { $0 += $1 }
        }
        let known = Set(answer.seeders.map(\.agentId))
        answer.seeders += found.filter { !known.contains($0.agentId) }.prefix(wanted)
        return answer
    }

    /// A peer's seeders for `downloader`, each ticket checked: signed by that peer, for this
    /// agent, blob and seeder. Nothing when the peer does not answer in time.
    private func askPeer(_ peer: CoordinatorPeer, for sha256: String, downloader: String, size: UInt64?, limit: Int) async -> [SeedersAnswer.Seeder] {
        guard let request = try? FederatedSeedersRequest(coordinator: identity, downloader: downloader, sha256: sha256, size: size, limit: limit),
              let (status, data) = await post(request, to: peer, path: "/mesh/federation/seeders"), status == 200,
              let answer = try? JSONDecoder().decode(SeedersAnswer.self, from: data),
              answer.sha256 == sha256, answer.coordinatorId == peer.id else { return [] }
        return answer.seeders.prefix(limit).filter { seeder in
            guard case .success(let ticket) = SeederTicket.verified(seeder.ticket, coordinatorKey: peer.publicKey) else { return false }
            return ticket.downloader == downloader && ticket.sha256 == sha256 && ticket.seeder == seeder.agentId
        }
    }

    /// A signed request to a federation peer; its answer's status and body, nil for no answer
    /// within `federationTimeout`.
    private func post(_ request: some FederationRequest, to peer: CoordinatorPeer, path: String) async -> (status: UInt, body: Data)? {
        guard let body = try? JSONEncoder().encode(request) else { return nil }
        var post = HTTPClientRequest(url: peer.url + path)
        post.method = .POST
        post.headers.add(name: "Content-Type", value: "application/json")
        post.body = .bytes(ByteBuffer(bytes: body))
        guard let response = try? await HTTPClient.shared.execute(post, timeout: Self.federationTimeout),
              let data = try? await response.body.collect(upTo: 256 << 10) else { return nil }
        return (response.status.code, Data(data.readableBytesView))
    }

    /// Checks a federation peer's request: from a configured peer, signed by it, within the
    /// allowed clock skew, its nonce new. Refusals are counted by reason.
    private func admit(_ request: some FederationRequest, at now: Date) throws(APIError) -> CoordinatorPeer {
        guard let peer = configuration.peers.first(where: { $0.id == request.coordinatorId }) else {
            throw refuseFederated("notAPeer", .forbidden, "coordinator \(request.coordinatorId.prefix(16)) is not a federation peer of this one")
        }
        guard request.isSigned(by: peer.key) else { throw refuseFederated("forged", .forbidden, "the request is not signed by that peer's key") }
        let skew = configuration.maximumClockSkew.seconds
        guard abs(now.timeIntervalSince1970 - Double(request.sentAt) / 1000) <= skew else {
            throw refuseFederated("stale", .badRequest, "the request was sent more than \(Int(skew)) s from this coordinator's clock")
        }
        guard request.nonce.utf8.count <= 64 else { throw refuseFederated("invalid", .badRequest, "the nonce is longer than 64 bytes") }
        let outcome = lock.withLock { usedNonces.use("federation:" + request.nonce, expiring: now.addingTimeInterval(2 * skew), at: now) }
        guard outcome == .fresh else { throw refuseFederated("replayed", .conflict, "the request's nonce was used before") }
        return peer
    }

    private func refuseFederated(_ reason: String, _ status: HTTPResponse.Status, _ message: String) -> APIError {
        lock.withLock { counters.federationRefused[reason, default: 0] += 1 }
        return APIError(status, message)
    }

    /// `POST /mesh/federation/seeders`: a peer's signed request for seeders on behalf of one
    /// of its agents; this coordinator's tickets for that agent.
    public func federatedSeeders(_ request: FederatedSeedersRequest, at now: Date = Date()) throws(APIError) -> SeedersAnswer {
        let peer = try admit(request, at: now)
        guard Heartbeat.isSHA256(request.sha256), request.downloader.utf8.count == 16, request.downloader.allSatisfy(\.isHexDigit),
              (1...Self.maximumSeedersPerAnswer).contains(request.limit) else {
            throw refuseFederated("invalid", .badRequest, "the request needs a 64-digit sha256, a 16-digit downloader and a limit of 1 to \(Self.maximumSeedersPerAnswer)")
        }
        let answer = issueTickets(for: request.sha256, to: request.downloader, size: request.size, limit: request.limit, at: now)
        try? database.write { db in
            try db.execute(sql: "INSERT OR REPLACE INTO federatedDownloader (agent, coordinatorId) VALUES (?, ?)",
                           arguments: [request.downloader, peer.id])
        }
        lock.withLock { counters.federatedTickets += answer.seeders.count }
        return answer
    }

    /// Passes an agent's report on a peer's ticket to that peer, signed; the peer's answer
    /// (whether the seeder is banned now).
    func reportAcrossFederation(_ report: SeederReport, reporter: String, to peer: CoordinatorPeer, at now: Date) async throws(APIError) -> Bool {
        guard let request = try? FederatedReport(coordinator: identity, reporter: reporter, report: report, at: now),
              let (status, data) = await post(request, to: peer, path: "/mesh/federation/reports"),
              let answer = try? JSONDecoder().decode([String: String].self, from: data) else {
            throw APIError(.badGateway, "the federation peer \(peer.url) that issued the ticket did not answer")
        }
        guard status == 200 else {
            // The peer's refusal, as it gave it (another agent's ticket: 403).
            throw APIError(HTTPResponse.Status(code: Int(status)), "the federation peer that issued the ticket refused the report: \(answer["error"] ?? "")")
        }
        lock.withLock { counters.reportsPassedOn += 1 }
        return answer["status"] == "banned"
    }

    /// `POST /mesh/federation/reports`: a peer's agent reports a bad piece from one of this
    /// coordinator's seeders. Counted like a report from this coordinator's own agents, when
    /// the ticket is this coordinator's, issued to that agent at that peer's request.
    public func federatedReport(_ request: FederatedReport, at now: Date = Date()) throws(APIError) -> Bool {
        let peer = try admit(request, at: now)
        guard case .success(let ticket) = SeederTicket.verified(request.report.ticket, coordinatorKey: publicKey) else {
            throw refuseReport("badTicket", "the ticket is not one this coordinator issued")
        }
        let vouchedBy = try? database.read { db in
            try String.fetchOne(db, sql: "SELECT coordinatorId FROM federatedDownloader WHERE agent = ?", arguments: [ticket.downloader])
        }
        guard vouchedBy == peer.id else {
            throw refuseReport("notYourTicket", "the ticket was not issued to an agent of coordinator \(peer.id.prefix(16))")
        }
        return try recordReport(on: ticket, piece: request.report.piece, by: request.reporter, at: now)
    }

    /// `GET /mesh/federation/holds?agent=&sha256=`: whether this coordinator's agent lists the
    /// blob in its heartbeats, for a peer holding credits on its receipts.
    public func holds(agent: String, sha256: String, at now: Date = Date()) -> Bool {
        withCurrentTable(at: now) { table in table.entries[agent]?.heartbeat.installedModels.contains { $0.sha256 == sha256 } == true }
    }

    /// Releases held credits of downloaders from federation peers whose coordinator now says
    /// they list the blob.
    func settleFederatedCredits(at now: Date = Date()) async {
        guard let pending = try? database.read({ db in
            try Row.fetchAll(db, sql: """
                SELECT DISTINCT credit.downloader, credit.sha256, federatedDownloader.coordinatorId FROM credit
                JOIN federatedDownloader ON federatedDownloader.agent = credit.downloader WHERE credit.settled = 0
                """)
        }) else { return }
        for row in pending {
            let (agent, sha256, origin) = (row[0] as String, row[1] as String, row[2] as String)
            guard let peer = configuration.peers.first(where: { $0.id == origin }) else { continue }
            let url = "\(peer.url)/mesh/federation/holds?agent=\(agent)&sha256=\(sha256)"
            guard let response = try? await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: Self.federationTimeout),
                  response.status == .ok, let body = try? await response.body.collect(upTo: 4096),
                  let answer = try? JSONDecoder().decode([String: Bool].self, from: Data(body.readableBytesView)),
                  answer["holds"] == true else { continue }
            _ = try? await database.write { db in try Self.markSettled(downloader: agent, sha256: sha256, db) }
        }
    }

    static func migrateFederation(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v4: federated downloaders") { db in
            try db.create(table: "federatedDownloader") { t in
                t.primaryKey("agent", .text)
                t.column("coordinatorId", .text).notNull()
            }
        }
    }
}
