import Foundation
import ModelStore

/// What to pull: a model's weights and, for multimodal models, its projector, as one entry.
/// Persisted with its job (without the token, sources redacted) so the job can be resumed.
public struct PullRequest: Sendable, Codable, Equatable {
    /// `https://…` or `hf://owner/repo[@revision]/file.gguf`.
    public var source: String
    /// Other addresses of the same weights, tried in order when the source fails.
    public var mirrors: [String]
    /// The projector's source, if the model has one.
    public var projector: String?
    /// Entry name; derived from the file name and quantization when nil.
    public var name: String?
    /// App that uses the entry from now on.
    public var app: String?
    /// Expected SHA-256 of the weights, when the caller knows it.
    public var sha256: ExpectedHash?
    /// SHA-256 of each piece of the weights, so a bad piece is fetched again alone.
    public var pieces: PieceManifest?
    /// Expected SHA-256 of the projector.
    public var projectorSHA256: ExpectedHash?
    /// Bearer token for the source's own host; never stored or logged.
    public var token: String?
    /// Replace an entry of the same name with other files.
    public var replace: Bool
    /// Agents that hold the weights: fetched from beside the source when `pieces` lets each of
    /// their pieces be checked. Not stored: tickets expire, and a resumed job asks again.
    public var peers: [PeerSource] = []
    /// Asks again for peers while the weights download (a swarm of agents that start
    /// together); with it, the download is a swarm even before any peer is known.
    public var findPeers: PeerFinder?
    /// Phones nearby that hold the weights, over a radio link; like `peers`, used only with
    /// `pieces`, and not stored.
    public var radioPeers: [RadioPeer] = []

    /// A request with no expectations beyond the source.
    public init(source: String, mirrors: [String] = [], projector: String? = nil, name: String? = nil, app: String? = nil,
                sha256: ExpectedHash? = nil, pieces: PieceManifest? = nil, projectorSHA256: ExpectedHash? = nil,
                token: String? = nil, replace: Bool = false) {
        self.source = source
        self.mirrors = mirrors
        self.projector = projector
        self.name = name
        self.app = app
        self.sha256 = sha256
        self.pieces = pieces
        self.projectorSHA256 = projectorSHA256
        self.token = token
        self.replace = replace
    }

    // The token is never encoded.
    enum CodingKeys: String, CodingKey {
        case source, mirrors, projector, name, app, sha256, pieces, projectorSHA256, replace
    }

    /// The same request as it may be stored: no token, every address redacted.
    var redacted: PullRequest {
        var copy = self
        copy.token = nil
        copy.source = Redaction.redact(source)
        copy.mirrors = mirrors.map(Redaction.redact)
        copy.projector = projector.map(Redaction.redact)
        return copy
    }

    /// Identifies a file in the journal: its hash when known in advance (any address of those
    /// bytes continues the same partial), else its redacted address.
    static func fileKey(_ source: String, expected: ExpectedHash?) -> String {
        expected.map { "sha256:" + $0.sha256 } ?? (try? TransferSource(source).redacted) ?? Redaction.redact(source)
    }

    /// The journal keys of every file this pull may write (with every mirror's when unpinned).
    public var fileKeys: [String] {
        var keys = ([source] + mirrors).map { Self.fileKey($0, expected: sha256) }
        if let projector { keys.append(Self.fileKey(projector, expected: projectorSHA256)) }
        return Array(Set(keys)).sorted()
    }

    /// Identifies the pull: two processes asking for the same files share one job.
    var jobKey: String {
        [Self.fileKey(source, expected: sha256), projector.map { Self.fileKey($0, expected: projectorSHA256) } ?? ""]
            .joined(separator: " + ")
    }
}
