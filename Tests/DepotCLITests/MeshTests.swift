import DepotTestSupport
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A coordinator and agents as real processes on 127.0.0.1, with short heartbeat intervals.
@Suite(.serialized) struct MeshTests {
    static let interval = "0.5"

    func agentWorkspace() throws -> Workspace {
        let workspace = Workspace()
        for (name, seed) in [("one", 1), ("two", 2)] {
            let file = try workspace.model("\(name).gguf", seed: UInt64(seed))
            let imported = try workspace.depot.run(["import", file, "--name", "tiny:\(name)"])
            guard imported.status == 0 else { throw DepotFailure(message: imported.stderr) }
        }
        return workspace
    }

    func agents(_ coordinator: AgentProcess) throws -> [[String: Any]] {
        (try coordinator.get("/mesh/agents").json as? [[String: Any]]) ?? []
    }

    @Test func agentsHeartbeatTheirModelAndTheCoordinatorRoutesToThem() throws {
        let place = Workspace()
        defer { place.remove() }
        let state = ["--state", place.path + "/coordinator", "--heartbeat-interval", Self.interval]
        var coordinator = try AgentProcess(place, command: "coordinator", arguments: state)
        defer { coordinator.stop() }
        let first = try agentWorkspace(), second = try agentWorkspace()
        defer { first.remove(); second.remove() }
        let mesh = ["--coordinator", coordinator.base, "--heartbeat-interval", Self.interval]
        let agentA = try AgentProcess(first, arguments: mesh)
        defer { agentA.stop() }
        let agentB = try AgentProcess(second, arguments: mesh)
        defer { agentB.stop() }

        try waitUntil { try agents(coordinator).count == 2 }
        let registered = try agents(coordinator)
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
        let before = try coordinator.get("/mesh/agents").body.count
        let missing = try coordinator.post("/heartbeat", #"{"protocolVersion": 1, "platform": "linux"}"#)
        #expect(missing.status == 400 && (missing.object["error"] as? String)?.contains("agentId") == true, "\(missing.body)")
        let wrongType = try coordinator.post("/heartbeat", #"{"protocolVersion": 1, "agentId": "x", "currentLoad": "busy"}"#)
        #expect(wrongType.status == 400)
        let future = try coordinator.post("/heartbeat", #"{"protocolVersion": 99}"#)
        #expect(future.status == 400)
        #expect(try agents(coordinator).count == 2)
        _ = before

        // An agent that stops heartbeating goes offline after three intervals and leaves the summary.
        kill(agentA.running.process.processIdentifier, SIGKILL)
        try waitUntil(timeout: 3 * 0.5 + 2) {
            ((try coordinator.get("/mesh/capabilities?model=tiny:one").json as? [[String: Any]]) ?? []).isEmpty
        }
        let rows = try agents(coordinator)
        #expect(rows.count == 2, "an offline agent stays listed")
        #expect(rows.filter { $0["online"] as? Bool == false }.count == 1)

        // The coordinator's table survives a restart.
        coordinator.stop()
        coordinator = try AgentProcess(place, command: "coordinator", arguments: state)
        #expect(try agents(coordinator).count == 2)
    }

    func waitUntil(timeout: Double = 10, _ condition: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while !(try condition()) {
            guard Date() < deadline else { throw DepotFailure(message: "condition not met within \(timeout) s") }
            usleep(50_000)
        }
    }
}
