import DepotTestSupport
import Foundation

/// What the mesh suites share: a store with two tiny models, and reading a coordinator.
enum MeshFixtures {
    /// A workspace whose store holds `tiny:one` and `tiny:two`.
    static func agentWorkspace() throws -> Workspace {
        let workspace = Workspace()
        for (name, seed) in [("one", 1), ("two", 2)] {
            let file = try workspace.model("\(name).gguf", seed: UInt64(seed))
            let imported = try workspace.depot.run(["import", file, "--name", "tiny:\(name)"])
            guard imported.status == 0 else { throw DepotFailure(message: imported.stderr) }
        }
        return workspace
    }
}

extension AgentProcess {
    /// The coordinator's agents with their installed models (first page of up to 1,000).
    func meshAgents() throws -> [[String: Any]] {
        (try get("/mesh/agents?limit=1000&installed=1").object["agents"] as? [[String: Any]]) ?? []
    }

    func capabilities(_ model: String) throws -> [[String: Any]] {
        (try get("/mesh/capabilities?model=\(model)").json as? [[String: Any]]) ?? []
    }
}

/// Polls `condition` every 50 ms until it holds, or fails after `timeout` seconds.
func waitUntil(timeout: Double = 10, _ condition: () throws -> Bool) throws {
    let deadline = Date().addingTimeInterval(timeout)
    while !(try condition()) {
        guard Date() < deadline else { throw DepotFailure(message: "condition not met within \(timeout) s") }
        usleep(50_000)
    }
}
