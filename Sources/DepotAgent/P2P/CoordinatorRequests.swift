import AsyncHTTPClient
import Foundation
import MeshProtocol
import NIOCore

/// Requests from an agent to its coordinator: JSON, with the session credential when there is
/// one. Failures are a status of 0; callers decide what an answer they cannot use means.
enum CoordinatorRequests {
    /// POSTs `value` as JSON to `url`; the status and the body (at most 1 MiB).
    static func post(_ url: String, _ value: some Encodable, credential: String?, client: HTTPClient = .shared,
                     timeout: TimeAmount = .seconds(5)) async -> (status: Int, body: Data) {
        guard let data = try? JSONEncoder().encode(value) else { return (0, Data()) }
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(bytes: data))
        return await send(request, credential: credential, client: client, timeout: timeout)
    }

    /// GETs `url`; the status and the body (at most 1 MiB).
    static func get(_ url: String, credential: String?, client: HTTPClient = .shared,
                    timeout: TimeAmount = .seconds(5)) async -> (status: Int, body: Data) {
        await send(HTTPClientRequest(url: url), credential: credential, client: client, timeout: timeout)
    }

    private static func send(_ request: HTTPClientRequest, credential: String?, client: HTTPClient,
                             timeout: TimeAmount) async -> (status: Int, body: Data) {
        var request = request
        if let credential { request.headers.add(name: "Authorization", value: "Bearer \(credential)") }
        guard let response = try? await client.execute(request, timeout: timeout) else { return (0, Data()) }
        let body = (try? await response.body.collect(upTo: 1 << 20)).map { Data(buffer: $0) } ?? Data()
        return (Int(response.status.code), body)
    }
}

extension Agent {
    /// What the agent `agentId` earned by seeding, as the coordinator at `coordinator` keeps it.
    public static func credits(of agentId: String, coordinator: String, timeout: TimeAmount = .seconds(10)) async throws(AgentError) -> CreditBalance {
        let (status, body) = await CoordinatorRequests.get("\(coordinator)/mesh/credits?agent=\(agentId)", credential: nil,
                                                           timeout: timeout)
        guard status != 0 else { throw AgentError(.badGateway, "cannot reach the coordinator at \(coordinator)") }
        guard status == 200 else {
            let message = (try? JSONDecoder().decode([String: String].self, from: body))?["error"] ?? "status \(status)"
            throw AgentError(.badGateway, "the coordinator at \(coordinator) answered: \(message)")
        }
        do { return try JSONDecoder().decode(CreditBalance.self, from: body) } catch {
            throw AgentError(.badGateway, "the coordinator at \(coordinator) sent credits this agent cannot read: \(error)")
        }
    }
}
