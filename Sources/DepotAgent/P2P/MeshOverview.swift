import DepotHTTP
import Foundation
import Hummingbird
import MeshProtocol

/// What the web UI's mesh panel shows: this agent, what it seeds and sends, its credits at the
/// coordinator, the nearby peers, and who nearby seeds each installed model.
struct MeshOverview: Encodable {
    struct Seeding: Encodable {
        var maximumUploads: Int
        var bytesPerSecond: UInt64?
        var uploadsActive: Int
        var uploadsStarted: Int
        var bytesSent: UInt64
    }

    struct InstalledModel: Encodable {
        var name: String
        var sha256: String
        /// Nearby peers whose records name the model's weights.
        var nearbySeeders: [String]
    }

    var agentId: String
    var coordinator: String?
    /// Nil when this agent does not seed.
    var seeding: Seeding?
    /// Nil without a coordinator, or when it could not be asked (`creditsError` says why).
    var credits: CreditBalance?
    var creditsError: String?
    /// Nil when nearby discovery is off.
    var nearby: [NearbyDiscovery.Peer]?
    var models: [InstalledModel]
}

extension Agent {
    /// `GET /mesh/overview`. The coordinator gets two seconds to tell the credits: the page asks
    /// again in a few.
    func meshOverview() async -> MeshOverview {
        var credits: CreditBalance?, creditsError: String?
        if let coordinator = configuration.coordinator {
            do { credits = try await Self.credits(of: identity.id, coordinator: coordinator, timeout: .seconds(2)) } catch {
                creditsError = error.message
            }
        }
        let seeding = uploads.map { slots in
            let counts = slots.counts
            return MeshOverview.Seeding(maximumUploads: slots.policy.maximumUploads, bytesPerSecond: slots.policy.bytesPerSecond,
                                        uploadsActive: counts.active, uploadsStarted: counts.started, bytesSent: counts.bytesSent)
        }
        let discovery = nearby.current
        let models = ((try? manager.list()) ?? []).compactMap { entry in
            entry.weights.map { weights in
                MeshOverview.InstalledModel(name: entry.name, sha256: weights.sha256,
                                            nearbySeeders: discovery?.seeders(of: weights.sha256).map(\.address) ?? [])
            }
        }
        return MeshOverview(agentId: identity.id, coordinator: configuration.coordinator, seeding: seeding, credits: credits,
                            creditsError: creditsError, nearby: discovery?.currentPeers(), models: models)
    }
}
