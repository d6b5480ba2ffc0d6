import Foundation

/// The compact capability record an agent announces to nearby peers: over UDP multicast on a
/// LAN, and (by the iOS and Android executors) as a BLE GATT characteristic value, so it fits
/// in 512 bytes. Versioned; every length is checked before it is used, so hostile bytes give
/// an error, never a crash or an oversized allocation.
///
/// Layout (big-endian): "DP" · version u8 · flags u8 (bit 0: loading) · agent id 16 bytes ·
/// currentLoad i16 · paramSize u16 (tenths of billions) · free memory MB u32 · port u16 ·
/// model length u8 + UTF-8 · host length u8 + UTF-8.
public struct NearbyRecord: Sendable, Equatable {
    public static let version: UInt8 = 1
    public static let maximumSize = 512
    static let maximumModelBytes = 128
    static let maximumHostBytes = 64

    public var agentId: UUID
    public var activeModel: String?
    /// Billions of parameters, to a tenth.
    public var paramSize: Double
    /// -1 while a model loads: routers skip the peer until it announces ready.
    public var currentLoad: Int
    public var freeMemoryMB: UInt32
    public var host: String
    public var port: UInt16

    public init(agentId: UUID, activeModel: String?, paramSize: Double, currentLoad: Int, freeMemoryMB: UInt32, host: String, port: UInt16) {
        self.agentId = agentId
        self.activeModel = activeModel
        self.paramSize = paramSize
        self.currentLoad = currentLoad
        self.freeMemoryMB = freeMemoryMB
        self.host = host
        self.port = port
    }

    public var isLoading: Bool { currentLoad < 0 }

    public enum CodecError: Error, Equatable {
        case truncated(needed: Int, at: Int)
        case badMagic
        case unsupportedVersion(UInt8)
        case tooLong(String)
        case invalidText(String)
        case trailingBytes(Int)
    }

    public func encoded() throws(CodecError) -> [UInt8] {
        let model = Array((activeModel ?? "").utf8), host = Array(host.utf8)
        guard model.count <= Self.maximumModelBytes else { throw .tooLong("activeModel") }
        guard host.count <= Self.maximumHostBytes else { throw .tooLong("host") }
        var bytes: [UInt8] = [0x44, 0x50, Self.version, isLoading ? 1 : 0]
        withUnsafeBytes(of: agentId.uuid) { bytes += $0 }
        bytes += Self.bigEndian(UInt16(bitPattern: Int16(clamping: currentLoad)))
        bytes += Self.bigEndian(UInt16(clamping: Int((paramSize * 10).rounded()).clampedNonNegative))
        bytes += Self.bigEndian(freeMemoryMB)
        bytes += Self.bigEndian(port)
        bytes += [UInt8(model.count)] + model + [UInt8(host.count)] + host
        return bytes
    }

    public init(decoding bytes: [UInt8]) throws(CodecError) {
        var reader = Reader(bytes: bytes)
        guard try reader.take(2) == [0x44, 0x50] else { throw .badMagic }
        let version = try reader.byte()
        guard version == Self.version else { throw .unsupportedVersion(version) }
        let flags = try reader.byte()
        let id = try reader.take(16)
        agentId = UUID(uuid: (id[0], id[1], id[2], id[3], id[4], id[5], id[6], id[7], id[8], id[9], id[10], id[11], id[12], id[13], id[14], id[15]))
        currentLoad = Int(Int16(bitPattern: try reader.uint16()))
        if flags & 1 != 0 && currentLoad >= 0 { currentLoad = -1 }
        paramSize = Double(try reader.uint16()) / 10
        freeMemoryMB = try reader.uint32()
        port = try reader.uint16()
        let model = try reader.text(maximum: Self.maximumModelBytes, field: "activeModel")
        activeModel = model.isEmpty ? nil : model
        host = try reader.text(maximum: Self.maximumHostBytes, field: "host")
        guard reader.remaining == 0 else { throw .trailingBytes(reader.remaining) }
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

/// Splits a payload larger than one BLE characteristic value into chunks with a small header,
/// as EdgeCoder's chunked transfer does, and puts them back together whatever their order.
///
/// Chunk: 0xC7 · version u8 · message id u16 · index u8 · count u8 · bytes.
public enum NearbyChunks {
    static let header = 6
    static let marker: UInt8 = 0xC7
    /// Largest payload accepted back (255 chunks of a 512-byte value would allow more).
    public static let maximumPayload = 64 << 10

    public enum ChunkError: Error, Equatable {
        case tooLarge, malformed, inconsistent
    }

    public static func split(_ payload: [UInt8], messageID: UInt16, valueSize: Int = NearbyRecord.maximumSize) throws(ChunkError) -> [[UInt8]] {
        let room = valueSize - header
        let count = Swift.max(1, (payload.count + room - 1) / room)
        guard room > 0, count <= 255, payload.count <= maximumPayload else { throw .tooLarge }
        return (0..<count).map { index in
            [marker, NearbyRecord.version] + NearbyRecord.bigEndian(messageID) + [UInt8(index), UInt8(count)]
                + payload[index * room..<Swift.min(payload.count, (index + 1) * room)]
        }
    }

    /// Collects chunks of several messages; returns a payload once all its chunks arrived.
    public struct Reassembler {
        private var partial: [UInt16: (count: Int, chunks: [Int: [UInt8]])] = [:]

        public init() {}

        public mutating func add(_ chunk: [UInt8]) throws(ChunkError) -> [UInt8]? {
            guard chunk.count >= NearbyChunks.header, chunk[0] == NearbyChunks.marker, chunk[1] == NearbyRecord.version else {
                throw .malformed
            }
            let id = UInt16(chunk[2]) << 8 | UInt16(chunk[3])
            let index = Int(chunk[4]), count = Int(chunk[5])
            guard count > 0, index < count else { throw .malformed }
            var message = partial[id] ?? (count, [:])
            guard message.count == count else { throw .inconsistent }
            let body = Array(chunk[NearbyChunks.header...])
            if let seen = message.chunks[index], seen != body { throw .inconsistent }
            message.chunks[index] = body
            guard message.chunks.values.reduce(0, { $0 + $1.count }) <= NearbyChunks.maximumPayload else {
                partial[id] = nil
                throw .tooLarge
            }
            guard message.chunks.count == count else {
                partial[id] = message
                return nil
            }
            partial[id] = nil
            return (0..<count).flatMap { message.chunks[$0]! }
        }
    }
}
