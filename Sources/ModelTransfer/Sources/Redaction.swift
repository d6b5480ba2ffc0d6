import Foundation

/// Removes credentials from URLs before anything is stored, logged or shown.
///
/// Userinfo goes; so does every query parameter whose name says it carries a credential
/// (signatures, tokens, keys, AWS/GCS/Azure signing fields). The remaining URL still
/// identifies the file, which is what the store's source identity needs.
public enum Redaction {
    static let secretNames: Set<String> = [
        "token", "access_token", "auth", "authorization", "key", "api_key", "apikey", "sig", "signature",
        "secret", "password", "pass", "pwd", "credential", "credentials", "session", "sessiontoken", "se",
        "sp", "sv", "sr", "skoid", "sktid", "skt", "ske", "sks", "skv", "expires", "policy", "key-pair-id",
    ]
    static let secretPrefixes = ["x-amz-", "x-goog-", "x-ms-", "hf_"]

    /// Whether a query parameter with this name carries a credential.
    public static func isSecretParameter(_ name: String) -> Bool {
        let lower = name.lowercased()
        return secretNames.contains(lower) || secretPrefixes.contains { lower.hasPrefix($0) }
            || lower.hasSuffix("token") || lower.hasSuffix("signature") || lower.hasSuffix("_key")
    }

    /// The URL without userinfo and without secret query parameters; fragment dropped.
    public static func redact(_ url: String) -> String {
        guard var components = URLComponents(string: url) else { return "<unparseable URL>" }
        components.user = nil
        components.password = nil
        components.fragment = nil
        if let items = components.queryItems {
            let kept = items.filter { !isSecretParameter($0.name) }
            components.queryItems = kept.isEmpty ? nil : kept
        }
        return components.string ?? "<unparseable URL>"
    }

    /// The credential values in a URL (password, user, secret query values), to scrub from text.
    public static func secrets(in url: String) -> [String] {
        guard let components = URLComponents(string: url) else { return [] }
        let query = (components.queryItems ?? []).filter { isSecretParameter($0.name) }.compactMap(\.value)
        return [components.password, components.user].compactMap { $0 } + query
    }

    /// `text` with every occurrence of each secret replaced; for messages that may quote input.
    public static func scrub(_ text: String, secrets: [String]) -> String {
        secrets.filter { $0.count >= 4 }.reduce(text) { $0.replacingOccurrences(of: $1, with: "<redacted>") }
    }
}
