import DepotHTTP
import Foundation
import NIOCore

/// Server-sent events: every subscriber gets each event published after it subscribed.
final class EventHub: @unchecked Sendable {
    // Guarded by `lock`.
    private var subscribers: [UUID: AsyncStream<ByteBuffer>.Continuation] = [:]
    private let lock = NSLock()

    func subscribe() -> AsyncStream<ByteBuffer> {
        let (stream, continuation) = AsyncStream<ByteBuffer>.makeStream(bufferingPolicy: .bufferingNewest(256))
        let id = UUID()
        lock.withLock { subscribers[id] = continuation }
        continuation.onTermination = { [weak self] _ in self?.lock.withLock { _ = self?.subscribers.removeValue(forKey: id) } }
        return stream
    }

    func publish(_ event: String, _ value: some Encodable) {
        let data = (try? JSON.encoder.encode(value)) ?? Data("{}".utf8)
        send(ByteBuffer(string: "event: \(event)\ndata: \(String(decoding: data, as: UTF8.self))\n\n"))
    }

    /// A comment line that keeps idle connections (and proxies) open.
    func keepAlive() { send(ByteBuffer(string: ": keep-alive\n\n")) }

    private func send(_ buffer: ByteBuffer) {
        let subscribers = lock.withLock { Array(self.subscribers.values) }
        for subscriber in subscribers { subscriber.yield(buffer) }
    }
}

/// Counters for `/metrics`, in Prometheus's text format.
final class AgentMetrics: @unchecked Sendable {
    // Guarded by `lock`.
    private var downloads: [Bool: Int] = [:]
    private var downloadedBytes: UInt64 = 0
    private var swaps: [Bool: Int] = [:]
    private var swapSeconds: Double = 0
    private var generations = 0
    private var generatedTokens = 0
    private let lock = NSLock()

    func recordDownload(bytes: UInt64, succeeded: Bool) {
        lock.withLock {
            downloads[succeeded, default: 0] += 1
            downloadedBytes += bytes
        }
    }

    func recordSwap(seconds: Double, succeeded: Bool) {
        lock.withLock {
            swaps[succeeded, default: 0] += 1
            swapSeconds += seconds
        }
    }

    func recordGeneration(tokens: Int) {
        lock.withLock {
            generations += 1
            generatedTokens += tokens
        }
    }

    func render(state: String, activeModel: String?) -> String {
        lock.withLock {
            let swapCount = swaps.values.reduce(0, +)
            var lines = [
                "# HELP depot_downloads_total Downloads finished, by result.", "# TYPE depot_downloads_total counter",
                "depot_downloads_total{result=\"success\"} \(downloads[true, default: 0])",
                "depot_downloads_total{result=\"failure\"} \(downloads[false, default: 0])",
                "# HELP depot_download_bytes_total Bytes downloaded into the store.", "# TYPE depot_download_bytes_total counter",
                "depot_download_bytes_total \(downloadedBytes)",
                "# HELP depot_swaps_total Model activations, by result.", "# TYPE depot_swaps_total counter",
                "depot_swaps_total{result=\"success\"} \(swaps[true, default: 0])",
                "depot_swaps_total{result=\"failure\"} \(swaps[false, default: 0])",
                "# HELP depot_swap_duration_seconds Time from a swap request to ready.", "# TYPE depot_swap_duration_seconds summary",
                "depot_swap_duration_seconds_sum \(swapSeconds)", "depot_swap_duration_seconds_count \(swapCount)",
                "# HELP depot_generations_total Generation requests served.", "# TYPE depot_generations_total counter",
                "depot_generations_total \(generations)",
                "# HELP depot_generated_tokens_total Tokens generated.", "# TYPE depot_generated_tokens_total counter",
                "depot_generated_tokens_total \(generatedTokens)",
                "# HELP depot_runtime_state 1 for the runtime's current state.", "# TYPE depot_runtime_state gauge",
            ]
            for candidate in ["idle", "loading", "ready", "failed"] {
                lines.append("depot_runtime_state{state=\"\(candidate)\"} \(candidate == state ? 1 : 0)")
            }
            if let activeModel {
                lines += ["# HELP depot_active_model 1 for the model in memory.", "# TYPE depot_active_model gauge",
                          "depot_active_model{model=\"\(activeModel)\"} 1"]
            }
            return lines.joined(separator: "\n") + "\n"
        }
    }
}
