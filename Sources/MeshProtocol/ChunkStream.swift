import Foundation

/// The messages two phones exchange over a BLE GATT characteristic to fetch pieces of a blob
/// from each other: each one value of at most 512 bytes. A link may drop values, so a piece
/// comes as chunks that each say where they belong, and a requester asks again for the ranges
/// it still lacks (`PieceAssembly` tells which). What arrives is only ever trusted after the
/// piece's hash is checked against the manifest, as from any peer.
///
/// Layout (big-endian): 0xB1 · version u8 · type u8 · stream u16 · body, where the body is
/// - 1 have-map request: sha256 32 bytes
/// - 2 have-map slice: sha256 32 · size u64 · pieceSize u32 · complete u8 · first byte u32 ·
///   bitfield bytes (BitTorrent order) from that byte on; a complete blob's slice has none
/// - 3 piece request: sha256 32 · piece u32 · offset u32 · length u32 (a range of the piece)
/// - 4 piece data: piece u32 · offset u32 · 1 to `maximumData` bytes
/// - 5 cancel: piece u32
/// - 6 refused: piece u32 · reason u8
public enum ChunkMessage: Sendable, Equatable {
    case haveMapRequest(stream: UInt16, sha256: Data)
    case haveMapSlice(stream: UInt16, HaveMapSlice)
    case pieceRequest(stream: UInt16, sha256: Data, piece: UInt32, offset: UInt32, length: UInt32)
    case pieceData(stream: UInt16, piece: UInt32, offset: UInt32, bytes: [UInt8])
    case cancel(stream: UInt16, piece: UInt32)
    case refused(stream: UInt16, piece: UInt32, reason: Refusal)

    public struct HaveMapSlice: Sendable, Equatable {
        public var sha256: Data
        public var size: UInt64
        public var pieceSize: UInt32
        public var complete: Bool
        /// Where `bytes` start in the blob's bitfield.
        public var firstByte: UInt32
        public var bytes: [UInt8]

        public init(sha256: Data, size: UInt64, pieceSize: UInt32, complete: Bool, firstByte: UInt32, bytes: [UInt8]) {
            self.sha256 = sha256
            self.size = size
            self.pieceSize = pieceSize
            self.complete = complete
            self.firstByte = firstByte
            self.bytes = bytes
        }
    }

    public enum Refusal: UInt8, Sendable {
        case notHeld = 1, busy = 2, notVerified = 3
    }

    public enum CodecError: Error, Equatable {
        case truncated(needed: Int, at: Int)
        case badMagic
        case unsupportedVersion(UInt8)
        case unknownType(UInt8)
        case invalid(String)
        case tooLarge(Int)
        case trailingBytes(Int)
    }

    public static let magic: UInt8 = 0xB1
    public static let version: UInt8 = 1
    /// One GATT characteristic value.
    public static let maximumSize = 512
    static let header = 5
    /// Data bytes in one piece-data message.
    public static let maximumData = maximumSize - header - 8
    /// Bitfield bytes in one have-map slice.
    public static let maximumSliceBytes = maximumSize - header - 32 - 8 - 4 - 1 - 4
    /// The longest range one request may ask for.
    public static let maximumRequest: UInt32 = 16 << 20

    public var stream: UInt16 {
        switch self {
        case .haveMapRequest(let stream, _), .haveMapSlice(let stream, _), .pieceRequest(let stream, _, _, _, _),
             .pieceData(let stream, _, _, _), .cancel(let stream, _), .refused(let stream, _, _): stream
        }
    }

    public func encoded() throws(CodecError) -> [UInt8] {
        var writer = Writer()
        switch self {
        case .haveMapRequest(let stream, let sha256):
            try writer.start(1, stream)
            try writer.digest(sha256)
        case .haveMapSlice(let stream, let slice):
            try writer.start(2, stream)
            try writer.digest(slice.sha256)
            writer.integer(slice.size)
            guard slice.pieceSize > 0 else { throw .invalid("pieceSize") }
            writer.integer(slice.pieceSize)
            writer.bytes.append(slice.complete ? 1 : 0)
            guard !slice.complete || slice.bytes.isEmpty else { throw .invalid("complete") }
            writer.integer(slice.firstByte)
            writer.bytes += slice.bytes
        case .pieceRequest(let stream, let sha256, let piece, let offset, let length):
            try writer.start(3, stream)
            try writer.digest(sha256)
            guard (1...Self.maximumRequest).contains(length) else { throw .invalid("length") }
            writer.integer(piece)
            writer.integer(offset)
            writer.integer(length)
        case .pieceData(let stream, let piece, let offset, let bytes):
            try writer.start(4, stream)
            guard !bytes.isEmpty else { throw .invalid("bytes") }
            writer.integer(piece)
            writer.integer(offset)
            writer.bytes += bytes
        case .cancel(let stream, let piece):
            try writer.start(5, stream)
            writer.integer(piece)
        case .refused(let stream, let piece, let reason):
            try writer.start(6, stream)
            writer.integer(piece)
            writer.bytes.append(reason.rawValue)
        }
        guard writer.bytes.count <= Self.maximumSize else { throw .tooLarge(writer.bytes.count) }
        return writer.bytes
    }

    public init(decoding bytes: [UInt8]) throws(CodecError) {
        guard bytes.count <= Self.maximumSize else { throw .tooLarge(bytes.count) }
        var reader = Reader(bytes: bytes)
        guard try reader.byte() == Self.magic else { throw .badMagic }
        let version = try reader.byte()
        guard version == Self.version else { throw .unsupportedVersion(version) }
        let type = try reader.byte()
        let stream = try reader.integer(UInt16.self)
        switch type {
        case 1:
            self = .haveMapRequest(stream: stream, sha256: try reader.digest())
        case 2:
            let sha256 = try reader.digest()
            let size = try reader.integer(UInt64.self)
            let pieceSize = try reader.integer(UInt32.self)
            guard pieceSize > 0 else { throw .invalid("pieceSize") }
            let complete = try reader.byte()
            guard complete <= 1 else { throw .invalid("complete") }
            let firstByte = try reader.integer(UInt32.self)
            let rest = reader.rest()
            guard complete == 0 || rest.isEmpty else { throw .invalid("complete") }
            self = .haveMapSlice(stream: stream, HaveMapSlice(sha256: sha256, size: size, pieceSize: pieceSize, complete: complete == 1,
                                                              firstByte: firstByte, bytes: rest))
        case 3:
            let sha256 = try reader.digest()
            let piece = try reader.integer(UInt32.self), offset = try reader.integer(UInt32.self), length = try reader.integer(UInt32.self)
            guard (1...Self.maximumRequest).contains(length) else { throw .invalid("length") }
            self = .pieceRequest(stream: stream, sha256: sha256, piece: piece, offset: offset, length: length)
        case 4:
            let piece = try reader.integer(UInt32.self), offset = try reader.integer(UInt32.self)
            let data = reader.rest()
            guard !data.isEmpty else { throw .invalid("bytes") }
            self = .pieceData(stream: stream, piece: piece, offset: offset, bytes: data)
        case 5:
            self = .cancel(stream: stream, piece: try reader.integer(UInt32.self))
        case 6:
            let piece = try reader.integer(UInt32.self)
            guard let reason = Refusal(rawValue: try reader.byte()) else { throw .invalid("reason") }
            self = .refused(stream: stream, piece: piece, reason: reason)
        default:
            throw .unknownType(type)
        }
        guard reader.remaining == 0 else { throw .trailingBytes(reader.remaining) }
    }

    /// A range of a piece as data messages, each within one characteristic value.
    public static func data(stream: UInt16, piece: UInt32, offset: UInt32, bytes: [UInt8]) -> [ChunkMessage] {
        stride(from: 0, to: bytes.count, by: maximumData).map { start in
            .pieceData(stream: stream, piece: piece, offset: offset + UInt32(start),
                       bytes: Array(bytes[start..<min(bytes.count, start + maximumData)]))
        }
    }

    /// A have-map as slices, each within one characteristic value.
    public static func slices(stream: UInt16, sha256: Data, map: HaveMap) -> [ChunkMessage] {
        let pieceSize = UInt32(clamping: map.pieceSize)
        if map.complete {
            return [.haveMapSlice(stream: stream, HaveMapSlice(sha256: sha256, size: map.size, pieceSize: pieceSize, complete: true,
                                                               firstByte: 0, bytes: []))]
        }
        let bits = map.have.bytes
        return stride(from: 0, to: max(bits.count, 1), by: maximumSliceBytes).map { start in
            .haveMapSlice(stream: stream, HaveMapSlice(sha256: sha256, size: map.size, pieceSize: pieceSize, complete: false,
                                                       firstByte: UInt32(start), bytes: Array(bits[start..<min(bits.count, start + maximumSliceBytes)])))
        }
    }

    /// The have-map that slices make up, once they cover its bitfield and agree with each
    /// other; nil until then, or when they contradict one another or overrun the bitfield.
    public static func haveMap(from slices: [HaveMapSlice]) -> HaveMap? {
        guard let first = slices.first, slices.allSatisfy({ ($0.sha256, $0.size, $0.pieceSize, $0.complete)
            == (first.sha256, first.size, first.pieceSize, first.complete) }) else { return nil }
        let sha256 = first.sha256.lowercaseHex, pieceSize = UInt64(first.pieceSize)
        if first.complete { return .complete(sha256: sha256, size: first.size, pieceSize: pieceSize) }
        let count = HaveMap.pieceCount(size: first.size, pieceSize: pieceSize)
        guard count <= 1 << 24 else { return nil }
        var bits = [UInt8](repeating: 0, count: (count + 7) / 8), covered = [Bool](repeating: false, count: bits.count)
        for slice in slices {
            let start = Int(slice.firstByte)
            guard start <= bits.count, slice.bytes.count <= bits.count - start else { return nil }
            bits.replaceSubrange(start..<start + slice.bytes.count, with: slice.bytes)
            for index in start..<start + slice.bytes.count { covered[index] = true }
        }
        guard !covered.contains(false), let have = PieceBitfield(count: count, bytes: bits) else { return nil }
        return HaveMap(sha256: sha256, size: first.size, pieceSize: pieceSize, complete: false, have: have, fetching: PieceBitfield(count: count))
    }

    struct Writer {
        var bytes: [UInt8] = []

        mutating func start(_ type: UInt8, _ stream: UInt16) throws(CodecError) {
            bytes = [ChunkMessage.magic, ChunkMessage.version, type]
            integer(stream)
        }

        mutating func digest(_ sha256: Data) throws(CodecError) {
            guard sha256.count == 32 else { throw .invalid("sha256") }
            bytes += sha256
        }

        mutating func integer<T: FixedWidthInteger>(_ value: T) { withUnsafeBytes(of: value.bigEndian) { bytes += $0 } }
    }

    struct Reader {
        let bytes: [UInt8]
        var position = 0
        var remaining: Int { bytes.count - position }

        mutating func take(_ count: Int) throws(CodecError) -> ArraySlice<UInt8> {
            guard count <= remaining else { throw .truncated(needed: count, at: position) }
            defer { position += count }
            return bytes[position..<position + count]
        }

        mutating func byte() throws(CodecError) -> UInt8 { try take(1).first! }

        mutating func integer<T: FixedWidthInteger>(_ type: T.Type) throws(CodecError) -> T {
            try take(MemoryLayout<T>.size).reduce(T.zero) { $0 << 8 | T($1) }
        }

        mutating func digest() throws(CodecError) -> Data { Data(try take(32)) }

        mutating func rest() -> [UInt8] {
            defer { position = bytes.count }
            return Array(bytes[position...])
        }
    }
}

/// One side of a link that carries chunk messages, one characteristic value at a time: a BLE
/// GATT characteristic on a phone. A value sent may be lost on the way.
public protocol ChunkLink: Sendable {
    /// Sends one value of at most `ChunkMessage.maximumSize` bytes.
    func send(_ value: [UInt8]) async throws
    /// The values that arrive from the other side; ends when the link closes. One reader.
    var incoming: AsyncStream<[UInt8]> { get }
}

/// A piece range arriving as data messages over a link that may lose, repeat or reorder
/// them: what has arrived, and what to ask for again.
public struct PieceAssembly: Sendable {
    public let piece: UInt32
    /// Where the range starts in its piece (data messages give offsets in the piece).
    public let start: Int
    public let length: Int
    public private(set) var bytes: [UInt8]
    /// Received ranges, relative to `start`, sorted and merged.
    public private(set) var received: [Range<Int>] = []

    public init(piece: UInt32, length: Int) { self.init(piece: piece, range: 0..<length) }

    /// Bytes `range` of the piece.
    public init(piece: UInt32, range: Range<Int>) {
        self.piece = piece
        start = range.lowerBound
        length = range.count
        bytes = [UInt8](repeating: 0, count: length)
    }

    public var isComplete: Bool { received == [0..<length] || length == 0 }

    /// Takes a data message for this range; false for one of another piece or outside the
    /// range (a confused or hostile sender, or a late answer to an earlier request), which
    /// changes nothing.
    public mutating func add(_ message: ChunkMessage) -> Bool {
        guard case .pieceData(_, let piece, let offset, let data) = message, piece == self.piece,
              Int(offset) >= start, Int(offset) - start + data.count <= length else { return false }
        let range = Int(offset) - start..<Int(offset) - start + data.count
        bytes.replaceSubrange(range, with: data)
        received.append(range)
        received.sort { $0.lowerBound < $1.lowerBound }
        received = received.reduce(into: []) { merged, next in
            if let last = merged.last, next.lowerBound <= last.upperBound {
                merged[merged.count - 1] = last.lowerBound..<max(last.upperBound, next.upperBound)
            } else {
                merged.append(next)
            }
        }
        return true
    }

    /// The ranges still missing, relative to `start`, to request again.
    public var missing: [Range<Int>] {
        var gaps: [Range<Int>] = [], position = 0
        for range in received {
            if range.lowerBound > position { gaps.append(position..<range.lowerBound) }
            position = max(position, range.upperBound)
        }
        if position < length { gaps.append(position..<length) }
        return gaps
    }
}
