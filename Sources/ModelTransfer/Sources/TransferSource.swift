import Foundation

/// A place to download one file from: an HTTP(S) URL, or a Hugging Face `hf://` reference
/// resolved to its download URL.
public struct TransferSource: Sendable, Equatable {
    /// The URL to request, possibly with secrets; kept in memory only.
    public let url: URL
    /// The URL as it may be stored and shown.
    public let redacted: String
    /// The file's name at its source.
    public let filename: String
    /// Whether this came from `hf://` (whose server publishes the SHA-256 as X-Linked-Etag).
    public let isHuggingFace: Bool

    /// The Hugging Face endpoint; `HF_ENDPOINT` overrides it, as huggingface_hub allows.
    public static func huggingFaceEndpoint(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        let endpoint = environment["HF_ENDPOINT"].flatMap { $0.isEmpty ? nil : $0 } ?? "https://huggingface.co"
        return endpoint.hasSuffix("/") ? String(endpoint.dropLast()) : endpoint
    }

    /// Parses `https://…`, `http://…` or `hf://owner/repo[@revision]/path/file.gguf`.
    public init(_ text: String, huggingFaceEndpoint: String = TransferSource.huggingFaceEndpoint()) throws(TransferError) {
        if text.hasPrefix("hf://") {
            guard !text.contains("?") && !text.contains("#") else {
                throw TransferError(.invalidSource, "hf:// references take no query or fragment; pass a token with --token or HF_TOKEN")
            }
            let rest = text.dropFirst("hf://".count).split(separator: "/", omittingEmptySubsequences: false).map(String.init)
            guard rest.count >= 3, !rest[0].isEmpty, !rest[1].isEmpty, rest.dropFirst(2).allSatisfy({ !$0.isEmpty && $0 != ".." }) else {
                throw TransferError(.invalidSource, "'\(Redaction.redact(text))' is not of the form hf://owner/repo[@revision]/path/file.gguf")
            }
            let repoAndRevision = rest[1].split(separator: "@", maxSplits: 1).map(String.init)
            let revision = repoAndRevision.count == 2 ? repoAndRevision[1] : "main"
            let path = rest.dropFirst(2).map { $0.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? $0 }.joined(separator: "/")
            // A revision such as refs/pr/1 is one path segment on the server.
            let encodedRevision = revision.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed.subtracting(["/"])) ?? revision
            let resolved = "\(huggingFaceEndpoint)/\(rest[0])/\(repoAndRevision[0])/resolve/\(encodedRevision)/\(path)"
            guard let url = URL(string: resolved) else {
                throw TransferError(.invalidSource, "'\(Redaction.redact(text))' does not make a valid URL")
            }
            self.url = url
            redacted = "hf://" + rest.joined(separator: "/")
            filename = rest.last!
            isHuggingFace = true
            return
        }
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), scheme == "https" || scheme == "http",
              let host = url.host, !host.isEmpty else {
            throw TransferError(.invalidSource, "'\(Redaction.redact(text))' is not an http(s):// URL or an hf://owner/repo/file reference")
        }
        self.url = url
        redacted = Redaction.redact(text)
        filename = url.lastPathComponent.isEmpty || url.lastPathComponent == "/" ? "model.gguf" : url.lastPathComponent
        isHuggingFace = false
    }
}
