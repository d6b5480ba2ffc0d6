import AsyncHTTPClient
import Foundation
import MeshProtocol
import ModelCatalog
import ModelTransfer
import NIOCore

extension Agent {
    /// The pull for a catalog entry, with the seeders of its weights as peers.
    func catalogPull(_ entry: CatalogEntry, app: String?) async throws -> PullRequest {
        let pull: PullRequest
        do throws(CatalogError) {
            pull = try entry.pullRequest(app: app ?? configuration.appID, token: nil, allowUnverified: false, replace: false)
        } catch {
            throw AgentError.badRequest(error.message)
        }
        return await addingPeers(to: pull, piecesRoot: entry.piecesRoot, pieceSize: entry.pieceSize, fileSize: entry.fileSizeBytes)
    }

    /// The request with the agents that seed its weights as peers, when the weights' SHA-256
    /// is known and this agent hears nearby peers or has a coordinator, and a way to ask again
    /// as the download runs (agents that start pulling together find each other); with a
    /// pieces root from the signed catalog and no piece manifest, the piece layer comes from
    /// the first peer whose layer leads to that root. Anything that fails leaves the request as
    /// it was: the CDN alone.
    func addingPeers(to request: PullRequest, piecesRoot: String?, pieceSize: UInt64?, fileSize: UInt64?) async -> PullRequest {
        let coordinator = meshCredential.current == nil ? nil : configuration.coordinator
        guard coordinator != nil || nearby.current != nil, let sha256 = request.sha256?.sha256 else { return request }
        var peered = request
        peered.peers = await peers(of: sha256, size: fileSize, coordinator: coordinator)
        if peered.pieces == nil, let piecesRoot, let fileSize {
            peered.pieces = await PieceManifest.fromPeers(peered.peers, piecesRoot: piecesRoot, pieceSize: pieceSize, fileSize: fileSize)
        }
        peered.findPeers = PeerFinder { [weak self] in
            await self?.peers(of: sha256, size: fileSize, coordinator: coordinator) ?? []
        }
        return peered
    }

    /// Nearby seeders first (closest, and served without a ticket on the LAN), then the ones
    /// the coordinator hands out; a peer both name is taken with the coordinator's ticket, on
    /// which it earns credits.
    func peers(of sha256: String, size: UInt64?, coordinator: String?) async -> [PeerSource] {
        let lan = (nearby.current?.seeders(of: sha256) ?? []).map { PeerSource(url: "\($0.address)/p2p/blobs/sha256/\(sha256)", ticket: nil) }
        guard let coordinator else { return lan }
        let brokered = await seeders(of: sha256, size: size, coordinator: coordinator)
        let ticketed = Dictionary(brokered.map { ($0.url, $0) }, uniquingKeysWith: { first, _ in first })
        return lan.map { ticketed[$0.url] ?? $0 } + brokered.filter { peer in !lan.contains { $0.url == peer.url } }
    }

    /// The seeders the coordinator hands out for `sha256` (complete ones first, then agents
    /// still downloading it), as peer sources with their tickets. Asking registers this agent
    /// as one that is downloading the blob, so later askers find it.
    func seeders(of sha256: String, size: UInt64?, coordinator: String) async -> [PeerSource] {
        guard let credential = meshCredential.current else { return [] }
        let (status, body) = await CoordinatorRequests.get("\(coordinator)/mesh/seeders?sha256=\(sha256)" + (size.map { "&size=\($0)" } ?? ""),
                                                           credential: credential)
        guard status == 200, let answer = try? JSONDecoder().decode(SeedersAnswer.self, from: body), answer.sha256 == sha256 else {
            return []
        }
        return answer.seeders.map { seeder in
            PeerSource(url: "\(seeder.address)/p2p/blobs/sha256/\(sha256)", ticket: seeder.ticket,
                       account: account(with: seeder, sha256: sha256, coordinator: coordinator))
        }
    }

    /// What a download owes `seeder`: receipts signed with this agent's key for the bytes
    /// of its pieces that were verified, and a report to the coordinator for a bad piece.
    func account(with seeder: SeedersAnswer.Seeder, sha256: String, coordinator: String) -> PeerAccount {
        let identity = identity, credential = meshCredential
        return PeerAccount(sign: { verifiedBytes, sequence in
            (try? SeedReceipt(ticketToken: seeder.ticket, sha256: sha256, seeder: seeder.agentId, downloader: identity,
                              verifiedBytes: verifiedBytes, sequence: sequence))?.headerValue
        }, onBadPiece: { piece in
            guard let credential = credential.current else { return }
            Task {
                _ = await CoordinatorRequests.post("\(coordinator)/mesh/reports", SeederReport(ticket: seeder.ticket, piece: piece),
                                                   credential: credential, timeout: .seconds(10))
            }
        })
    }

    /// Sends the coordinator the receipts peers signed for what this agent seeded to them.
    func submitReceipts(to coordinator: String, credential: String, client: HTTPClient) async {
        let items = receipts.unsubmitted()
        guard !items.isEmpty else { return }
        let (status, _) = await CoordinatorRequests.post("\(coordinator)/mesh/receipts", ReceiptSubmission(receipts: items),
                                                         credential: credential, client: client, timeout: .seconds(10))
        if status == 200 { receipts.submitted(items) }
    }
}
