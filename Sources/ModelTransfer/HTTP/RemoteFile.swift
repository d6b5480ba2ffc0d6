import Foundation

/// What the server says about a file before any of it is fetched.
struct RemoteFile: Sendable, Equatable {
    /// Where the bytes are served after redirects; may carry signed-URL secrets, so memory only.
    let url: URL
    /// Size in bytes.
    let size: UInt64
    /// Strong or weak ETag, as sent.
    let etag: String?
    /// Last-Modified, as sent.
    let lastModified: String?
    /// Whether the server said it serves byte ranges.
    let acceptsRanges: Bool
    /// The SHA-256 the server published for the file (Hugging Face's X-Linked-Etag), if any.
    let publishedSHA256: String?

    /// The validator for `If-Range`: a strong ETag, else Last-Modified (weak ETags may not be used).
    var rangeValidator: String? {
        if let etag, !etag.hasPrefix("W/") { return etag }
        return lastModified
    }

    /// Whether `other` describes the same version of the file.
    func isSameVersion(as other: (size: UInt64, etag: String?, lastModified: String?)) -> Bool {
        size == other.size && etag == other.etag && lastModified == other.lastModified
    }
}

/// The address ranges are fetched from. A signed CDN address can expire during a long
/// download; the first connection to notice asks the origin for a fresh one, and the others
/// pick it up, while the partial file and its journal stay as they are.
actor CurrentAddress {
    private(set) var remote: RemoteFile

    init(_ remote: RemoteFile) { self.remote = remote }

    /// A fresh address after `failed` was refused, unless another connection already got one.
    func refresh(after failed: URL, using fetcher: HTTPFetcher) async throws -> RemoteFile {
        guard remote.url == failed else { return remote }
        let fresh = try await fetcher.probe()
        guard fresh.isSameVersion(as: (remote.size, remote.etag, remote.lastModified)) else {
            throw FetchFailure.remoteChanged("\(fetcher.source.redacted) changed on the server while downloading")
        }
        remote = fresh
        return fresh
    }
}

/// Why one request failed, as the retry loop needs to know it.
enum FetchFailure: Error {
    /// Worth retrying after a back-off: network errors, 5xx, 408, 429, stalls, short bodies.
    case transient(String)
    /// The server serves as many as it will now (429, 503): worth asking again, and no sign
    /// that it fails (a busy peer is not dropped).
    case busy(String)
    /// The file on the server is not the version the partial holds: start over.
    case remoteChanged(String)
    /// A whole-file transfer (no ranges) broke off: it can only start over from byte 0.
    case wholeFileInterrupted(String)
    /// The redirected (signed) address stopped being accepted: ask the origin for a fresh one.
    case addressExpired(URL)
    /// The server answered a range request with the whole file.
    case rangeIgnored
    /// Retrying cannot help.
    case fatal(TransferError)
}
