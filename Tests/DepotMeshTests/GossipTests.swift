import Foundation
import MeshProtocol
import Testing
@testable import DepotMesh

/// Signed gossip between real coordinators (in-process, real Ed25519 and SQLite).
@Suite struct GossipTests {
    let directory = "/tmp/depot-mesh-\(getpid())-\(UUID().uuidString.prefix(8))"

    func coordinator(_ name: String, peers: [Coordinator] = []) throws -> Coordinator {
        var configuration = Coordinator.Configuration()
        configuration.gossipInterval = .seconds(60)
        configuration.peers = try peers.map { try CoordinatorPeer(url: "http://\($0.id).invalid", publicKey: $0.publicKey) }
        return try Coordinator(directory: directory + "/" + name, configuration: configuration)
    }

    func heartbeat(_ agent: String, model: String?, load: Int = 0) -> Heartbeat {
        Heartbeat(agentId: agent, platform: "linux", freeMemoryMB: 1024, address: "http://127.0.0.1:1", activeModel: model,
                  activeModelParamSize: 1.5, modelSwapInProgress: load < 0, currentLoad: load, installedModels: [])
    }

    /// A heartbeat recorded as if its agent had registered (the route checks are tested apart).
    func record(_ coordinator: Coordinator, _ agent: String, model: String?, load: Int = 0) {
        coordinator.record(heartbeat(agent, model: model, load: load), publicKey: "")
    }

    @Test func acceptsSignedNewsAndRefusesForgedReplayedAndStaleMessages() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let origin = try coordinator("a"), impersonator = try coordinator("c")
        let receiver = try coordinator("b", peers: [origin, impersonator])
        record(origin, "agent-1", model: "qwen:1.5b")
        let message = try origin.outgoing(url: "http://a")
        #expect(try receiver.receive(message).get() == true)
        #expect(receiver.capabilities("qwen:1.5b").map(\.coordinatorId) == [origin.id])

        #expect(throws: GossipRejection.duplicate) { try receiver.receive(message).get() }
        var tampered = try origin.outgoing(url: "http://a", at: Date().addingTimeInterval(1))
        tampered.signed.summary.modelAvailability["qwen:1.5b"]?.agentCount = 99
        #expect(throws: GossipRejection.forged) { try receiver.receive(tampered).get() }
        var impostor = try impersonator.outgoing(url: "http://c", at: Date().addingTimeInterval(2))
        impostor.signed.origin = origin.id  // claims to be a: its key does not make that id
        #expect(throws: GossipRejection.forged) { try receiver.receive(impostor).get() }
        var unsigned = try origin.outgoing(url: "http://a", at: Date().addingTimeInterval(3))
        unsigned.signature = ""
        #expect(throws: GossipRejection.forged) { try receiver.receive(unsigned).get() }
        let old = try origin.outgoing(url: "http://a", at: Date().addingTimeInterval(-4 * 60))
        #expect(throws: GossipRejection.stale) { try receiver.receive(old).get() }
        let newer = try origin.outgoing(url: "http://a", at: Date().addingTimeInterval(5))
        #expect(try receiver.receive(newer).get() == true, "a newer sequence from the same origin is news")
        #expect(throws: GossipRejection.replayed) { try receiver.receive(message).get() }

        // Only configured peers are heard, and a relay's stamp covers the hop count.
        let outsider = try coordinator("d")
        #expect(throws: GossipRejection.notAPeer) { try receiver.receive(try outsider.outgoing(url: "http://d")).get() }
        var relayedByOutsider = try origin.outgoing(url: "http://a", at: Date().addingTimeInterval(6))
        relayedByOutsider.hops = 1
        try relayedByOutsider.stamp(by: outsider.identity)
        #expect(throws: GossipRejection.notAPeer) { try receiver.receive(relayedByOutsider).get() }
        var relayed = try origin.outgoing(url: "http://a", at: Date().addingTimeInterval(7))
        relayed.hops = 3
        try relayed.stamp(by: impersonator.identity)
        var hopsReset = relayed
        hopsReset.hops = 0
        #expect(throws: GossipRejection.forged) { try receiver.receive(hopsReset).get() }
        var senderSwapped = relayed
        senderSwapped.sender = origin.id  // c's stamp, claimed as a's
        #expect(throws: GossipRejection.forged) { try receiver.receive(senderSwapped).get() }
        #expect(try receiver.receive(relayed).get() == true, "a peer may relay another peer's news")
        #expect(throws: GossipRejection.duplicate) { try receiver.receive(relayed).get() }
        var shorter = relayed
        shorter.hops = 1
        try shorter.stamp(by: impersonator.identity)
        #expect(try receiver.receive(shorter).get() == true, "the same news by a shorter path goes on, farther")
        #expect(throws: GossipRejection.duplicate) { try receiver.receive(shorter).get() }
        var negative = try origin.outgoing(url: "http://a", at: Date().addingTimeInterval(8))
        negative.hops = -5  // would carry it past the hop limit
        try negative.stamp(by: impersonator.identity)
        #expect(throws: GossipRejection.tooManyHops) { try receiver.receive(negative).get() }

        let stats = receiver.gossipStats
        #expect(stats.accepted == 4)
        #expect(stats.rejected == ["duplicate": 3, "replayed": 1, "forged": 5, "stale": 1, "notAPeer": 2, "tooManyHops": 1])
    }

    @Test func peersAreGivenAsURLAndKey() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let other = try coordinator("a")
        let peer = try CoordinatorPeer(parsing: "http://10.0.0.3:4310/#\(other.publicKey)")
        #expect(peer.url == "http://10.0.0.3:4310" && peer.id == other.id)
        #expect(throws: MeshProtocolError.self) { try CoordinatorPeer(parsing: "http://10.0.0.3:4310") }
        #expect(throws: MeshProtocolError.self) { try CoordinatorPeer(parsing: "http://10.0.0.3:4310#bm90IGEga2V5") }
        #expect(throws: MeshProtocolError.self) { try CoordinatorPeer(parsing: "10.0.0.3:4310#\(other.publicKey)") }
        #expect(try Coordinator.identity(directory: directory + "/a") == (other.id, other.publicKey), "the identity is kept")
    }

    @Test func summariesSurviveARestartAndExpireAfterThreeRounds() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let origin = try coordinator("a")
        record(origin, "agent-1", model: "qwen:1.5b")
        record(origin, "agent-2", model: "qwen:1.5b", load: -1)
        let summary = origin.summary()
        #expect(summary.modelAvailability["qwen:1.5b"]?.agentCount == 1, "a loading agent is not available")
        #expect(summary.agentCount == 2)
        _ = try coordinator("b", peers: [origin]).receive(try origin.outgoing(url: "http://a"))
        let restarted = try coordinator("b", peers: [origin])
        #expect(restarted.capabilities("qwen:1.5b").map(\.coordinatorId) == [origin.id], "kept in SQLite")
        #expect(restarted.capabilities("qwen:1.5b", at: Date().addingTimeInterval(3 * 60 + 1)).isEmpty, "expired after three rounds")
        let staleSoon = restarted.capabilities("qwen:1.5b", at: Date().addingTimeInterval(2 * 60 + 1))
        #expect(staleSoon.first?.stale == true, "older than two rounds: still listed, marked stale")
    }
}
