import AsyncHTTPClient
import Foundation
import NIOCore

/// Model names as Ollama users type them for the Hugging Face Hub: `hf.co/<owner>/<repo>[:QUANT]`
/// (or `huggingface.co/…`). The repository's file list (the Hub's model info, with each LFS
/// file's SHA-256) picks the GGUF file of that quantization, and a projector (`mmproj`) if the
/// repository has one; the pull is then an `hf://` one, checked against those hashes.
public struct HuggingFaceName: Sendable, Equatable {
    public var owner: String
    public var repository: String
    /// The quantization asked for, as typed (nil: Q4_K_M when there is one, as Ollama does).
    public var quantization: String?

    static let hosts = ["hf.co/", "huggingface.co/"]
    static let preferred = "Q4_K_M"

    /// Nil when `text` is not such a name.
    public init?(_ text: String) {
        guard let host = Self.hosts.first(where: { text.lowercased().hasPrefix($0) }) else { return nil }
        let rest = text.dropFirst(host.count)
        let (path, tag) = rest.firstIndex(of: ":").map { (rest[..<$0], String(rest[rest.index(after: $0)...])) } ?? (rest, nil)
        let parts = path.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        let allowed = { (part: String) in
            !part.isEmpty && !part.hasPrefix(".") && part.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) }
        }
        guard parts.count == 2, parts.allSatisfy(allowed), tag.map(allowed) ?? true else { return nil }
        (owner, repository, quantization) = (parts[0], parts[1], tag)
    }

    private struct ModelInfo: Decodable {
        struct Sibling: Decodable {
            struct LFS: Decodable { var sha256: String }
            var rfilename: String
            var lfs: LFS?
        }
        var siblings: [Sibling]
    }

    /// The pull for this name: the repository's files listed by the Hub at `endpoint`, the GGUF
    /// file whose name carries the quantization picked, its SHA-256 the Hub's. A name that
    /// matches no file is an error listing the quantizations there are.
    public func pullRequest(endpoint: String, token: String?, app: String? = nil) async throws(TransferError) -> PullRequest {
        let url = "\(endpoint)/api/models/\(owner)/\(repository)/revision/main?blobs=true"
        var request = HTTPClientRequest(url: url)
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        let info: ModelInfo
        do {
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
            guard response.status == .ok else {
                throw TransferError(response.status.code == 404 ? .notFound : .rejected,
                                    "the Hugging Face Hub answered \(response.status.code) for \(owner)/\(repository)\(response.status.code == 401 ? " (a gated repository: pass a token, or set HF_TOKEN)" : "")")
            }
            let body = try await response.body.collect(upTo: 16 << 20)
            info = try JSONDecoder().decode(ModelInfo.self, from: Data(body.readableBytesView))
        } catch let error as TransferError {
            throw error
        } catch {
            throw TransferError(.unreachable, "cannot list \(owner)/\(repository) on the Hugging Face Hub (\(endpoint)): \(error)")
        }
        let ggufs = info.siblings.filter { $0.rfilename.lowercased().hasSuffix(".gguf") }
        let projectors = ggufs.filter { $0.rfilename.lowercased().contains("mmproj") }
        let weights = ggufs.filter { !$0.rfilename.lowercased().contains("mmproj") }
        let available = Array(Set(weights.compactMap { Self.quantization(in: $0.rfilename) })).sorted()
        let wanted = quantization ?? (available.contains { $0.caseInsensitiveCompare(Self.preferred) == .orderedSame } ? Self.preferred : nil)
        let chosen = wanted.map { tag in weights.filter { Self.quantization(in: $0.rfilename)?.caseInsensitiveCompare(tag) == .orderedSame } }
            ?? (weights.count == 1 ? weights : [])
        guard let file = chosen.sorted(by: { $0.rfilename < $1.rfilename }).first else {
            let what = weights.isEmpty ? "no GGUF file" : "no GGUF file for '\(wanted ?? "")'; it has \(available.isEmpty ? weights.map(\.rfilename).joined(separator: ", ") : available.joined(separator: ", "))"
            throw TransferError(.notFound, "hf.co/\(owner)/\(repository) has \(what)")
        }
        if file.rfilename.range(of: #"-\d{5}-of-\d{5}\.gguf$"#, options: .regularExpression) != nil {
            throw TransferError(.invalidSource, "hf.co/\(owner)/\(repository):\(wanted ?? "") is split into shards (\(file.rfilename)), which cannot be pulled yet; pull each shard with hf:// and import them")
        }
        // Of several projectors, the half-precision one, as Ollama's own uploads carry.
        let projector = projectors.first { $0.rfilename.lowercased().contains("f16") } ?? projectors.first
        func hash(_ sibling: ModelInfo.Sibling) throws(TransferError) -> ExpectedHash? {
            try sibling.lfs.map { lfs throws(TransferError) in try ExpectedHash(sha256: lfs.sha256, source: .server) }
        }
        let tag = wanted ?? Self.quantization(in: file.rfilename) ?? "latest"
        return PullRequest(source: "hf://\(owner)/\(repository)/\(file.rfilename)", projector: projector.map { "hf://\(owner)/\(repository)/\($0.rfilename)" },
                           name: "hf.co/\(owner)/\(repository):\(tag)", app: app, sha256: try hash(file),
                           projectorSHA256: try projector.flatMap { sibling throws(TransferError) in try hash(sibling) }, token: token)
    }

    /// The quantization label in a GGUF file name (`Qwen2.5-7B-Instruct-Q4_K_M.gguf` → `Q4_K_M`,
    /// `model.IQ2_XS-00001-of-00002.gguf` → `IQ2_XS`), nil when there is none.
    static func quantization(in filename: String) -> String? {
        let pattern = #"(?i)(?:^|[-._])((?:I?Q\d+(?:_[A-Z0-9]+)*)|BF16|F16|F32)(?=(?:-\d{5}-of-\d{5})?\.gguf$)"#
        guard let match = filename.range(of: pattern, options: .regularExpression) else { return nil }
        return String(filename[match].drop { "-._".contains($0) }).uppercased()
    }
}
