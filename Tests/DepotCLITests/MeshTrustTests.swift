import DepotTestSupport
import Foundation
import MeshProtocol
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The attacks on the mesh, as an outsider on 127.0.0.1 would make them, against real
/// `depot coordinator` and `depot serve` processes.
@Suite(.serialized) struct MeshTrustTests {
    static let interval = "0.5"




    @Test func aHeartbeatReusingAnotherAgentsIdCannotTakeItsRoute() throws {
        let place = try MeshFixtures.agentWorkspace()
        defer { place.remove() }
        let coordinator = try AgentProcess(place, command: "coordinator", arguments: [
            "--state", place.path + "/coordinator", "--heartbeat-interval", Self.interval])
        defer { coordinator.stop() }
        let agent = try AgentProcess(place, arguments: ["--coordinator", coordinator.base, "--heartbeat-interval", Self.interval])
        defer { agent.stop() }
        #expect(try agent.post("/model/swap", #"{"model": "tiny:one"}"#).status == 200)
        try waitUntil { try coordinator.get("/mesh/route?model=tiny:one").object["address"] as? String == agent.base }
        let victim = try #require(try coordinator.meshAgents().first?["heartbeat"] as? [String: Any])
        let victimID = try #require(victim["agentId"] as? String)
        let printed = try place.depot.run(["serve", "--print-identity"]).stdout
        let keyMode = try FileManager.default.attributesOfItem(atPath: place.path + "/store/agent.key")[.posixPermissions] as? Int
        #expect(keyMode == 0o600, "the agent's private key is readable by its owner only")
        // Listings leave out the installed models (their count stays) unless asked for them.
        let plainRow = try #require((try coordinator.get("/mesh/agents").object["agents"] as? [[String: Any]])?.first)
        #expect(((plainRow["heartbeat"] as? [String: Any])?["installedModels"] as? [Any])?.isEmpty == true
                && plainRow["installedModelCount"] as? Int == 2)
        #expect(printed.hasPrefix(victimID + " "), "the agent's id is its key's: \(printed)")

        // Plain text, as the attack was made before identities: no credential.
        var stolen = victim
        stolen["address"] = "http://127.0.0.1:6666"
        let body = String(decoding: try JSONSerialization.data(withJSONObject: stolen), as: UTF8.self)
        #expect(try coordinator.post("/heartbeat", body).status == 401)
        // With a credential of the attacker's own (registered with its own key).
        var attacker = MeshAgent()
        #expect(try attacker.register(with: coordinator).status == 200)
        #expect(try coordinator.post("/heartbeat", body, headers: ["Authorization: Bearer \(attacker.credential ?? "")"]).status == 403)
        // Registering under the victim's id with the attacker's key.
        var claim = attacker.heartbeat(model: "tiny:one", address: "http://127.0.0.1:6666")
        claim.agentId = victimID
        let challenge = try JSONDecoder().decode(RegistrationChallenge.self, from: Data(try coordinator.get("/mesh/challenge").body.utf8))
        var registration = try AgentRegistration(identity: attacker.identity, challenge: challenge, heartbeat: claim, joinToken: nil)
        registration.heartbeat.agentId = victimID
        #expect(try coordinator.post("/register", MeshAgent.text(registration)).status == 403)
        // A replayed registration is refused too.
        let fresh = try AgentRegistration(identity: attacker.identity, challenge: try JSONDecoder().decode(
            RegistrationChallenge.self, from: Data(try coordinator.get("/mesh/challenge").body.utf8)), heartbeat: attacker.heartbeat(), joinToken: nil)
        #expect(try coordinator.post("/register", MeshAgent.text(fresh)).status == 200)
        #expect(try coordinator.post("/register", MeshAgent.text(fresh)).status == 409)

        Thread.sleep(forTimeInterval: 1.2)  // beats of the real agent come and go meanwhile
        #expect(try coordinator.get("/mesh/route?model=tiny:one").object["address"] as? String == agent.base)
        let refused = try coordinator.get("/mesh/stats").object["refused"] as? [String: Int] ?? [:]
        #expect(refused["unregistered"] == 1 && refused["otherAgent"] == 1 && refused["forged"] == 1 && refused["replayed"] == 1, "\(refused)")
    }

    @Test func aFakeAgentCannotJoinByTokenOrKeysNorReachAFederatedPeer() throws {
        let place = try MeshFixtures.agentWorkspace()
        defer { place.remove() }
        let ports = [freePort(), freePort()]
        let keys = try ["gate", "peer"].map { name in
            try #require(try place.depot.run(["coordinator", "--print-identity", "--state", place.path + "/" + name]).stdout
                .split(separator: " ").last.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) })
        }
        let common = ["--heartbeat-interval", Self.interval, "--gossip-interval", Self.interval]
        let gate = try AgentProcess(place, command: "coordinator", arguments: common + [
            "--state", place.path + "/gate", "--port", "\(ports[0])", "--join", "token", "--peer", "http://127.0.0.1:\(ports[1])#\(keys[1])",
        ], environment: ["DEPOT_JOIN_TOKEN": "s3cret-join-token"])
        defer { gate.stop() }
        let peer = try AgentProcess(place, command: "coordinator", arguments: common + [
            "--state", place.path + "/peer", "--port", "\(ports[1])", "--peer", "http://127.0.0.1:\(ports[0])#\(keys[0])",
        ])
        defer { peer.stop() }
        let agent = try AgentProcess(place, arguments: ["--coordinator", gate.base, "--heartbeat-interval", Self.interval,
                                                        "--join-token", "s3cret-join-token"])
        defer { agent.stop() }
        #expect(try agent.post("/model/swap", #"{"model": "tiny:one"}"#).status == 200)

        var fake = MeshAgent()
        let fakeBeat = fake.heartbeat(model: "llama3:70b")
        #expect(try fake.register(with: gate, heartbeat: fakeBeat).status == 403, "no join proof")
        #expect(try fake.register(with: gate, heartbeat: fakeBeat, token: "guessed-token").status == 403)
        #expect(try fake.beat(gate, fakeBeat).status == 401)
        // The honest agent's model reaches the peer through gossip; the fake one never does.
        try waitUntil { try peer.capabilities("tiny:one").first?["agentCount"] as? Int == 1 }
        Thread.sleep(forTimeInterval: 1.0)
        #expect(try peer.capabilities("llama3:70b").isEmpty && gate.capabilities("llama3:70b").isEmpty)
        #expect((try gate.get("/mesh/stats").object["refused"] as? [String: Int])?["notAdmitted"] == 2)
        // The token is in no file of the coordinator's state and in no output.
        for file in try FileManager.default.subpathsOfDirectory(atPath: place.path + "/gate") {
            let data = (try? Data(contentsOf: URL(fileURLWithPath: place.path + "/gate/" + file))) ?? Data()
            #expect(data.range(of: Data("s3cret-join-token".utf8)) == nil, "\(file) holds the token")
        }
        #expect(!(try String(contentsOfFile: gate.running.stdoutPath, encoding: .utf8)).contains("s3cret"))

        // By key list: the agent's key (printed by --print-identity) is listed, a stranger's is not.
        let agentKey = try #require(try place.depot.run(["serve", "--print-identity"]).stdout.split(separator: " ").last)
        try "# lab agents\n\(agentKey)".write(toFile: place.path + "/allowed", atomically: true, encoding: .utf8)
        let listed = try AgentProcess(place, command: "coordinator", arguments: [
            "--state", place.path + "/listed", "--join", "keys", "--join-keys", place.path + "/allowed", "--heartbeat-interval", Self.interval])
        defer { listed.stop() }
        let second = try AgentProcess(place, arguments: ["--coordinator", listed.base, "--heartbeat-interval", Self.interval])
        defer { second.stop() }
        var stranger = MeshAgent()
        #expect(try stranger.register(with: listed).status == 403)
        try waitUntil { try listed.meshAgents().count == 1 }
        #expect(try listed.meshAgents().compactMap { $0["publicKey"] as? String } == [String(agentKey).trimmingCharacters(in: .whitespacesAndNewlines)])
        let missingFile = try place.depot.run(["coordinator", "--state", place.path + "/x", "--join", "keys"])
        #expect(missingFile.status == 64 && missingFile.stderr.contains("--join-keys"))
    }

    @Test func hostileHeartbeatsLeaveMemoryAndStateBoundedAndGossipFlowing() throws {
        let place = Workspace()
        defer { place.remove() }
        let ports = [freePort(), freePort()]
        let keys = try ["a", "b"].map { name in
            try #require(try place.depot.run(["coordinator", "--print-identity", "--state", place.path + "/" + name]).stdout
                .split(separator: " ").last.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) })
        }
        func start(_ index: Int) throws -> AgentProcess {
            try AgentProcess(place, command: "coordinator", arguments: [
                "--state", place.path + "/" + ["a", "b"][index], "--port", "\(ports[index])", "--gossip-interval", "0.3",
                "--peer", "http://127.0.0.1:\(ports[1 - index])#\(keys[1 - index])"])
        }
        let target = try start(0)
        defer { target.stop() }
        let peer = try start(1)
        defer { peer.stop() }
        var honest = MeshAgent()
        #expect(try honest.register(with: target).status == 200)
        try waitUntil { try peer.capabilities("tiny:new").count == 1 }
        Thread.sleep(forTimeInterval: 1)
        let rssBefore = residentMB(target), stateBefore = directoryBytes(place.path + "/a")

        var attacker = MeshAgent()
        #expect(try attacker.register(with: target).status == 200)
        let model = Heartbeat.InstalledModel(name: "tiny:one", sha256: String(repeating: "a", count: 64), sizeBytes: 1)
        var overCounted = attacker.heartbeat(installed: Array(repeating: model, count: 513))
        var longName = attacker.heartbeat()
        longName.activeModel = String(repeating: "m", count: 300)
        var huge = attacker.heartbeat()
        huge.activeModel = String(repeating: "m", count: 1_150_000)
        overCounted.address = "http://127.0.0.1:9"
        let encoder = JSONEncoder()
        let bodies = [
            (try encoder.encode(huge), 100), (try encoder.encode(overCounted), 300), (try encoder.encode(longName), 300),
        ].flatMap { body, count in Array(repeating: body, count: count) }
        let credential = ["Authorization: Bearer \(attacker.credential ?? "")"]
        let statuses = try target.postMany("/heartbeat", bodies: bodies, headers: credential, in: place.path)
        let unsigned = try target.postMany("/heartbeat", bodies: Array(repeating: try encoder.encode(attacker.heartbeat()), count: 300), in: place.path)
        #expect(statuses.count == 700 && unsigned.count == 300)
        #expect(statuses.prefix(100).allSatisfy { $0 == 413 }, "over the body limit")
        #expect(statuses.dropFirst(100).allSatisfy { $0 == 400 }, "too many models, a name over the store's limit")
        #expect(unsigned.allSatisfy { $0 == 401 })

        let rssAfter = residentMB(target), stateAfter = directoryBytes(place.path + "/a")
        print("mesh trust: RSS \(rssBefore) → \(rssAfter) MB, state \(stateBefore) → \(stateAfter) bytes after 1,000 hostile heartbeats")
        #expect(rssAfter - rssBefore < 40, "memory stays bounded: \(rssBefore) → \(rssAfter) MB")
        #expect(stateAfter - stateBefore < 2 << 20, "state stays bounded: \(stateBefore) → \(stateAfter) bytes")
        let page = try target.get("/mesh/agents").body
        #expect(page.utf8.count < 64 << 10, "/mesh/agents stays small: \(page.utf8.count) bytes")
        // Gossip keeps flowing: the peer still takes the summaries, and learns the next change.
        let failedBefore = (try target.get("/mesh/gossip/stats").object["traffic"] as? [String: Int])?["failed"] ?? -1
        #expect(try honest.beat(target, honest.heartbeat(model: "tiny:later")).status == 200)
        try waitUntil { try peer.capabilities("tiny:later").count == 1 }
        #expect((try target.get("/mesh/gossip/stats").object["traffic"] as? [String: Int])?["failed"] == failedBefore)
    }

    @Test func gossipWithAnOverflowingHopCountOrFromTheFutureIsRefusedAndTheCoordinatorStaysUp() throws {
        let place = Workspace()
        defer { place.remove() }
        // The sending peer is configured but not running: the test signs as it, with its key file.
        let senderKey = try #require(try place.depot.run(["coordinator", "--print-identity", "--state", place.path + "/sender"]).stdout
            .split(separator: " ").last.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) })
        let receiver = try AgentProcess(place, command: "coordinator", arguments: [
            "--state", place.path + "/receiver", "--peer", "http://127.0.0.1:9#\(senderKey)"])
        defer { receiver.stop() }
        let sender = try MeshIdentity.load(path: place.path + "/sender/coordinator.key")
        let summary = CapabilitySummary(coordinatorId: sender.id, agentCount: 1,
                                        modelAvailability: ["tiny:one": .init(agentCount: 1, totalParamCapacity: 1, avgLoad: 0)], timestamp: Date())
        func message(sequence: UInt64, sentAt: Date = Date(), hops: Int = 0) throws -> String {
            var message = try GossipMessage(signing: .init(origin: sender, originURL: "http://127.0.0.1:9", sequence: sequence, sentAt: sentAt,
                                                           summary: summary), by: sender)
            message.hops = hops
            try message.stamp(by: sender)
            return String(decoding: try GossipMessage.encoder.encode(message), as: UTF8.self)
        }
        let overflow = try receiver.post("/mesh/gossip", message(sequence: 1, hops: .max))
        #expect(overflow.status == 400 && overflow.body.contains("tooManyHops"), "\(overflow.body)")
        let future = try receiver.post("/mesh/gossip", message(sequence: 2, sentAt: Date().addingTimeInterval(86_400)))
        #expect(future.status == 400 && future.body.contains("futureDated"), "\(future.body)")
        #expect(try receiver.postMany("/mesh/gossip", bodies: [Data(repeating: 0x20, count: 3 << 20)], in: place.path) == [413])
        #expect(try receiver.post("/mesh/gossip", message(sequence: 3)).status == 200, "the coordinator is still up and takes good news")
        #expect(try receiver.capabilities("tiny:one").count == 1)
        let rejected = try receiver.get("/mesh/gossip/stats").object["rejected"] as? [String: Int] ?? [:]
        #expect(rejected == ["tooManyHops": 1, "futureDated": 1, "oversized": 1])
    }

    @Test func aFullTableMakesRoomByEvictingTheOldestOfflineAgent() throws {
        let place = Workspace()
        defer { place.remove() }
        let coordinator = try AgentProcess(place, command: "coordinator", arguments: [
            "--state", place.path + "/c", "--max-agents", "3", "--heartbeat-interval", "0.2"])
        defer { coordinator.stop() }
        var members = (0..<4).map { _ in MeshAgent() }
        for index in 0..<3 { #expect(try members[index].register(with: coordinator).status == 200) }
        #expect(try members[3].register(with: coordinator).status == 503, "all three online: nobody is pushed out")
        Thread.sleep(forTimeInterval: 0.8)  // the first three go offline
        #expect(try members[1].beat(coordinator).status == 200)
        #expect(try members[3].register(with: coordinator).status == 200)
        let ids = Set(try coordinator.meshAgents().compactMap { ($0["heartbeat"] as? [String: Any])?["agentId"] as? String })
        #expect(ids.count == 3 && ids.contains(members[3].identity.id) && ids.contains(members[1].identity.id))
        #expect(try coordinator.get("/mesh/stats").object["evicted"] as? Int == 1)
        let page = try coordinator.get("/mesh/agents?limit=2").object
        #expect((page["agents"] as? [Any])?.count == 2 && page["nextOffset"] as? Int == 2 && page["total"] as? Int == 3)
        #expect(try coordinator.get("/mesh/agents?limit=0").status == 400)
    }

    @Test func forgedNearbyRecordsNeitherGrowTheTableNorDisplaceARealPeer() throws {
        let first = try MeshFixtures.agentWorkspace(), second = try MeshFixtures.agentWorkspace()
        defer { first.remove(); second.remove() }
        let port = UInt16(freePort())
        let discovery = ["--discovery", "--discovery-interface", "127.0.0.1", "--discovery-port", "\(port)", "--announce-interval", "0.3"]
        let agentA = try AgentProcess(first, arguments: discovery)
        defer { agentA.stop() }
        let agentB = try AgentProcess(second, arguments: discovery)
        defer { agentB.stop() }
        #expect(try agentB.post("/model/swap", #"{"model": "tiny:one"}"#).status == 200)
        try waitUntil { try agentA.get("/mesh/peers/route?model=tiny:one").object["address"] as? String == agentB.base }
        let rssBefore = residentMB(agentA)
        let keyB = try #require(Data(base64Encoded: String(try second.depot.run(["serve", "--print-identity"]).stdout
            .split(separator: " ").last ?? "").trimmingCharacters(in: .whitespacesAndNewlines)))

        // 10,000 datagrams: validly signed records of made-up agents (each a new id), records
        // claiming B's key with another's signature (sending peers elsewhere), and garbage.
        let sender = try MulticastSender(port: port)
        let forger = MeshIdentity()
        var generator = SystemRandomNumberGenerator()
        for index in 0..<10_000 {
            let datagram: [UInt8]
            switch index % 4 {
            case 0, 1:
                let made = MeshIdentity()
                datagram = try NearbyRecord(publicKey: made.key.publicKey.rawRepresentation, sequence: 1, activeModel: "tiny:made-up", paramSize: 1,
                                            currentLoad: 0, freeMemoryMB: 1, host: "127.0.0.1", port: 6666).encoded(signedBy: made)
            case 2:
                var bytes = try NearbyRecord(publicKey: forger.key.publicKey.rawRepresentation, sequence: .max, activeModel: "tiny:one",
                                             paramSize: 1, currentLoad: 0, freeMemoryMB: 1, host: "127.0.0.1", port: 6666).encoded(signedBy: forger)
                bytes.replaceSubrange(4..<36, with: keyB)
                datagram = bytes
            default:
                datagram = (0..<Int.random(in: 1...600, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            }
            sender.send(datagram)
            if index % 50 == 49 { usleep(5_000) }  // paced, so the receivers' buffers take them
        }
        // An old record of B, properly signed with B's own key (read from its store): a replay.
        let identityB = try MeshIdentity.load(path: second.path + "/store/agent.key")
        sender.send(try NearbyRecord(publicKey: keyB, sequence: 1, activeModel: "tiny:one", paramSize: 1, currentLoad: 0, freeMemoryMB: 1,
                                     host: "127.0.0.1", port: 6666).encoded(signedBy: identityB))
        Thread.sleep(forTimeInterval: 0.5)
        let stats = try agentA.get("/mesh/peers/stats").object
        #expect((stats["replayed"] as? Int ?? 0) >= 1, "B's old record was dropped as a replay")
        print("mesh trust: nearby stats after the flood: \(stats)")
        #expect((stats["peers"] as? Int ?? .max) <= 256, "the table is capped")
        #expect((stats["invalid"] as? Int ?? 0) >= 2_000, "forged and garbage records were heard and refused")
        #expect((stats["tableFull"] as? Int ?? 0) > 0, "newcomers waited while the table was full")
        #expect(try agentA.get("/mesh/peers/route?model=tiny:one").object["address"] as? String == agentB.base, "B's entry was not taken over")
        let idB = MeshIdentity.id(ofKey: keyB)
        let listedB = ((try agentA.get("/mesh/peers").json as? [[String: Any]]) ?? []).first { $0["agentId"] as? String == idB }
        #expect(listedB?["address"] as? String == agentB.base)
        #expect(residentMB(agentA) - rssBefore < 40)
        // The flood expires: after three intervals only B is left.
        try waitUntil { ((try agentA.get("/mesh/peers").json as? [[String: Any]]) ?? []).count == 1 }
    }

    @Test func theCoordinatorRefusesWebPagesForeignHostsHugeBodiesAndIdleSockets() throws {
        let place = Workspace()
        defer { place.remove() }
        let coordinator = try AgentProcess(place, command: "coordinator", arguments: ["--state", place.path + "/c", "--max-connections", "16",
                                                                                   "--allowed-host", "mesh.lan"])
        defer { coordinator.stop() }
        var agent = MeshAgent()
        let challenge = try coordinator.request("GET", "/mesh/challenge", headers: ["Origin: https://evil.example"])
        #expect(challenge.status == 403)
        let simple = try coordinator.request("POST", "/heartbeat", "{}", headers: ["Origin: https://evil.example", "Content-Type: text/plain"])
        #expect(simple.status == 403)
        #expect(try coordinator.request("GET", "/mesh/agents", headers: ["Host: attacker.example:\(coordinator.port)"]).status == 403,
                "a DNS-rebinding name")
        #expect(try coordinator.request("GET", "/mesh/agents", headers: ["Host: localhost:\(coordinator.port)"]).status == 200)
        #expect(try coordinator.request("GET", "/mesh/agents", headers: ["Host: mesh.lan:\(coordinator.port)"]).status == 200,
                "a name given with --allowed-host")
        #expect(try coordinator.postMany("/heartbeat", bodies: [Data(repeating: 0x78, count: 3 << 20)], in: place.path) == [413])
        #expect(try agent.register(with: coordinator).status == 200)

        // A client that keeps its connection open between requests keeps it past the 10 s
        // that a first request head gets.
        let kept = try #require(TCPConnection(port: coordinator.port))
        let get = "GET /mesh/summary HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        #expect(kept.exchange(get)?.hasPrefix("HTTP/1.1 200") == true)
        // Idle and half-sent requests hold every connection the cap allows...
        var sockets = (0..<10).compactMap { _ in TCPConnection(port: coordinator.port) }
        sockets += (0..<5).compactMap { _ in
            let connection = TCPConnection(port: coordinator.port)
            connection?.write("GET /mesh/agents HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            return connection
        }
        #expect(sockets.count == 15)
        Thread.sleep(forTimeInterval: 0.3)
        #expect(try coordinator.request("GET", "/mesh/summary", maxTime: 2).status != 200, "the cap holds")
        // ... until the request-head deadline (10 s) closes them; then requests are answered again.
        let started = Date()
        for socket in sockets { #expect(socket.waitForClose(timeout: 15), "an idle connection is closed") }
        #expect(Date().timeIntervalSince(started) < 14)
        #expect(try coordinator.get("/mesh/summary").status == 200)
        #expect(kept.exchange(get)?.hasPrefix("HTTP/1.1 200") == true, "the kept-alive connection still answers")
    }

    /// Heartbeats are answered on the event loop, ahead of the router (the hot path), only when
    /// that cannot change what a client sees: tried with pipelined requests, a body in chunks or
    /// with escapes, `Connection: close`, a foreign `Host`, and broken bodies.
    @Test func heartbeatsTakenOnTheFastPathAnswerAsTheRouterWould() throws {
        let place = Workspace()
        defer { place.remove() }
        let coordinator = try AgentProcess(place, command: "coordinator", arguments: ["--state", place.path + "/c"])
        defer { coordinator.stop() }
        var agent = MeshAgent()
        #expect(try agent.register(with: coordinator).status == 200)
        let credential = try #require(agent.credential)
        func post(_ body: String, headers: [String] = []) -> String {
            (["POST /heartbeat HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json", "Authorization: Bearer \(credential)",
              "Content-Length: \(body.utf8.count)"] + headers).joined(separator: "\r\n") + "\r\n\r\n" + body
        }
        let beat = try MeshAgent.text(agent.heartbeat(model: "tiny:fast"))
        let get = "GET /mesh/stats HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"

        // Pipelined in one write: a heartbeat, a request for the router, a broken heartbeat
        // (while the router's answer may still be pending) and another router request. The
        // answers come in the order asked.
        let connection = try #require(TCPConnection(port: coordinator.port))
        let answers = connection.exchange(post(beat) + get + post(#"{"protocolVersion": 2}"#) + get, answers: 4)
        #expect(answers.map(\.status) == [200, 200, 400, 200], "\(answers)")
        #expect(answers.first?.body.contains(#""status":"ok""#) == true)
        #expect(answers.count > 1 && answers[1].body.contains(#""heartbeats""#), "the router's answer, second")
        #expect(answers.count > 2 && answers[2].body.contains("missing field 'agentId'"), "the decoder's message names the field")
        // The same connection goes on after a refusal.
        #expect(connection.exchange(post(beat), answers: 1).map(\.status) == [200])

        // Escapes and chunks are left to the router and Foundation's decoder: the same result.
        let escaped = beat.replacingOccurrences(of: #""platform":"linux""#, with: #""platform":"li\u006eux""#)
        #expect(escaped != beat)
        #expect(connection.exchange(post(escaped), answers: 1).map(\.status) == [200])
        let chunked = (["POST /heartbeat HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json", "Authorization: Bearer \(credential)",
                        "Transfer-Encoding: chunked"]).joined(separator: "\r\n") + "\r\n\r\n"
            + String(beat.utf8.count, radix: 16) + "\r\n" + beat + "\r\n0\r\n\r\n"
        #expect(connection.exchange(chunked, answers: 1).map(\.status) == [200])
        let row = try #require((try coordinator.get("/mesh/agents").object["agents"] as? [[String: Any]])?.first)
        #expect((row["heartbeat"] as? [String: Any])?["platform"] as? String == "linux")
        #expect((row["heartbeat"] as? [String: Any])?["activeModel"] as? String == "tiny:fast")

        // A forged credential, an unknown agent and a foreign Host are refused as before.
        #expect(connection.exchange(post(beat).replacingOccurrences(of: credential, with: credential + "x"), answers: 1).map(\.status) == [403])
        #expect(connection.exchange(post(beat).replacingOccurrences(of: "Host: 127.0.0.1", with: "Host: rebind.example"), answers: 1)
            .map(\.status) == [403])
        // Connection: close is answered, then the connection closes.
        #expect(connection.exchange(post(beat, headers: ["Connection: close"]), answers: 1).map(\.status) == [200])
        #expect(connection.waitForClose(timeout: 5))
        let stats = try coordinator.get("/mesh/stats").object
        #expect(stats["heartbeats"] as? Int == 5, "\(stats)")
    }

    // MARK: Helpers

    func residentMB(_ process: AgentProcess) -> Int {
        let status = (try? String(contentsOfFile: "/proc/\(process.running.process.processIdentifier)/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return (Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0) / 1024
    }

    func directoryBytes(_ path: String) -> Int {
        let files = (try? FileManager.default.subpathsOfDirectory(atPath: path)) ?? []
        return files.reduce(0) { total, file in
            total + ((try? FileManager.default.attributesOfItem(atPath: path + "/" + file)[.size] as? Int) ?? 0)
        }
    }

}
