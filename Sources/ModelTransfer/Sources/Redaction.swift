import Foundation

/// Removes credentials from URLs before anything is stored, logged or shown.
///
/// Userinfo and the fragment go, and of the query only parameters on an allow-list stay
/// (versions, revisions, file names, download switches): signed-URL schemes keep inventing
/// names for their secrets (Akamai's `__token__`, nginx's `md5`, Cloudflare's `verify`), so a
/// list of known secret names always lags. The remaining URL still identifies the file, which
/// is what the store's source identity needs.
public enum Redaction {
    static let keptParameters: Set<String> = [
        "download", "dl", "raw", "revision", "rev", "ref", "version", "versionid", "v", "file", "filename",
        "format", "variant", "quant", "tag",
    ]

    /// Whether a query parameter may be kept: its name is on the allow-list.
    public static func isKeptParameter(_ name: String) -> Bool { keptParameters.contains(name.lowercased()) }

    /// The URL without userinfo, fragment and query parameters off the allow-list.
    public static func redact(_ url: String) -> String {
        guard var components = URLComponents(string: url) else { return "<unparseable URL>" }
        components.user = nil
        components.password = nil
        components.fragment = nil
        if let items = components.queryItems {
            let kept = items.filter { isKeptParameter($0.name) }
            components.queryItems = kept.isEmpty ? nil : kept
        }
        return components.string ?? "<unparseable URL>"
    }

    /// The values a redacted URL leaves out (password, user, dropped query values), to scrub
    /// from text.
    public static func secrets(in url: String) -> [String] {
        guard let components = URLComponents(string: url) else { return [] }
        let query = (components.queryItems ?? []).filter { !isKeptParameter($0.name) }.compactMap(\.value)
        return [components.password, components.user].compactMap { $0 } + query
    }

    /// `text` with every occurrence of each secret replaced; for messages that may quote input.
    public static func scrub(_ text: String, secrets: [String]) -> String {
        secrets.filter { $0.count >= 4 }.reduce(text) { $0.replacingOccurrences(of: $1, with: "<redacted>") }
    }
}
