import DepotTestSupport
import Foundation
import Testing

/// What a web page the user visits, or another local program, can make the agent do: tried as
/// an attacker would, with curl against the built binary on 127.0.0.1.
@Suite(.serialized) struct BrowserBoundaryTests {
    /// One request with exactly these options; its status, headers and body.
    func send(_ agent: AgentProcess, _ path: String, _ options: [String]) throws -> (status: Int, headers: String, body: String) {
        let reply = try SeedingTests().curl(agent.base + path, options)
        return (reply.status, reply.headers.lowercased(), String(decoding: reply.body, as: UTF8.self))
    }

    func jobs(_ agent: AgentProcess, token: String? = nil) throws -> [[String: Any]] {
        let reply = try agent.request("GET", "/jobs", headers: token.map { ["Authorization: Bearer \($0)"] } ?? [])
        return try JSONSerialization.jsonObject(with: Data(reply.body.utf8)) as? [[String: Any]] ?? []
    }

    @Test func aCrossSiteSimpleRequestOrARebindingHostCannotDriveTheAgent() throws {
        let setup = try AgentTests.Setup()
        defer { setup.remove() }
        let agent = try setup.agent()
        defer { agent.stop() }
        let planted = #"{"source": "\#(setup.nginx.url("three.gguf"))", "name": "planted:latest", "app": "com.example.chat"}"#
        let evil = ["-H", "Origin: https://evil.example"]

        // The "simple" POSTs a page sends without a preflight: text/plain, with its Origin.
        for (path, body) in [("/jobs", planted), ("/model/swap", #"{"model": "tiny:one"}"#), ("/api/pull", #"{"model": "tiny:three"}"#)] {
            let reply = try send(agent, path, evil + ["-H", "Content-Type: text/plain", "--data-binary", body])
            #expect(reply.status == 403 && reply.body.contains("Origin"), "\(path): \(reply.status) \(reply.body)")
        }
        // The same without an Origin (a program, or a browser that left it out): only JSON is taken.
        let plain = try send(agent, "/jobs", ["-H", "Content-Type: text/plain", "--data-binary", planted])
        #expect(plain.status == 415 && plain.body.contains("as JSON"))
        let form = try send(agent, "/model/swap", ["--data-urlencode", "model=tiny:one"])
        #expect(form.status == 415)
        #expect(try jobs(agent).isEmpty, "nothing was downloaded")
        #expect(try setup.workspace.depot.run(["show", "planted:latest"]).status != 0)
        #expect(try agent.get("/model/status").object["activeModel"] == nil || agent.get("/model/status").object["activeModel"] is NSNull,
                "nothing was loaded")

        // A page that rebinds its own name to 127.0.0.1 can neither read nor delete.
        let rebound = ["-H", "Host: attacker.example:\(agent.port)"]
        #expect(try send(agent, "/model/list", rebound).status == 403)
        #expect(try send(agent, "/api/delete", rebound + ["-X", "DELETE", "-H", "Content-Type: application/json",
                                                          "--data-binary", #"{"model": "tiny:one"}"#]).status == 403)
        #expect(try setup.workspace.depot.run(["show", "tiny:one"]).status == 0)
        // A preflight from a page that is not allowed is refused, and so is a JSON POST after it.
        #expect(try send(agent, "/jobs", evil + ["-X", "OPTIONS", "-H", "Access-Control-Request-Method: POST"]).status == 403)
        #expect(try send(agent, "/jobs", evil + ["-H", "Content-Type: application/json", "--data-binary", planted]).status == 403)

        // The agent's own page (same origin) and programs sending JSON keep working.
        let own = try send(agent, "/model/swap", ["-H", "Origin: http://127.0.0.1:\(agent.port)", "-H", "Content-Type: application/json",
                                                  "--data-binary", #"{"model": "tiny:one"}"#])
        #expect(own.status == 200, "\(own.body)")
        let local = try send(agent, "/model/list", ["-H", "Host: localhost:\(agent.port)"])
        #expect(local.status == 200)
    }

    @Test func configuredOriginsGetCORSAndTheirPreflightsAnswered() throws {
        let setup = try AgentTests.Setup()
        defer { setup.remove() }
        let agent = try setup.agent(["--origins", "https://app.example, http://localhost:*"])
        defer { agent.stop() }
        let preflight = try send(agent, "/model/swap", ["-X", "OPTIONS", "-H", "Origin: https://app.example",
                                                        "-H", "Access-Control-Request-Method: POST",
                                                        "-H", "Access-Control-Request-Headers: content-type"])
        #expect(preflight.status == 204)
        #expect(preflight.headers.contains("access-control-allow-origin: https://app.example"))
        #expect(preflight.headers.contains("access-control-allow-headers: authorization, content-type"))
        let call = try send(agent, "/model/status", ["-H", "Origin: http://localhost:5173"])
        #expect(call.status == 200 && call.headers.contains("access-control-allow-origin: http://localhost:5173"), "a wildcard origin")
        #expect(try send(agent, "/model/status", ["-H", "Origin: https://app.example.evil.com"]).status == 403)
    }

    @Test func withATokenReadsNeedItTooButTheUIAndVersionDoNot() throws {
        let setup = try AgentTests.Setup()
        defer { setup.remove() }
        let agent = try setup.agent(["--token", "s3cret-token"])
        defer { agent.stop() }
        for path in ["/jobs", "/metrics", "/model/list", "/model/status", "/api/tags", "/mesh/peers"] {
            #expect(try agent.get(path).status == 401, "\(path) without the token")
            #expect(try agent.request("GET", path, headers: ["Authorization: Bearer wrong"]).status == 401)
        }
        let events = try send(agent, "/events", ["--max-time", "3"])
        #expect(events.status == 401)
        for path in ["/", "/ui/app.js", "/api/version"] { #expect(try agent.get(path).status == 200, "\(path) is open") }
        #expect(try agent.request("GET", "/jobs", headers: ["Authorization: Bearer s3cret-token"]).status == 200)
    }

    @Test func jobsAreNamedByTheirFullIdOverHTTPAndByEightCharactersOrMoreInTheCLI() throws {
        let setup = try AgentTests.Setup()
        defer { setup.remove() }
        let agent = try setup.agent()
        defer { agent.stop() }
        let started = try agent.post("/jobs", #"{"source": "\#(setup.nginx.url("slow/big.gguf"))", "name": "copy:slow"}"#)
        let id = try #require(started.object["id"] as? String)
        for prefix in [String(id.prefix(1)), String(id.prefix(8))] {
            #expect(try agent.post("/jobs/\(prefix)/pause", "{}").status == 404, "a prefix names no job over HTTP")
            #expect(try agent.request("DELETE", "/jobs/\(prefix)").status == 404)
        }
        let short = try setup.workspace.depot.run(["jobs", "cancel", String(id.prefix(4))])
        #expect(short.status != 0 && short.stderr.contains("at least 8"))
        #expect(try jobs(agent).count == 1, "nothing was cancelled")
        #expect(try agent.request("DELETE", "/jobs/\(id)").status == 200)
    }

    @Test func anOversizedBodyIs413() throws {
        let setup = try AgentTests.Setup()
        defer { setup.remove() }
        let agent = try setup.agent()
        defer { agent.stop() }
        let path = setup.workspace.path + "/big.json"
        try Data(repeating: 0x20, count: (64 << 20) + 1).write(to: URL(fileURLWithPath: path))
        let reply = try send(agent, "/api/generate", ["-H", "Content-Type: application/json", "--data-binary", "@" + path])
        #expect(reply.status == 413 && reply.body.contains("at most"))
        #expect(try agent.get("/model/status").status == 200, "the agent is still there")
    }
}
