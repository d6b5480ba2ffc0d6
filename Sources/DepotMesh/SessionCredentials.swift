import Crypto
import DepotHTTP
import Foundation

/// The coordinator's short-lived secrets for agents: registration nonces (taken once, within
/// their lifetime) and session credentials (checked with one HMAC per heartbeat, far cheaper
/// than an Ed25519 verification). The key and the epoch are new each start, so a restart forgets
/// every session: a credential of an earlier run reads as expired (401), and agents register
/// again, proving their keys anew. MACs cover the text as sent, so each value has one spelling.
struct SessionCredentials: Sendable {
    /// HMAC with a key made at start, keyed once: keying pads and hashes the key, which costs
    /// as much as a credential's MAC itself; each check copies this state.
    private let keyed: HMAC<SHA256>
    let epoch = String(UInt32.random(in: 0...UInt32.max), radix: 16)
    let credentialLifetime: TimeInterval
    let nonceLifetime: TimeInterval = 60

    init(credentialLifetime: TimeInterval) {
        self.credentialLifetime = credentialLifetime
        keyed = HMAC(key: SymmetricKey(size: .bits256))
    }

    enum Verdict: Equatable {
        case valid
        /// Past its lifetime, or made before this coordinator started: register again.
        case expired
        /// Not made by this coordinator.
        case forged
        /// A valid credential of another agent: someone speaking for an agent it is not.
        case otherAgent
    }

    func credential(for agentId: String, at now: Date) -> String {
        let expires = Self.milliseconds(now.addingTimeInterval(credentialLifetime))
        return "c1.\(epoch).\(agentId).\(expires).\(mac("c1|\(epoch)|\(agentId)|\(expires)"))"
    }

    func check(credential: String, agentId: String, at now: Date) -> Verdict {
        // By bytes: this runs on every heartbeat, and splitting by Character costs more than the HMAC.
        let bytes = Array(credential.utf8)
        let parts = bytes.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard bytes.count <= 160, parts.count == 5, parts[0].elementsEqual("c1".utf8) else { return .forged }
        guard parts[1].elementsEqual(epoch.utf8) else { return .expired }
        guard let expires = Int64(String(decoding: parts[3], as: UTF8.self)) else { return .forged }
        let signed = bytes[..<parts[4].startIndex].map { $0 == UInt8(ascii: ".") ? UInt8(ascii: "|") : $0 }.dropLast()
        guard ConstantTime.equal(Array(Self.base64URL(authenticationCode(Array(signed))).utf8), Array(parts[4])) else {
            return .forged
        }
        guard parts[2].elementsEqual(agentId.utf8) else { return .otherAgent }
        return expires > Self.milliseconds(now) ? .valid : .expired
    }

    /// The agent a valid, unexpired credential speaks for.
    func agent(of credential: String, at now: Date) -> String? {
        let parts = credential.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 5, case .valid = check(credential: credential, agentId: String(parts[2]), at: now) else { return nil }
        return String(parts[2])
    }

    func nonce(at now: Date) -> String {
        let expires = Self.milliseconds(now.addingTimeInterval(nonceLifetime))
        let random = Self.base64URL((0..<12).map { _ in UInt8.random(in: 0...255) })
        return "n1.\(expires).\(random).\(mac("n1|\(expires)|\(random)"))"
    }

    /// Whether this coordinator made `nonce` and it has not expired; its expiry if so.
    func nonceExpiry(_ nonce: String, at now: Date) -> Date? {
        let parts = nonce.split(separator: ".", omittingEmptySubsequences: false)
        guard nonce.utf8.count <= 128, parts.count == 4, parts[0] == "n1", let expires = Int64(parts[1]),
              ConstantTime.equal(Array(mac("n1|\(parts[1])|\(parts[2])").utf8), Array(parts[3].utf8)),
              expires > Self.milliseconds(now) else { return nil }
        return Date(timeIntervalSince1970: Double(expires) / 1000)
    }

    private func mac(_ text: String) -> String {
        Self.base64URL(authenticationCode(Array(text.utf8)))
    }

    private func authenticationCode(_ bytes: [UInt8]) -> HMAC<SHA256>.MAC {
        var hmac = keyed
        hmac.update(data: bytes)
        return hmac.finalize()
    }

    static func milliseconds(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1000).rounded(.down)) }

    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    /// Unpadded base64url, by table: checked on every heartbeat, where Foundation's base64 and
    /// its string replacements cost more than the HMAC itself.
    static func base64URL(_ bytes: some Sequence<UInt8>) -> String {
        var out: [UInt8] = []
        var value: UInt32 = 0, pending = 0
        for byte in bytes {
            value = value << 8 | UInt32(byte)
            pending += 1
            if pending == 3 {
                for shift in [18, 12, 6, 0] { out.append(alphabet[Int(value >> UInt32(shift)) & 0x3F]) }
                value = 0
                pending = 0
            }
        }
        if pending > 0 {
            value <<= UInt32(8 * (3 - pending))
            for shift in [18, 12, 6, 0].prefix(pending + 1) { out.append(alphabet[Int(value >> UInt32(shift)) & 0x3F]) }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
