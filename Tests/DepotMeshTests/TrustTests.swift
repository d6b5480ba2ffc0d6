import DepotHTTP
import Foundation
import GRDB
import MeshProtocol
import Testing
@testable import DepotMesh

/// Who may speak for an agent, and what a coordinator takes: in process, with real Ed25519,
/// HMAC credentials and SQLite. The same attacks over HTTP are in the CLI's MeshTrustTests.
@Suite struct TrustTests {
    let directory = "/tmp/depot-trust-\(getpid())-\(UUID().uuidString.prefix(8))"

    func coordinator(_ name: String = "c", _ change: (inout Coordinator.Configuration) -> Void = { _ in }) throws -> Coordinator {
        var configuration = Coordinator.Configuration()
        change(&configuration)
        return try Coordinator(directory: directory + "/" + name, configuration: configuration)
    }

    func beat(_ agent: MeshIdentity, model: String? = "qwen:1.5b", load: Int = 0, installed: [Heartbeat.InstalledModel] = []) -> Heartbeat {
        Heartbeat(agentId: agent.id, platform: "linux", freeMemoryMB: 1024, address: "http://127.0.0.1:4302", activeModel: model,
                  activeModelParamSize: 1.5, modelSwapInProgress: false, currentLoad: load, installedModels: installed)
    }

    func registration(_ agent: MeshIdentity, at coordinator: Coordinator, token: String? = nil, model: String? = "qwen:1.5b") throws -> AgentRegistration {
        try AgentRegistration(identity: agent, challenge: coordinator.challenge(), heartbeat: beat(agent, model: model), joinToken: token)
    }

    func status(_ body: () throws -> Void) -> Int {
        do { try body() } catch let error as APIError { return Int(error.status.code) } catch { return -1 }
        return 200
    }

    @Test func onlyTheKeyHolderSpeaksForAnAgent() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let coordinator = try coordinator()
        let honest = MeshIdentity(), attacker = MeshIdentity()
        let receipt = try coordinator.register(try registration(honest, at: coordinator))
        let attackerReceipt = try coordinator.register(try registration(attacker, at: coordinator))
        #expect(status { try coordinator.heartbeat(beat(honest), credential: receipt.credential) } == 200)

        // The attacker reuses the honest agent's id (readable from /mesh/agents) with its own address.
        var hijack = beat(honest)
        hijack.address = "http://evil.example:1"
        #expect(status { try coordinator.heartbeat(hijack, credential: attackerReceipt.credential) } == 403, "another agent's credential")
        #expect(status { try coordinator.heartbeat(hijack, credential: nil) } == 401, "no credential")
        let forged = receipt.credential.dropLast(4) + "AAAA"
        #expect(status { try coordinator.heartbeat(hijack, credential: String(forged)) } == 403, "a forged credential")
        // A registration claiming the honest id with the attacker's key, or re-signed by it.
        var claimed = try registration(attacker, at: coordinator)
        claimed.heartbeat.agentId = honest.id
        #expect(status { _ = try coordinator.register(claimed) } == 403)
        var resigned = try registration(honest, at: coordinator)
        resigned.heartbeat.address = "http://evil.example:1"
        resigned.signature = try attacker.signature(for: resigned.signedBytes)
        #expect(status { _ = try coordinator.register(resigned) } == 403)
        // With the honest agent's own credential (sniffed off plain HTTP), the signed address holds.
        #expect(status { try coordinator.heartbeat(hijack, credential: receipt.credential) } == 403)
        #expect(coordinator.route("qwen:1.5b").map(\.heartbeat.address) != "http://evil.example:1")
        #expect(coordinator.agentRows().first { $0.heartbeat.agentId == honest.id }?.heartbeat.address == "http://127.0.0.1:4302")

        // A registration is taken once, by the coordinator it was signed for, with a nonce it issued.
        let once = try registration(honest, at: coordinator)
        _ = try coordinator.register(once)
        #expect(status { _ = try coordinator.register(once) } == 409, "replayed")
        let elsewhere = try self.coordinator("other")
        #expect(status { _ = try elsewhere.register(try registration(honest, at: coordinator)) } == 403, "signed for another coordinator")
        var madeUp = try registration(honest, at: coordinator)
        madeUp.nonce = "n1.99999999999999.AAAA.BBBB"
        madeUp.signature = try honest.signature(for: madeUp.signedBytes)
        #expect(status { _ = try coordinator.register(madeUp) } == 401, "a nonce this coordinator never issued")

        let refused = coordinator.stats.refused
        #expect(refused["addressChanged"] == 1)
        #expect(refused["otherAgent"] == 1 && refused["unregistered"] == 1 && refused["forged"] == 3 && refused["replayed"] == 1)
        #expect(refused["badNonce"] == 1)
        #expect(elsewhere.stats.refused["otherCoordinator"] == 1)
    }

    @Test func joinByTokenOrByKeyList() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let byToken = try coordinator("token") { $0.admission = .token("correct horse battery") }
        let agent = MeshIdentity()
        #expect(status { _ = try byToken.register(try registration(agent, at: byToken)) } == 403, "no token")
        #expect(status { _ = try byToken.register(try registration(agent, at: byToken, token: "wrong horse battery")) } == 403)
        #expect(status { _ = try byToken.register(try registration(agent, at: byToken, token: "correct horse battery")) } == 200)
        let sent = try JSONEncoder().encode(try registration(agent, at: byToken, token: "correct horse battery"))
        #expect(String(decoding: sent, as: UTF8.self).contains("correct horse") == false, "the token never crosses the wire")
        #expect(byToken.stats.refused["notAdmitted"] == 2)

        let listed = MeshIdentity(), stranger = MeshIdentity()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try "# the lab's agents\n\(listed.publicKey)  # bench one\n\n".write(toFile: directory + "/allowed", atomically: true, encoding: .utf8)
        let byKeys = try coordinator("listed") { $0.admission = try! Admission.keys(file: directory + "/allowed") }
        #expect(status { _ = try byKeys.register(try registration(stranger, at: byKeys)) } == 403)
        #expect(status { _ = try byKeys.register(try registration(listed, at: byKeys)) } == 200)
        #expect(byKeys.agentRows().map(\.heartbeat.agentId) == [listed.id])
        try "not a key\n".write(toFile: directory + "/bad", atomically: true, encoding: .utf8)
        #expect(throws: MeshProtocolError.self) { try Admission.keys(file: directory + "/bad") }
    }

    @Test func everyFieldIsCheckedAndARefusalChangesNothing() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let coordinator = try coordinator { $0.maximumInstalledModels = 4 }
        let agent = MeshIdentity()
        let receipt = try coordinator.register(try registration(agent, at: coordinator))
        let good = beat(agent)
        let model = Heartbeat.InstalledModel(name: "qwen:1.5b", sha256: String(repeating: "a", count: 64), sizeBytes: 1)
        var cases: [(String, Heartbeat)] = []
        var long = good; long.activeModel = String(repeating: "m", count: 1_100_000); cases.append(("activeModel", long))
        var path = good; path.activeModel = "../../etc:passwd"; cases.append(("activeModel", path))
        var many = good; many.installedModels = Array(repeating: model, count: 5); cases.append(("installedModels", many))
        var badHash = good; badHash.installedModels = [Heartbeat.InstalledModel(name: "a:b", sha256: "xyz", sizeBytes: 1)]
        cases.append(("installedModels.0.sha256", badHash))
        var load = good; load.currentLoad = .max; cases.append(("currentLoad", load))
        var size = good; size.activeModelParamSize = .infinity; cases.append(("activeModelParamSize", size))
        var platform = good; platform.platform = String(repeating: "p", count: 33); cases.append(("platform", platform))
        var address = good; address.address = "javascript:alert(1)"; cases.append(("address", address))
        var version = good; version.protocolVersion = 1; cases.append(("protocolVersion", version))
        for (field, heartbeat) in cases {
            do {
                try coordinator.heartbeat(heartbeat, credential: receipt.credential)
                Issue.record("a bad '\(field)' was taken")
            } catch {
                #expect(error.status == .badRequest && error.message.contains(field), "\(field): \(error.message)")
            }
        }
        #expect(coordinator.agentRows().map(\.heartbeat) == [good], "nothing changed")
        #expect(coordinator.stats.refused["invalid"] == cases.count)
    }

    @Test func theTableIsBoundedByEvictionAndRetention() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let start = Date()
        let coordinator = try coordinator {
            $0.maximumAgents = 3
            $0.heartbeatInterval = .seconds(1)
            $0.agentRetention = .seconds(3600)
        }
        let agents = (0..<4).map { _ in MeshIdentity() }
        for (index, agent) in agents.prefix(3).enumerated() {
            _ = try coordinator.register(try registration(agent, at: coordinator), at: start.addingTimeInterval(Double(index)))
        }
        // All three online: a fourth is refused, and nobody is evicted.
        #expect(status { _ = try coordinator.register(try registration(agents[3], at: coordinator), at: start.addingTimeInterval(3)) } == 503)
        // Later all three are offline: the one heard from longest ago makes room.
        let later = start.addingTimeInterval(30)
        _ = try coordinator.register(try registration(agents[3], at: coordinator), at: later)
        #expect(Set(coordinator.agentRows(at: later).map(\.heartbeat.agentId)) == Set([agents[1].id, agents[2].id, agents[3].id]))
        #expect(coordinator.stats.evicted == 1 && coordinator.stats.refused["tableFull"] == 1)

        // Offline past the retention period: forgotten, in SQLite too.
        coordinator.forgetRetired(at: later.addingTimeInterval(3600 - 10))
        #expect(coordinator.agentRows(at: later.addingTimeInterval(3600 - 10)).map(\.heartbeat.agentId) == [agents[3].id])
        try coordinator.persist()
        let restarted = try self.coordinator()
        #expect(restarted.agentRows(at: later).map(\.heartbeat.agentId) == [agents[3].id])
    }

    @Test func credentialsAreBase64URLAsFoundationWouldSpellThem() {
        var generator = SystemRandomNumberGenerator()
        for length in 0..<70 {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            let expected = Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-")
                .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
            #expect(SessionCredentials.base64URL(bytes) == expected)
        }
    }

    @Test func installedModelsAcrossAllAgentsAreBounded() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let coordinator = try coordinator {
            $0.maximumInstalledTotal = 5
            $0.heartbeatInterval = .seconds(1)
        }
        let start = Date()
        func listing(_ count: Int) -> [Heartbeat.InstalledModel] {
            (0..<count).map { Heartbeat.InstalledModel(name: "m:\($0)", sha256: String(repeating: "b", count: 64), sizeBytes: 1) }
        }
        let first = MeshIdentity(), second = MeshIdentity()
        _ = try coordinator.register(AgentRegistration(identity: first, challenge: coordinator.challenge(),
                                                      heartbeat: beat(first, installed: listing(4)), joinToken: nil), at: start)
        let crowded = try AgentRegistration(identity: second, challenge: coordinator.challenge(), heartbeat: beat(second, installed: listing(2)), joinToken: nil)
        #expect(status { _ = try coordinator.register(crowded, at: start) } == 503, "4 + 2 listed models are over the budget of 5")
        let later = try AgentRegistration(identity: second, challenge: coordinator.challenge(), heartbeat: beat(second, installed: listing(2)), joinToken: nil)
        #expect(status { _ = try coordinator.register(later, at: start.addingTimeInterval(10)) } == 200, "the offline first agent made room")
        #expect(coordinator.agentRows(at: start.addingTimeInterval(10)).map(\.heartbeat.agentId) == [second.id])
    }

    @Test func aFailedWriteKeepsItsRowsForTheNextOne() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let coordinator = try coordinator()
        let agent = MeshIdentity()
        _ = try coordinator.register(try registration(agent, at: coordinator))
        try coordinator.database.write { db in try db.execute(sql: "ALTER TABLE agent RENAME TO away") }
        #expect(throws: (any Error).self) { try coordinator.persist() }
        try coordinator.database.write { db in try db.execute(sql: "ALTER TABLE away RENAME TO agent") }
        try coordinator.persist()
        let count = try coordinator.database.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM agent") }
        #expect(count == 1)
    }

    @Test func aBeatIsWrittenWhenWhatItHoldsChangesOrOncePerMinuteNotForLoadAlone() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let coordinator = try coordinator()
        let agent = MeshIdentity()
        let start = Date(timeIntervalSince1970: (Date().timeIntervalSince1970 / 60).rounded(.down) * 60 + 1)
        let receipt = try coordinator.register(try registration(agent, at: coordinator), at: start)
        func saved() throws -> (load: Int, installed: Int, lastSeen: Double) {
            try coordinator.persist()
            let row = try coordinator.database.read { db in try Row.fetchOne(db, sql: "SELECT heartbeat, lastSeen FROM agent")! }
            let heartbeat = try JSONDecoder().decode(Heartbeat.self, from: Data((row["heartbeat"] as String).utf8))
            return (heartbeat.currentLoad, heartbeat.installedModels.count, row["lastSeen"])
        }
        #expect(try saved().load == 0)
        try coordinator.heartbeat(beat(agent, load: 3), credential: receipt.credential, at: start.addingTimeInterval(10))
        #expect(try saved().load == 0, "a beat that changes only the load is not written again within the minute")
        #expect(coordinator.agentRows(at: start.addingTimeInterval(10)).first?.heartbeat.currentLoad == 3, "but it is what the table answers")
        let installed = [Heartbeat.InstalledModel(name: "qwen:1.5b", sha256: String(repeating: "c", count: 64), sizeBytes: 9)]
        try coordinator.heartbeat(beat(agent, load: 4, installed: installed), credential: receipt.credential, at: start.addingTimeInterval(20))
        #expect(try saved() == (4, 1, start.addingTimeInterval(20).timeIntervalSince1970), "a new installed model is written at once")
        try coordinator.heartbeat(beat(agent, load: 5, installed: installed), credential: receipt.credential, at: start.addingTimeInterval(61))
        #expect(try saved() == (5, 1, start.addingTimeInterval(61).timeIntervalSince1970), "a new minute is written")
    }

    @Test func aSummaryKeepsTheModelsWithMostCapacityWithinItsCap() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let coordinator = try coordinator { $0.maximumSummaryModels = 2 }
        for (index, model) in ["a:1", "b:1", "c:1", "d:1"].enumerated() {
            var heartbeat = beat(MeshIdentity(), model: model)
            heartbeat.activeModelParamSize = Double(index + 1)
            coordinator.record(heartbeat, publicKey: "")
        }
        #expect(Set(coordinator.summary().modelAvailability.keys) == ["c:1", "d:1"])
        #expect(coordinator.stats.summaryModelsDropped == 2)
    }

    @Test func gossipAtTheHopLimitFromTheFutureOrOversizedIsRefusedAndTheSequenceSurvivesAClockStep() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let origin = try coordinator("a") { $0.maximumSummaryModels = 10 }
        func receiver() throws -> Coordinator {
            try coordinator("b") {
                $0.peers = [try! CoordinatorPeer(url: "http://a.invalid", publicKey: origin.publicKey)]
                $0.maximumSummaryModels = 3
            }
        }
        let b = try receiver()
        var overflow = try origin.outgoing(url: "http://a")
        overflow.hops = .max  // crashed the coordinator (overflow) before
        try overflow.stamp(by: origin.identity)
        #expect(throws: GossipRejection.tooManyHops) { try b.receive(overflow).get() }
        let future = try origin.outgoing(url: "http://a", at: Date().addingTimeInterval(3600))
        #expect(throws: GossipRejection.futureDated) { try b.receive(future).get() }

        // The origin's clock steps back an hour: its next summaries are still news.
        #expect(try b.receive(try origin.outgoing(url: "http://a")).get() == true)
        let afterStep = try origin.outgoing(url: "http://a", at: Date().addingTimeInterval(-60))
        #expect(try b.receive(afterStep).get() == true, "a larger sequence, whatever the clock says")
        // ... and after a restart of the origin.
        let restartedOrigin = try coordinator("a")
        #expect(try b.receive(try restartedOrigin.outgoing(url: "http://a", at: Date().addingTimeInterval(-30))).get() == true)

        var misnamed = try restartedOrigin.outgoing(url: "http://a")
        misnamed.signed.summary.coordinatorId = "someone-else"  // a summary naming another coordinator
        misnamed = try GossipMessage(signing: misnamed.signed, by: restartedOrigin.identity)
        #expect(throws: GossipRejection.forged) { try b.receive(misnamed).get() }
        for model in ["a:1", "b:1", "c:1", "d:1"] { restartedOrigin.record(beat(MeshIdentity(), model: model), publicKey: "") }
        #expect(throws: GossipRejection.oversized) { try b.receive(try restartedOrigin.outgoing(url: "http://a")).get() }
        #expect(b.gossipStats.rejected == ["tooManyHops": 1, "futureDated": 1, "oversized": 1, "forged": 1])
    }
}
