import Crypto
import Foundation
import MeshProtocol

/// Which agents may register: any key (the default on a LAN), those that prove they know the
/// join token, or those whose public keys are listed.
public enum Admission: Sendable {
    case open
    /// The SHA-256 of the token: the token itself is kept nowhere.
    case token(SymmetricKey)
    /// Base64 Ed25519 public keys.
    case keys(Set<String>)

    public static func token(_ token: String) -> Admission { .token(AgentRegistration.digest(ofJoinToken: token)) }

    /// Reads an allow-list: one base64 public key per line; blank lines and `#` comments skipped.
    public static func keys(file path: String) throws -> Admission {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw MeshProtocolError("cannot read the allow-list \(path): \(error.localizedDescription)")
        }
        var keys = Set<String>()
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let key = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first?
                .trimmingCharacters(in: .whitespaces) ?? ""
            guard !key.isEmpty else { continue }
            guard MeshIdentity.publicKey(key) != nil else {
                throw MeshProtocolError("\(path) line \(number + 1) is not a base64 Ed25519 public key (`depot serve --print-identity` shows an agent's)")
            }
            keys.insert(key)
        }
        return .keys(keys)
    }

    /// Why `registration` is not admitted, or nil.
    func refusal(of registration: AgentRegistration) -> String? {
        switch self {
        case .open: return nil
        case .token(let digest):
            return registration.hasValidJoinProof(tokenDigest: digest) ? nil
                : "this coordinator admits agents with its join token only (depot serve --join-token)"
        case .keys(let keys):
            return keys.contains(registration.publicKey) ? nil : "this agent's public key is not on the coordinator's allow-list"
        }
    }
}
