import Foundation

/// Model entry names in `family:tag` style, e.g. `qwen2.5-coder:1.5b-q4_k_m`, optionally under
/// a namespace and a host as Ollama's are (`myns/model:tag`, `hf.co/owner/repo:q4_k_m`).
///
/// Names end up in paths, URLs and shell commands, so only a conservative set of
/// characters is allowed, and each part between slashes follows the same rules (no empty
/// part, none that is or starts with '.', so a name never walks up a directory).
public enum ModelName {
    static let maximumLength = 200
    /// `host/namespace/model`: at most three parts.
    static let maximumParts = 3

    /// Checks `name`, throwing an error that names the offending character.
    public static func validate(_ name: String) throws(StoreError) {
        guard !name.isEmpty else { throw StoreError(.invalidName, "model name is empty") }
        guard name.utf8.count <= maximumLength else {
            throw StoreError(.invalidName, "model name is \(name.count) characters long; at most \(maximumLength) are allowed")
        }
        let parts = name.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= maximumParts, !parts.contains(where: \.isEmpty) else {
            throw StoreError(.invalidName, "model name '\(name.debugEscaped)' must be model:tag, namespace/model:tag or host/namespace/model:tag, with no empty part")
        }
        for (index, part) in parts.enumerated() {
            try validateIdentifier(String(part), kind: "model name", extraAllowed: index == parts.count - 1 ? ":" : nil,
                                   maximumLength: maximumLength, whole: name)
        }
        // Only ASCII passes the check above, so bytes are characters here.
        let colon = UInt8(ascii: ":"), last = parts[parts.count - 1].utf8
        guard last.count(where: { $0 == colon }) <= 1, last.last != colon, last.first != colon else {
            throw StoreError(.invalidName, "model name '\(name)' must look like family:tag, with at most one ':' and text on both sides")
        }
    }

    /// A name for a file imported without `--name`: its lowercased file name, with the
    /// quantization as the tag (`Qwen2.5-1.5B-Q4_K_M.gguf` → `qwen2.5-1.5b:q4_k_m`).
    public static func derive(fromFilename filename: String, quantization: String?) -> String {
        var stem = filename.lowercased()
        if stem.hasSuffix(".gguf") { stem.removeLast(5) }
        stem = String(stem.map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "_" || $0 == "-") ? $0 : "-" })
        while stem.contains("..") { stem = stem.replacingOccurrences(of: "..", with: ".") }
        stem = String(stem.drop(while: { $0 == "." || $0 == "-" || $0 == "_" }))
        let tag = quantization?.lowercased() ?? "latest"
        for separator in ["-", ".", "_"] where stem.hasSuffix(separator + tag) {
            stem.removeLast(tag.count + 1)
        }
        if stem.isEmpty { stem = "model" }
        return String(stem.prefix(maximumLength - tag.count - 1)) + ":" + tag
    }
}

/// App identifiers in reverse-DNS style, e.g. `com.example.chat`.
public enum AppID {
    /// Checks `app`, throwing an error that names the offending character.
    public static func validate(_ app: String) throws(StoreError) {
        try validateIdentifier(app, kind: "app id", extraAllowed: nil, maximumLength: 255)
    }
}

/// `whole`: the name `value` is a part of, for messages.
func validateIdentifier(_ value: String, kind: String, extraAllowed: Character?, maximumLength: Int, whole: String? = nil) throws(StoreError) {
    guard !value.isEmpty else { throw StoreError(.invalidName, "\(kind) is empty") }
    guard value.utf8.count <= maximumLength || value.count <= maximumLength else {
        throw StoreError(.invalidName, "\(kind) is \(value.count) characters long; at most \(maximumLength) are allowed")
    }
    // Bytes first: names are checked on every mesh heartbeat, and Character's properties are
    // slow; the same rule as below, for ASCII (where letters and digits are just these).
    let extraByte = extraAllowed?.asciiValue
    let plain = value.utf8.allSatisfy { byte in
        (0x61...0x7A).contains(byte) || (0x41...0x5A).contains(byte) || (0x30...0x39).contains(byte)
            || byte == 0x2E || byte == 0x5F || byte == 0x2D || byte == extraByte
    }
    for scalar in value.unicodeScalars where !plain {
        let c = Character(scalar)
        let allowed = scalar.isASCII && (c.isLetter || c.isNumber || c == "." || c == "_" || c == "-" || c == extraAllowed)
        guard allowed else {
            throw StoreError(.invalidName, "\(kind) '\((whole ?? value).debugEscaped)' contains \(scalar.debugName), which is not allowed; use letters, digits, '.', '_', '-'\(extraAllowed == ":" ? " and one ':'" : "")\(whole != nil ? " (and '/' between parts)" : "")")
        }
    }
    let dot = UInt8(ascii: "."), bytes = value.utf8  // all ASCII by now
    guard !zip(bytes, bytes.dropFirst()).contains(where: { $0 == dot && $1 == dot }), bytes.first != dot, bytes.first != UInt8(ascii: "-") else {
        throw StoreError(.invalidName, "\(kind) '\(whole ?? value)' must not contain '..' or have a part that starts with '.' or '-'")
    }
}

extension Unicode.Scalar {
    var debugName: String {
        switch value {
        case 0: "a NUL byte"
        case 0x2F: "'/'"
        case 0x5C: "'\\'"
        case 0..<0x20, 0x7F: "a control character (U+\(String(value, radix: 16, uppercase: true).leftPadded4))"
        default: "'\(self)'"
        }
    }
}

extension String {
    /// The string with control characters escaped, safe to print.
    var debugEscaped: String {
        unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? "\\u{\(String($0.value, radix: 16))}" : String($0) }.joined()
    }

    fileprivate var leftPadded4: String { String(repeating: "0", count: max(0, 4 - count)) + self }
}
