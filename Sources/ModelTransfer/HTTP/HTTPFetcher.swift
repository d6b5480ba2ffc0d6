import AsyncHTTPClient
import Foundation
import MeshProtocol
import NIOCore
import NIOHTTP1

/// Requests against one source: follows redirects itself so that credentials go only to the
/// host the user named, probes the file, and streams byte ranges with a stall timer of its own
/// (the client's deadline covers the response head only, not the body).
struct HTTPFetcher: Sendable {
    let client: HTTPClient
    let source: TransferSource
    /// Sent as `Authorization: Bearer` to the original host only; never stored or logged.
    let token: String?
    let stallTimeout: Duration
    /// More headers for the original host only (a peer's ticket).
    var headers: [String: String] = [:]
    /// A peer's account, whose latest receipt goes with each request to it.
    var account: PeerAccount?
    static let maximumRedirects = 10

    /// HEAD the file (GET of its first byte when HEAD is refused) and learn size and validators.
    func probe() async throws(FetchFailure) -> RemoteFile {
        var published: String?
        var response = try await send(method: .HEAD, url: source.url, headers: [:]) { hop in
            published = published ?? Self.publishedSHA256(hop.head.headers)
        }
        if response.head.status == .methodNotAllowed || response.head.status == .notImplemented {
            response = try await send(method: .GET, url: source.url, headers: ["Range": "bytes=0-0"]) { hop in
                published = published ?? Self.publishedSHA256(hop.head.headers)
            }
        }
        try Self.check(response.head.status, url: source.redacted, allowPartial: true)
        let headers = response.head.headers
        var size = headers.first(name: "Content-Length").flatMap { UInt64($0) }
        if response.head.status == .partialContent {
            size = headers.first(name: "Content-Range").flatMap(Self.totalFromContentRange)
        }
        size = headers.first(name: "X-Linked-Size").flatMap { UInt64($0) } ?? size
        guard let size else {
            throw .fatal(TransferError(.unsupportedServer, "the server does not say how large \(source.redacted) is, so it cannot be verified or resumed"))
        }
        guard size <= UInt64(Int64.max) else {
            throw .fatal(TransferError(.unsupportedServer, "the server claims \(source.redacted) is \(size) bytes, which no file can be"))
        }
        let acceptsRanges = response.head.status == .partialContent
            || headers.first(name: "Accept-Ranges")?.lowercased().contains("bytes") == true
        return RemoteFile(url: response.url, size: size, etag: headers.first(name: "ETag"),
                          lastModified: headers.first(name: "Last-Modified"), acceptsRanges: acceptsRanges,
                          publishedSHA256: published)
    }

    /// Streams `range` (or the whole file) of `remote`, passing each chunk to `consume` with its
    /// offset; `consume` returns false to stop early. With `validator`, a server whose file has
    /// changed answers 200, reported as `remoteChanged` or `rangeIgnored`.
    func fetch(_ remote: RemoteFile, range: Range<UInt64>?, validator: String?,
               consume: @escaping @Sendable (UInt64, ByteBuffer) throws -> Bool) async throws(FetchFailure) {
        var headers: [String: String] = [:]
        if let range { headers["Range"] = "bytes=\(range.lowerBound)-\(range.upperBound - 1)" }
        if let validator, range != nil { headers["If-Range"] = validator }
        let response = try await send(method: .GET, url: remote.url, headers: headers) { _ in }
        let status = response.head.status
        if [401, 403, 410].contains(status.code) && !Self.sameOrigin(response.url, source.url) {
            throw .addressExpired(remote.url)
        }
        if status == .rangeNotSatisfiable {
            throw .remoteChanged("the server no longer has the requested bytes of \(source.redacted)")
        }
        try Self.check(status, url: source.redacted, allowPartial: true)
        // Whatever the status, the bytes must come from the version the partial holds.
        let answer = response.head.headers
        let changed = { (name: String, known: String?) -> Bool in
            guard let known, let now = answer.first(name: name) else { return false }
            return now != known
        }
        if changed("ETag", remote.etag) || changed("Last-Modified", remote.lastModified) {
            throw .remoteChanged("\(source.redacted) changed on the server while downloading")
        }
        var offset: UInt64 = 0
        if status == .partialContent {
            guard let range, let contentRange = answer.first(name: "Content-Range"),
                  Self.startFromContentRange(contentRange) == range.lowerBound else {
                throw .transient("the server sent a different byte range than asked for")
            }
            guard Self.totalFromContentRange(contentRange) == remote.size else {
                throw .remoteChanged("\(source.redacted) changed size on the server while downloading")
            }
            offset = range.lowerBound
        } else if let range, !(range.lowerBound == 0 && range.upperBound == remote.size) {
            // A 200 with the same validators to a range request: ranges are not honoured.
            throw .rangeIgnored
        }
        try await stream(response.body, from: offset, consume: consume)
    }

    /// A peer's source for the blob at `peer.url`, with its ticket and account.
    static func peer(_ peer: PeerSource, client: HTTPClient, stallTimeout: Duration) throws(TransferError) -> HTTPFetcher {
        HTTPFetcher(client: client, source: try TransferSource(peer.url), token: nil, stallTimeout: stallTimeout,
                    headers: peer.ticket.map { [PeerSource.ticketHeader: $0] } ?? [:], account: peer.account)
    }

    /// A peer's have-map for its blob in pieces of `pieceSize` (`…/pieces`); nil when it has
    /// none or answers nonsense.
    func haveMap(pieceSize: UInt64) async -> HaveMap? {
        guard let url = URL(string: source.url.absoluteString + "/pieces?pieceSize=\(pieceSize)"),
              let response = try? await send(method: .GET, url: url, headers: [:], onHop: { _ in }),
              response.head.status == .ok, let body = try? await response.body.collect(upTo: 4 << 20) else { return nil }
        return try? JSONDecoder().decode(HaveMap.self, from: Data(body.readableBytesView))
    }

    // MARK: Requests

    struct Response {
        let head: HTTPResponseHead
        let url: URL
        let body: HTTPClientResponse.Body
    }

    /// One request, following up to ten redirects; `Authorization` goes only to the host
    /// (and port and scheme) the user named.
    private func send(method: HTTPMethod, url: URL, headers: [String: String],
                      onHop: (Response) -> Void) async throws(FetchFailure) -> Response {
        var url = url
        for _ in 0...Self.maximumRedirects {
            var request = HTTPClientRequest(url: url.absoluteString)
            request.method = method
            for (name, value) in headers { request.headers.add(name: name, value: value) }
            if Self.sameOrigin(url, source.url) {
                if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
                for (name, value) in self.headers { request.headers.add(name: name, value: value) }
                for (name, value) in account?.headers ?? [:] { request.headers.add(name: name, value: value) }
            }
            let response: HTTPClientResponse
            do {
                response = try await client.execute(request, timeout: .nanoseconds(Int64(stallTimeout.nanoseconds)))
            } catch {
                throw .transient("cannot reach \(Redaction.redact(url.absoluteString)): \(Self.describe(error))")
            }
            let head = HTTPResponseHead(version: response.version, status: response.status, headers: response.headers)
            let hop = Response(head: head, url: url, body: response.body)
            onHop(hop)
            guard (300..<400).contains(response.status.code), response.status != .notModified,
                  let location = response.headers.first(name: "Location") else { return hop }
            guard let next = URL(string: location, relativeTo: url)?.absoluteURL,
                  next.scheme == "https" || next.scheme == "http" else {
                throw .fatal(TransferError(.rejected, "\(source.redacted) redirects to an address that is not http(s)"))
            }
            url = next
        }
        throw .fatal(TransferError(.rejected, "\(source.redacted) redirects more than \(Self.maximumRedirects) times"))
    }

    /// Reads the body, failing with `transient` when nothing arrives for `stallTimeout`.
    private func stream(_ body: HTTPClientResponse.Body, from start: UInt64,
                        consume: @escaping @Sendable (UInt64, ByteBuffer) throws -> Bool) async throws(FetchFailure) {
        let clock = ContinuousClock()
        let lastActivity = ActivityClock(clock.now)
        let stall = stallTimeout
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    var offset = start
                    for try await chunk in body {
                        lastActivity.touch(clock.now)
                        guard try consume(offset, chunk) else { return }
                        offset += UInt64(chunk.readableBytes)
                    }
                }
                group.addTask {
                    while true {
                        try await Task.sleep(for: min(stall / 4, .seconds(1)))
                        if clock.now - lastActivity.value > stall {
                            throw FetchFailure.transient("no data for \(stall) from the server; reconnecting")
                        }
                    }
                }
                try await group.next()
                group.cancelAll()
            }
        } catch let failure as FetchFailure {
            throw failure
        } catch let error as TransferError {
            throw .fatal(error)
        } catch is CancellationError {
            throw .fatal(TransferError(.cancelled, "the transfer was cancelled"))
        } catch {
            throw .transient("the connection broke: \(Self.describe(error))")
        }
    }

    // MARK: Helpers

    static func check(_ status: HTTPResponseStatus, url: String, allowPartial: Bool) throws(FetchFailure) {
        if status.code == 200 || (allowPartial && status.code == 206) { return }
        switch status.code {
        case 429, 503:
            throw .busy("the server answered \(status.code) \(status.reasonPhrase) for \(url)")
        case 408, 500...599:
            throw .transient("the server answered \(status.code) \(status.reasonPhrase) for \(url)")
        case 401, 403:
            throw .fatal(TransferError(.rejected, "the server refused \(url) (\(status.code) \(status.reasonPhrase)); it may need a token (--token or HF_TOKEN) or access to the repository"))
        case 404:
            throw .fatal(TransferError(.rejected, "the server has no file at \(url) (404); check the address"))
        default:
            throw .fatal(TransferError(.rejected, "the server answered \(status.code) \(status.reasonPhrase) for \(url)"))
        }
    }

    static func sameOrigin(_ a: URL, _ b: URL) -> Bool {
        a.scheme?.lowercased() == b.scheme?.lowercased() && a.host?.lowercased() == b.host?.lowercased()
            && (a.port ?? defaultPort(a)) == (b.port ?? defaultPort(b))
    }

    private static func defaultPort(_ url: URL) -> Int { url.scheme?.lowercased() == "https" ? 443 : 80 }

    /// Hugging Face publishes an LFS file's SHA-256 as `X-Linked-Etag`.
    static func publishedSHA256(_ headers: HTTPHeaders) -> String? {
        guard let value = headers.first(name: "X-Linked-Etag") else { return nil }
        let digest = value.replacingOccurrences(of: "\"", with: "").lowercased()
        return digest.count == 64 && digest.allSatisfy(\.isHexDigit) ? digest : nil
    }

    /// `bytes 0-0/12345` → 12345.
    static func totalFromContentRange(_ value: String) -> UInt64? {
        value.split(separator: "/").last.flatMap { UInt64($0.trimmingCharacters(in: .whitespaces)) }
    }

    /// `bytes 100-199/12345` → 100.
    static func startFromContentRange(_ value: String) -> UInt64? {
        guard let spec = value.split(separator: " ").last, let dash = spec.firstIndex(of: "-") else { return nil }
        return UInt64(spec[..<dash])
    }

    /// The client's errors name conditions, not URLs; secrets in messages are scrubbed by the caller.
    static func describe(_ error: Error) -> String {
        "\(error)"
    }
}

/// The time of the last received byte, shared by the reader and its stall watchdog.
final class ActivityClock: @unchecked Sendable {
    // Guarded by `lock`: written by the body reader, read by the watchdog.
    private var instant: ContinuousClock.Instant
    private let lock = NSLock()

    init(_ now: ContinuousClock.Instant) { instant = now }
    func touch(_ now: ContinuousClock.Instant) { lock.withLock { instant = now } }
    var value: ContinuousClock.Instant { lock.withLock { instant } }
}

extension Duration {
    var nanoseconds: Int64 {
        components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000
    }
}
