import DepotTestSupport
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A coordinator and agents as real processes on 127.0.0.1, with short heartbeat intervals.
@Suite(.serialized) struct MeshTests {
    static let interval = "0.5"



    @Test func agentsHeartbeatTheirModelAndTheCoordinatorRoutesToThem() throws {
        let place = Workspace()
        defer { place.remove() }
        let state = ["--state", place.path + "/coordinator", "--heartbeat-interval", Self.interval, "--port", "\(freePort())"]
        var coordinator = try AgentProcess(place, command: "coordinator", arguments: state)
        defer { coordinator.stop() }
        let first = try MeshFixtures.agentWorkspace(), second = try MeshFixtures.agentWorkspace()
        defer { first.remove(); second.remove() }
        let mesh = ["--coordinator", coordinator.base, "--heartbeat-interval", Self.interval]
        let agentA = try AgentProcess(first, arguments: mesh)
        defer { agentA.stop() }
        let agentB = try AgentProcess(second, arguments: mesh)
        defer { agentB.stop() }

        try waitUntil { try coordinator.meshAgents().count == 2 }
        let registered = try coordinator.meshAgents()
        let installed = registered.compactMap { ($0["heartbeat"] as? [String: Any])?["installedModels"] as? [[String: Any]] }
        #expect(installed.allSatisfy { $0.count == 2 }, "heartbeats list installed models with their SHA-256")

        // A swap shows at the coordinator within one heartbeat (the change itself sends one).
        #expect(try agentA.post("/model/swap", #"{"model": "tiny:one"}"#).status == 200)
        let swappedAt = Date()
        try waitUntil(timeout: 0.5 + 1) {
            ((try coordinator.get("/mesh/capabilities?model=tiny:one").json as? [[String: Any]]) ?? []).first?["agentCount"] as? Int == 1
        }
        #expect(Date().timeIntervalSince(swappedAt) < 1.5)
        let route = try coordinator.get("/mesh/route?model=tiny:one").object
        #expect(route["address"] as? String == agentA.base)
        #expect(try coordinator.get("/mesh/route?model=tiny:two").status == 404)
        #expect(try coordinator.get("/mesh/capabilities?model=tiny:two").body == "[]")

        // A malformed heartbeat is refused, naming the field, and changes nothing.
        let missing = try coordinator.post("/heartbeat", #"{"protocolVersion": 2, "platform": "linux"}"#)
        #expect(missing.status == 400 && (missing.object["error"] as? String)?.contains("agentId") == true, "\(missing.body)")
        let wrongType = try coordinator.post("/heartbeat", #"{"protocolVersion": 2, "agentId": "x", "currentLoad": "busy"}"#)
        #expect(wrongType.status == 400)
        let future = try coordinator.post("/heartbeat", #"{"protocolVersion": 99}"#)
        #expect(future.status == 400)
        let hostileLoad = try coordinator.post("/heartbeat", #"""
            {"protocolVersion": 2, "agentId": "0123456789abcdef", "platform": "linux", "freeMemoryMB": 1, "address": "http://x", "activeModel": "tiny:one",
             "modelSwapInProgress": false, "currentLoad": 9223372036854775807, "installedModels": []}
            """#)
        #expect(hostileLoad.status == 400 && (hostileLoad.object["error"] as? String)?.contains("currentLoad") == true, "\(hostileLoad.body)")
        #expect(try coordinator.meshAgents().count == 2)

        // An agent that stops heartbeating goes offline after three intervals and leaves the summary.
        kill(agentA.running.process.processIdentifier, SIGKILL)
        try waitUntil(timeout: 3 * 0.5 + 2) {
            ((try coordinator.get("/mesh/capabilities?model=tiny:one").json as? [[String: Any]]) ?? []).isEmpty
        }
        let rows = try coordinator.meshAgents()
        #expect(rows.count == 2, "an offline agent stays listed")
        #expect(rows.filter { $0["online"] as? Bool == false }.count == 1)

        // The coordinator's table survives a restart; the live agent's session does not (a
        // restart forgets every credential), so it registers again and is back online.
        coordinator.stop()
        coordinator = try AgentProcess(place, command: "coordinator", arguments: state)
        #expect(try coordinator.meshAgents().count == 2)
        try waitUntil(timeout: 3) { try coordinator.get("/mesh/stats").object["heartbeats"] as? Int ?? 0 >= 2 }
        let stats = try coordinator.get("/mesh/stats").object
        #expect((stats["refused"] as? [String: Int])?["forged"] == nil && stats["registrations"] as? Int == 1, "\(stats)")
        #expect(try coordinator.meshAgents().contains { $0["online"] as? Bool == true })
    }

    @Test func aSummaryCrossesAChainOfThreeCoordinatorsAndExpiresWhenItsOriginDies() throws {
        let place = Workspace()
        defer { place.remove() }
        // Neighbours peer both ways (a-b, b-c), each naming the other's URL and public key.
        let names = ["a", "b", "c"]
        let ports = names.map { _ in freePort() }
        let keys = try names.map { name in
            let printed = try place.depot.run(["coordinator", "--print-identity", "--state", place.path + "/" + name])
            return try #require(printed.stdout.split(separator: " ").last.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) })
        }
        let keyless = try place.depot.run(["coordinator", "--state", place.path + "/a", "--peer", "http://127.0.0.1:\(ports[1])"])
        #expect(keyless.status == 64 && keyless.stderr.contains("URL#KEY"), "a peer without its key is refused: \(keyless.stderr)")
        func coordinator(_ index: Int) throws -> AgentProcess {
            let neighbours = [index - 1, index + 1].filter(names.indices.contains)
            return try AgentProcess(place, command: "coordinator", arguments: [
                "--state", place.path + "/" + names[index], "--port", "\(ports[index])",
                "--heartbeat-interval", Self.interval, "--gossip-interval", Self.interval,
            ] + neighbours.flatMap { ["--peer", "http://127.0.0.1:\(ports[$0])#\(keys[$0])"] })
        }
        let far = try coordinator(2)
        defer { far.stop() }
        let middle = try coordinator(1)
        defer { middle.stop() }
        let near = try coordinator(0)
        defer { near.stop() }
        // An agent under each coordinator: the middle's and far end's run tiny:one.
        let workspaces = try names.map { _ in try MeshFixtures.agentWorkspace() }
        defer { workspaces.forEach { $0.remove() } }
        let agents = try zip(workspaces, [near, middle, far]).map { workspace, coordinator in
            try AgentProcess(workspace, arguments: ["--coordinator", coordinator.base, "--heartbeat-interval", Self.interval])
        }
        defer { agents.forEach { $0.stop() } }
        let agent = agents[0]
        for other in agents.dropFirst() { #expect(try other.post("/model/swap", #"{"model": "tiny:one"}"#).status == 200) }
        try waitUntil {
            Set(((try near.get("/mesh/capabilities?model=tiny:one").json as? [[String: Any]]) ?? []).compactMap { $0["url"] as? String })
                == [middle.base, far.base]
        }
        #expect(try agent.post("/model/swap", #"{"model": "tiny:two"}"#).status == 200)
        let swappedAt = Date()
        let nearID = try #require(try near.get("/mesh/summary").object["coordinatorId"] as? String)

        // Within two gossip rounds (plus a heartbeat), the far end knows a's agent runs tiny:two.
        try waitUntil(timeout: 2 * 0.5 + 3) {
            ((try far.get("/mesh/capabilities?model=tiny:two").json as? [[String: Any]]) ?? []).contains {
                $0["coordinatorId"] as? String == nearID && $0["agentCount"] as? Int == 1
            }
        }
        print("mesh: the far coordinator learned of the swap after \(Date().timeIntervalSince(swappedAt)) s")
        let route = try far.get("/mesh/route?model=tiny:two").object
        #expect(route["coordinatorId"] as? String == nearID && route["coordinatorURL"] as? String == near.base,
                "no local agent fits, so the route names the federated coordinator")
        let stats = try far.get("/mesh/gossip/stats").object
        #expect((stats["rejected"] as? [String: Any] ?? [:]).isEmpty)
        #expect((stats["traffic"] as? [String: Any])?["sent"] as? Int ?? 0 > 0, "the far end gossips back to the middle")

        // Gossip from a coordinator that is not a configured peer is refused.
        let outsider = try place.depot.run(["coordinator", "--print-identity", "--state", place.path + "/outsider"])
        let outsiderID = try #require(outsider.stdout.split(separator: " ").first.map(String.init))
        let rogue = try AgentProcess(place, command: "coordinator", arguments: [
            "--state", place.path + "/outsider", "--gossip-interval", Self.interval, "--peer", "\(far.base)#\(keys[2])",
        ])
        defer { rogue.stop() }
        try waitUntil { (try far.get("/mesh/gossip/stats").object["rejected"] as? [String: Int])?["notAPeer"] ?? 0 >= 1 }
        #expect((try far.get("/mesh/gossip/stats").object["knownOrigins"] as? [String])?.contains(outsiderID) == false)

        // The origin dies: its summary expires at the far end after three rounds.
        near.stop()
        try waitUntil(timeout: 3 * 0.5 + 3) {
            ((try far.get("/mesh/capabilities?model=tiny:two").json as? [[String: Any]]) ?? []).isEmpty
        }
        #expect(try far.get("/mesh/route?model=tiny:two").status == 404)
    }

    @Test func aModelNewToACoordinatorIsGossipedWithinATenthOfTheInterval() throws {
        let place = Workspace()
        defer { place.remove() }
        let ports = [freePort(), freePort()]
        let keys = try ["a", "b"].map { name in
            try place.depot.run(["coordinator", "--print-identity", "--state", place.path + "/" + name]).stdout
                .split(separator: " ").last.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) } ?? ""
        }
        // A 20 s interval: the early summary goes out within 2 s, long before the next round.
        func coordinator(_ index: Int) throws -> AgentProcess {
            try AgentProcess(place, command: "coordinator", arguments: [
                "--state", place.path + "/" + ["a", "b"][index], "--port", "\(ports[index])", "--gossip-interval", "20",
                "--peer", "http://127.0.0.1:\(ports[1 - index])#\(keys[1 - index])",
            ])
        }
        let a = try coordinator(0)
        defer { a.stop() }
        let b = try coordinator(1)
        defer { b.stop() }
        var solo = MeshAgent()
        func sent(_ coordinator: AgentProcess) throws -> Int {
            (try coordinator.get("/mesh/gossip/stats").object["traffic"] as? [String: Any])?["sent"] as? Int ?? -1
        }
        try waitUntil { try sent(b) >= 1 }  // b started last: its first round reached a
        #expect(try solo.register(with: a).status == 200)
        let postedAt = Date()
        try waitUntil(timeout: 6) { ((try b.get("/mesh/capabilities?model=tiny:new").json as? [[String: Any]]) ?? []).count == 1 }
        #expect(Date().timeIntervalSince(postedAt) < 4, "sent early, not at the next 20 s round")

        // A change of load alone waits for the round.
        var before = 0
        try waitUntil {  // a counts a POST once b has answered it: wait until the count holds still
            let first = try sent(a)
            usleep(300_000)
            before = try sent(a)
            return before == first
        }
        #expect(try solo.beat(a, solo.heartbeat(load: 3)).status == 200)
        Thread.sleep(forTimeInterval: 4.5)
        #expect(try sent(a) == before)
    }

    @Test func twoAgentsFindEachOtherOverMulticastAndALoadingPeerIsSkipped() throws {
        let first = try MeshFixtures.agentWorkspace(), second = try MeshFixtures.agentWorkspace()
        defer { first.remove(); second.remove() }
        let discovery = ["--discovery", "--discovery-interface", "127.0.0.1", "--discovery-port", "\(freePort())",
                         "--announce-interval", "0.3"]
        let agentA = try AgentProcess(first, arguments: discovery)
        defer { agentA.stop() }
        let agentB = try AgentProcess(second, arguments: discovery)
        defer { agentB.stop() }
        func peers(_ agent: AgentProcess) throws -> [[String: Any]] { (try agent.get("/mesh/peers").json as? [[String: Any]]) ?? [] }

        try waitUntil { try peers(agentA).count == 1 && peers(agentB).count == 1 }
        #expect(try peers(agentB).first?["address"] as? String == agentA.base)

        #expect(try agentA.post("/model/swap", #"{"model": "tiny:one"}"#).status == 200)
        try waitUntil { try agentB.get("/mesh/peers/route?model=tiny:one").object["address"] as? String == agentA.base }
        // A swap announces "loading" (currentLoad -1) at once, then ready; B's router skipped A meanwhile.
        #expect(try agentA.post("/model/swap", #"{"model": "tiny:two"}"#).status == 200)
        try waitUntil { try agentB.get("/mesh/peers/route?model=tiny:two").object["address"] as? String == agentA.base }
        #expect((try peers(agentB).first?["loadingAnnouncements"] as? Int ?? 0) >= 1, "B heard A announce that it was loading")
        #expect(try agentB.get("/mesh/peers/route?model=tiny:one").status == 404, "A no longer runs tiny:one")

        // A stops: after three missed announcements B drops it.
        agentA.stop()
        try waitUntil(timeout: 3 * 0.3 + 3) { try peers(agentB).isEmpty }
    }

}
