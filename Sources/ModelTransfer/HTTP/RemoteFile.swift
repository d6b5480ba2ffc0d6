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

/// Why one request failed, as the retry loop needs to know it.
enum FetchFailure: Error {
    /// Worth retrying after a back-off: network errors, 5xx, 408, 429, stalls, short bodies.
    case transient(String)
    /// The file on the server is not the version the partial holds: start over.
    case remoteChanged(String)
    /// A whole-file transfer (no ranges) broke off: it can only start over from byte 0.
    case wholeFileInterrupted(String)
    /// The server answered a range request with the whole file.
    case rangeIgnored
    /// Retrying cannot help.
    case fatal(TransferError)
}
