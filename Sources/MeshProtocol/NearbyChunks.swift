import Foundation

/// Splits a payload larger than one BLE characteristic value into chunks with a small header,
/// as EdgeCoder's chunked transfer does, and puts them back together whatever their order.
///
/// Chunk: 0xC7 · version u8 · message id u16 · index u8 · count u8 · bytes.
public enum NearbyChunks {
    static let header = 6
    /// The chunk format's own version (the record inside has its own).
    static let version: UInt8 = 1
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
            [marker, version] + NearbyRecord.bigEndian(messageID) + [UInt8(index), UInt8(count)]
                + payload[index * room..<Swift.min(payload.count, (index + 1) * room)]
        }
    }

    /// Collects chunks of several messages; returns a payload once all its chunks arrived.
    public struct Reassembler {
        private var partial: [UInt16: (count: Int, chunks: [Int: [UInt8]])] = [:]

        public init() {}

        public mutating func add(_ chunk: [UInt8]) throws(ChunkError) -> [UInt8]? {
            guard chunk.count >= NearbyChunks.header, chunk[0] == NearbyChunks.marker, chunk[1] == NearbyChunks.version else {
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
