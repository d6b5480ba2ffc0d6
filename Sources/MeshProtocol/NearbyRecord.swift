import Crypto
import Foundation

/// The compact capability record an agent announces to nearby peers: over UDP multicast on a
/// LAN, and (by the iOS and Android executors) as a BLE GATT characteristic value, so it fits
/// in 512 bytes. Versioned and signed by the agent's key (its id is the key's), so nobody can
/// announce for another agent; every length is checked before it is used, so hostile bytes give
/// an error, never a crash or an oversized allocation.
///
/// Layout (big-endian): "DP" · version u8 · flags u8 (bit 0: loading) · public key 32 bytes ·
/// sequence u64 · currentLoad i16 · paramSize u16 (tenths of billions) · free memory MB u32 ·
/// port u16 · model length u8 + UTF-8 · host length u8 + UTF-8 · seeded count u8 + 8-byte
/// prefixes of the SHA-256 of each blob the agent seeds (version 3; version 2 records, which
/// end with the host, are still read) · Ed25519 signature 64 bytes over everything before it.
public struct NearbyRecord: Sendable, Equatable {
    public static let version: UInt8 = 3
    public static let maximumSize = 512
    static let maximumModelBytes = 128
    static let maximumHostBytes = 64
    static let signatureBytes = 64
    public static let seededPrefixBytes = 8
    /// As many prefixes as fit beside the longest model name and host.
    public static let maximumSeeded = 24
    /// Letters, digits, '.', '-', ':' (IPv6) and '_'.
    static let hostBytes: Set<UInt8> = Set(Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:_".utf8))

    /// The agent's Ed25519 public key (32 bytes).
    public var publicKey: Data
    /// Increases with each announcement of one agent: receivers drop older ones (replays).
    public var sequence: UInt64
    public var activeModel: String?
    /// Billions of parameters, to a tenth.
    public var paramSize: Double
    /// -1 while a model loads: routers skip the peer until it announces ready.
    public var currentLoad: Int
    public var freeMemoryMB: UInt32
    public var host: String
    public var port: UInt16
    /// The first `seededPrefixBytes` of the SHA-256 of each blob this agent seeds to LAN
    /// peers, at most `maximumSeeded`: enough to know whom to ask (what comes back is verified
    /// piece by piece, so a false claim costs its maker a place in the download).
    public var seeded: [Data]

    public init(publicKey: Data, sequence: UInt64, activeModel: String?, paramSize: Double, currentLoad: Int, freeMemoryMB: UInt32,
                host: String, port: UInt16, seeded: [Data] = []) {
        self.publicKey = publicKey
        self.sequence = sequence
        self.activeModel = activeModel
        self.paramSize = paramSize
        self.currentLoad = currentLoad
        self.freeMemoryMB = freeMemoryMB
        self.host = host
        self.port = port
        self.seeded = seeded
    }

    /// Whether this record says its agent seeds the blob with this SHA-256 (hex).
    public func seeds(sha256: String) -> Bool {
        guard let digest = Data(hexDigits: String(sha256.prefix(2 * Self.seededPrefixBytes))) else { return false }
        return seeded.contains(digest)
    }

    /// The announcing agent's id, derived from its key.
    public var agentId: String { MeshIdentity.id(ofKey: publicKey) }
    public var isLoading: Bool { currentLoad < 0 }

    public enum CodecError: Error, Equatable {
        case truncated(needed: Int, at: Int)
        case badMagic
        case unsupportedVersion(UInt8)
        case tooLong(String)
        case invalidText(String)
        case trailingBytes(Int)
        /// The signature is not the record's key's, or the key is not an Ed25519 key.
        case badSignature
        /// Signing with a key other than the record's.
        case keyMismatch
    }

    /// The record's bytes, signed by `identity` (whose key the record must carry).
    public func encoded(signedBy identity: MeshIdentity) throws(CodecError) -> [UInt8] {
        guard identity.key.publicKey.rawRepresentation == publicKey else { throw .keyMismatch }
        let model = Array((activeModel ?? "").utf8), host = Array(host.utf8)
        guard model.count <= Self.maximumModelBytes else { throw .tooLong("activeModel") }
        guard host.count <= Self.maximumHostBytes else { throw .tooLong("host") }
        guard seeded.count <= Self.maximumSeeded else { throw .tooLong("seeded") }
        guard seeded.allSatisfy({ $0.count == Self.seededPrefixBytes }) else { throw .invalidText("seeded") }
        var bytes: [UInt8] = [0x44, 0x50, Self.version, isLoading ? 1 : 0]
        bytes += publicKey
        bytes += Self.bigEndian(sequence)
        bytes += Self.bigEndian(UInt16(bitPattern: Int16(clamping: currentLoad)))
        bytes += Self.bigEndian(UInt16(clamping: Int((paramSize * 10).rounded()).clampedNonNegative))
        bytes += Self.bigEndian(freeMemoryMB)
        bytes += Self.bigEndian(port)
        bytes += [UInt8(model.count)] + model + [UInt8(host.count)] + host
        bytes += [UInt8(seeded.count)] + seeded.flatMap { $0 }
        guard let signature = try? identity.key.signature(for: bytes) else { throw .badSignature }
        return bytes + signature
    }

    /// Parses and checks a record: every field, then the signature over it.
    public init(decoding bytes: [UInt8]) throws(CodecError) {
        var reader = Reader(bytes: bytes)
        guard try reader.take(2) == [0x44, 0x50] else { throw .badMagic }
        let version = try reader.byte()
        guard version == Self.version || version == 2 else { throw .unsupportedVersion(version) }
        let flags = try reader.byte()
        publicKey = Data(try reader.take(32))
        sequence = try reader.uint64()
        currentLoad = Int(Int16(bitPattern: try reader.uint16()))
        if flags & 1 != 0 && currentLoad >= 0 { currentLoad = -1 }
        paramSize = Double(try reader.uint16()) / 10
        freeMemoryMB = try reader.uint32()
        port = try reader.uint16()
        let model = try reader.text(maximum: Self.maximumModelBytes, field: "activeModel")
        activeModel = model.isEmpty ? nil : model
        host = try reader.text(maximum: Self.maximumHostBytes, field: "host")
        // A host name or an IP address, nothing that would make the peer's URL point elsewhere.
        guard !host.isEmpty, host.utf8.allSatisfy({ Self.hostBytes.contains($0) }) else { throw .invalidText("host") }
        seeded = []
        if version >= 3 {
            let count = Int(try reader.byte())
            guard count <= Self.maximumSeeded else { throw .tooLong("seeded") }
            for _ in 0..<count { seeded.append(Data(try reader.take(Self.seededPrefixBytes))) }
        }
        let signed = reader.position
        let signature = try reader.take(Self.signatureBytes)
        guard reader.remaining == 0 else { throw .trailingBytes(reader.remaining) }
        guard let key = try? Curve25519.Signing.PublicKey(rawRepresentation: publicKey),
              key.isValidSignature(signature, for: bytes[..<signed]) else { throw .badSignature }
    }

    static func bigEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] { withUnsafeBytes(of: value.bigEndian) { Array($0) } }

    struct Reader {
        let bytes: [UInt8]
        var position = 0
        var remaining: Int { bytes.count - position }

        mutating func take(_ count: Int) throws(CodecError) -> [UInt8] {
            guard count <= remaining else { throw .truncated(needed: count, at: position) }
            defer { position += count }
            return Array(bytes[position..<position + count])
        }

        mutating func byte() throws(CodecError) -> UInt8 { try take(1)[0] }
        mutating func uint16() throws(CodecError) -> UInt16 { try take(2).reduce(0) { $0 << 8 | UInt16($1) } }
        mutating func uint32() throws(CodecError) -> UInt32 { try take(4).reduce(0) { $0 << 8 | UInt32($1) } }
        mutating func uint64() throws(CodecError) -> UInt64 { try take(8).reduce(0) { $0 << 8 | UInt64($1) } }

        mutating func text(maximum: Int, field: String) throws(CodecError) -> String {
            let length = Int(try byte())
            guard length <= maximum else { throw .tooLong(field) }
            guard let text = String(validating: try take(length), as: UTF8.self) else { throw .invalidText(field) }
            return text
        }
    }
}

extension Int {
    fileprivate var clampedNonNegative: Int { Swift.max(0, self) }
}
